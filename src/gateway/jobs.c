/*
 * jobs.c — tool calls this daemon made and the results that came back:
 * one job per tool_call envelope (its id is the job id), kept in memory
 * and in DATA/jobs/<id>.json (rewritten whole on every change), with the
 * HTTP or MCP requests waiting for it. A job to one node is done with its
 * first result; a job to a group or an area collects one result per node
 * and stays "collecting" until its deadline ("done" after it); a job to
 * one node with no result by its deadline is "expired". A node's
 * second result for the same job is ignored, so each result counts once.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_gateway.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_WAITERS 256

struct waiter {
	char job[AM_ID_HEX_LEN + 1];
	uint64_t deadline_ms;
	am_job_reply_fn fn;
	void *ctx;
};

struct am_jobs {
	pthread_mutex_t mu;
	char dir[4000];
	json_t *jobs; /* id -> job object */
	struct waiter w[MAX_WAITERS];
	size_t nw;
	bool stopping; /* am_jobs_stop: no request waits any more */
	am_shared *shared; /* the pair's Redis: every save is mirrored there (may be NULL) */
};

#define SHARED_JOB_TTL_MS (7ull * 24 * 3600 * 1000)

void
am_jobs_share(am_jobs *j, am_shared *s)
{
	j->shared = s;
}

static void
shared_key(char *out, size_t cap, const char *id)
{
	snprintf(out, cap, "agent-mesh:job:%s", id);
}

static void
save_to(am_jobs *j, const char *id, json_t *job, bool mirror)
{
	char path[4096], *text = json_dumps(job, JSON_COMPACT); /* its own key order, as served */

	if (text == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s.json", j->dir, id);
	if (am_file_write_atomic(path, text, strlen(text), 0600, true) != 0)
		fprintf(stderr, "jobs: %s\n", am_error_detail()); /* memory still has it */
	if (mirror && j->shared != NULL) { /* the other gateway of the pair serves it too */
		char key[128];
		shared_key(key, sizeof(key), id);
		if (am_shared_set(j->shared, key, text, strlen(text), SHARED_JOB_TTL_MS) != 0)
			fprintf(stderr, "jobs: shared state: %s\n", am_error_detail());
	}
	free(text);
}

static void
save(am_jobs *j, const char *id, json_t *job)
{
	save_to(j, id, job, true);
}

int
am_jobs_open(am_jobs **out, const char *dir)
{
	am_jobs *j = calloc(1, sizeof(*j));

	*out = NULL;
	if (j == NULL || (j->jobs = json_object()) == NULL) {
		free(j);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	mkdir(dir, 0700);
	am_prune_dir(dir, ".json", AM_KEEP_RECORDS_MS);
	pthread_mutex_init(&j->mu, NULL);
	*out = j;
	return 0;
}

/* the job, from memory or from its file (new reference; caller locked) */
static json_t *
find(am_jobs *j, const char *id)
{
	json_t *job = json_object_get(j->jobs, id);
	char path[4096];

	if (job != NULL)
		return json_incref(job);
	if (strlen(id) != AM_ID_HEX_LEN || strspn(id, "0123456789abcdef") != AM_ID_HEX_LEN)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s.json", j->dir, id);
	if ((job = json_load_file(path, 0, NULL)) != NULL)
		json_object_set(j->jobs, id, job);
	return job;
}

static bool
finished(const json_t *job)
{
	const char *s = json_string_value(json_object_get(job, "status"));
	return s != NULL && (strcmp(s, "done") == 0 || strcmp(s, "expired") == 0);
}

static size_t
results_in(const json_t *job)
{
	return json_array_size(json_object_get(job, "results"));
}

/* A gateway pair: the job as Redis has it, when that is further along
 * than ours (the other gateway took a result, or saw it expire), is
 * adopted; else ours (Redis down, or not there: ours). Under j->mu. */
static json_t *
fresh(am_jobs *j, const char *id)
{
	json_t *job = find(j, id), *rj = NULL;
	char key[128], *text = NULL;
	size_t len = 0;

	if (j->shared == NULL || !am_shared_up(j->shared) || strlen(id) != AM_ID_HEX_LEN ||
	    strspn(id, "0123456789abcdef") != AM_ID_HEX_LEN)
		return job;
	shared_key(key, sizeof(key), id);
	if (am_shared_get(j->shared, key, &text, &len) == 0)
		rj = json_loadb(text, len, 0, NULL);
	free(text);
	if (!json_is_object(rj)) {
		json_decref(rj);
		return job;
	}
	if (job == NULL || (finished(rj) && !finished(job)) || results_in(rj) > results_in(job)) {
		json_object_set(j->jobs, id, rj);
		save_to(j, id, rj, false); /* Redis has it already */
		json_decref(job);
		return rj;
	}
	json_decref(rj);
	return job;
}

/* answer the waiters of a job that is done (or of every job, at stop) */
static void
wake(am_jobs *j, const char *id, json_t *job, uint64_t now, bool all)
{
	for (size_t i = 0; i < j->nw;) {
		bool due = all || (id != NULL && strcmp(j->w[i].job, id) == 0) || j->w[i].deadline_ms <= now;
		if (!due) {
			i++;
			continue;
		}
		struct waiter w = j->w[i];
		j->w[i] = j->w[--j->nw];
		json_t *cur = id != NULL && strcmp(w.job, id) == 0 && job ? json_incref(job) : find(j, w.job);
		w.fn(w.ctx, cur, all && !(cur && finished(cur)));
		json_decref(cur);
	}
}

void
am_jobs_stop(am_jobs *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->mu);
	j->stopping = true;
	wake(j, NULL, NULL, 0, true);
	pthread_mutex_unlock(&j->mu);
}

void
am_jobs_close(am_jobs *j)
{
	if (j == NULL)
		return;
	am_jobs_stop(j);
	json_decref(j->jobs);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

int
am_jobs_create(am_jobs *j, const char *id, const char *tool, const char *target, const char *workflow_id,
    const uint8_t *node, uint64_t now_ms, uint64_t deadline_ms)
{
	bool one_node = node != NULL;
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:[]}", "job_id", id, "tool", tool, "target",
	    target, "workflow_id", workflow_id ? workflow_id : "", "created_ms", (json_int_t) now_ms, "deadline_ms",
	    (json_int_t) deadline_ms, "status", one_node ? "pending" : "collecting", "results");

	if (job == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	json_object_set_new(job, "fan_out", json_boolean(!one_node));
	if (node != NULL) {
		char hex[AM_NODE_ID_LEN + 1];
		am_node_id_format(hex, node);
		json_object_set_new(job, "target_node", json_string(hex));
	}
	pthread_mutex_lock(&j->mu);
	json_object_set(j->jobs, id, job);
	save(j, id, job);
	json_decref(job); /* under the lock, as every count change of a kept job */
	pthread_mutex_unlock(&j->mu);
	return 0;
}

int
am_jobs_result(am_jobs *j, const char *id, json_t *result, uint64_t now_ms)
{
	json_t *job, *results, *r;
	const char *node = json_string_value(json_object_get(result, "node"));
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&j->mu);
	if ((job = fresh(j, id)) == NULL) {
		rc = am_error_set(AM_ENOTFOUND, "no job %s here", id);
		goto out;
	}
	results = json_object_get(job, "results");
	json_array_foreach(results, i, r) {
		const char *n = json_string_value(json_object_get(r, "node"));
		if (n != NULL && node != NULL && strcmp(n, node) == 0) {
			rc = AM_EDUP; /* this node's result is in already */
			goto out;
		}
	}
	json_object_set_new(result, "received_ms", json_integer((json_int_t) now_ms));
	json_array_append(results, result);
	if (!json_is_true(json_object_get(job, "fan_out")))
		json_object_set_new(job, "status", json_string("done"));
	save(j, id, job);
	if (finished(job)) /* a fan-out job answers its waiters at its deadline */
		wake(j, id, job, now_ms, false);
out:
	json_decref(job);
	pthread_mutex_unlock(&j->mu);
	json_decref(result);
	return rc;
}

json_t *
am_jobs_get(am_jobs *j, const char *id)
{
	json_t *job, *copy;

	/* a copy, made under the lock: the job in memory changes as results
	 * come in, and the caller reads (serialises) what it got unlocked */
	pthread_mutex_lock(&j->mu);
	job = fresh(j, id); /* a pair: also a job the other gateway made, as far as it is */
	copy = job ? json_deep_copy(job) : NULL;
	json_decref(job); /* (jansson reads the count unlocked in json_incref) */
	pthread_mutex_unlock(&j->mu);
	return copy;
}

json_t *
am_jobs_list(am_jobs *j, const char *workflow_id, const char *after, size_t limit, char next[AM_ID_HEX_LEN + 1])
{
	json_t *arr = json_array(), *job;
	char **names = NULL;
	size_t n = 0;

	next[0] = '\0';
	pthread_mutex_lock(&j->mu);
	/* every job on disk, so ones from before a restart are found too, in
	 * id order from after (exclusive), limit at a time; read from disk
	 * without keeping them in memory */
	if (am_dir_list(&names, &n, j->dir, ".json") == 0) {
		for (size_t i = 0; i < n; i++) {
			char id[AM_ID_HEX_LEN + 1];
			snprintf(id, sizeof(id), "%.*s", AM_ID_HEX_LEN, names[i]);
			if (after != NULL && strcmp(id, after) <= 0)
				continue;
			if (json_array_size(arr) == limit) {
				json_t *last = json_array_get(arr, limit - 1);
				snprintf(next, AM_ID_HEX_LEN + 1, "%s", json_string_value(json_object_get(last, "job_id")));
				break;
			}
			if ((job = json_object_get(j->jobs, id)) != NULL)
				json_incref(job);
			else {
				char path[4200];
				snprintf(path, sizeof(path), "%s/%s", j->dir, names[i]);
				job = json_load_file(path, 0, NULL);
			}
			if (job == NULL)
				continue;
			const char *wf = json_string_value(json_object_get(job, "workflow_id"));
			if (workflow_id == NULL || (wf != NULL && strcmp(wf, workflow_id) == 0))
				json_array_append_new(arr, json_deep_copy(job)); /* as am_jobs_get */
			json_decref(job);
		}
		am_dir_list_free(names, n);
	}
	pthread_mutex_unlock(&j->mu);
	return arr;
}

int
am_jobs_wait(am_jobs *j, const char *id, uint64_t deadline_ms, am_job_reply_fn fn, void *ctx)
{
	json_t *job;
	int rc = 0;

	pthread_mutex_lock(&j->mu);
	job = fresh(j, id);
	if (job != NULL && finished(job)) {
		fn(ctx, job, false);
	} else if (j->stopping) {
		fn(ctx, job, true);
	} else if (j->nw == MAX_WAITERS) {
		rc = am_error_set(AM_ELIMIT, "too many requests waiting for results");
	} else {
		struct waiter *w = &j->w[j->nw++];
		snprintf(w->job, sizeof(w->job), "%s", id);
		w->deadline_ms = deadline_ms;
		w->fn = fn;
		w->ctx = ctx;
	}
	json_decref(job);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

void
am_jobs_tick(am_jobs *j, uint64_t now_ms)
{
	const char *id;
	json_t *job;

	pthread_mutex_lock(&j->mu);
	/* a pair: what a waiter waits for may have come to the other gateway,
	 * and a job about to expire here may be done there */
	if (j->shared != NULL && am_shared_up(j->shared)) {
		json_t *ids = json_array();
		json_object_foreach(j->jobs, id, job) {
			bool waited = false;
			for (size_t i = 0; i < j->nw && !waited; i++)
				waited = strcmp(j->w[i].job, id) == 0;
			if (!finished(job) && (waited || (uint64_t) json_integer_value(json_object_get(job, "deadline_ms")) <= now_ms))
				json_array_append_new(ids, json_string(id));
		}
		size_t k;
		json_t *v;
		json_array_foreach(ids, k, v) {
			json_t *f = fresh(j, json_string_value(v));
			if (f != NULL && finished(f))
				wake(j, json_string_value(v), f, now_ms, false);
			json_decref(f);
		}
		json_decref(ids);
	}
	/* at its deadline a fan-out job is done with what came; a job to one
	 * node that had no answer is expired: no job stays pending forever */
	json_object_foreach(j->jobs, id, job) {
		if (!finished(job) && (uint64_t) json_integer_value(json_object_get(job, "deadline_ms")) <= now_ms) {
			bool fan = json_is_true(json_object_get(job, "fan_out"));
			json_object_set_new(job, "status", json_string(fan ? "done" : "expired"));
			if (!fan)
				json_object_set_new(job, "reason", json_string("no result came back before the call's deadline"));
			save(j, id, job);
			wake(j, id, job, now_ms, false); /* its waiters get what there is */
		}
	}
	wake(j, NULL, NULL, now_ms, false);
	/* memory holds the jobs still waiting for results (and those asked
	 * for lately); a finished one is on disk, read back when asked for */
	void *tmp;
	json_object_foreach_safe(j->jobs, tmp, id, job) {
		bool waited = false;
		for (size_t i = 0; i < j->nw && !waited; i++)
			waited = strcmp(j->w[i].job, id) == 0;
		if (finished(job) && !waited)
			json_object_del(j->jobs, id);
	}
	pthread_mutex_unlock(&j->mu);
}
