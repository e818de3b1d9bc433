/*
 * mcp_stream.c — a node tool call answered as server-sent events: the
 * streamable HTTP transport lets a POST's answer be a stream, which is
 * how a client sees progress while a node far away runs its tool, and
 * how it can cancel the wait. One thread a call (bounded by MCP_STREAMS,
 * each also holding one of the server's capped connections) sends a
 * notifications/progress each second, then the result.
 */
#define _POSIX_C_SOURCE 200809L
#include "mcp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mcp_stream_call {
	am_mcp *m;
	am_http_stream *st;
	json_t *id, *progress;
	char job[65], node[80], caller[65];
	uint64_t deadline_ms;
	bool modern;
	int log_level;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	json_t *result;     /* the job's content once it came (or its wait ended) */
	bool answered;      /* the jobs' callback ran */
	bool cancelled;
	int refs;           /* the thread's and the jobs' callback's */
};

static void
call_unref(struct mcp_stream_call *c)
{
	pthread_mutex_lock(&c->mu);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	json_decref(c->id);
	json_decref(c->progress);
	json_decref(c->result);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* c no longer in flight (am_mcp_streams_stop waits for none to be) */
static void
unlist(am_mcp *m, struct mcp_stream_call *c)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nstreams; i++)
		if (m->streams[i] == c) {
			m->streams[i] = m->streams[--m->nstreams];
			break;
		}
	pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->mu);
}

/* the jobs' callback (their lock held): keep a copy, wake the thread */
static void
job_answered(void *ctx, json_t *job, bool stopping)
{
	struct mcp_stream_call *c = ctx;
	json_t *content = NULL;

	if (job != NULL && !stopping) {
		json_t *copy = json_deep_copy(job);
		content = am_mcp_job_content(copy);
		json_decref(copy);
	}
	pthread_mutex_lock(&c->mu);
	c->result = content;
	c->answered = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	call_unref(c);
}

int
am_mcp_send_event(am_http_stream *st, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	int rc;

	json_decref(msg);
	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	size_t n = strlen(text);
	char *ev = malloc(n + 32);
	if (ev == NULL) {
		free(text);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	int len = snprintf(ev, n + 32, "event: message\ndata: %s\n\n", text);
	rc = am_http_stream_write(st, ev, (size_t) len);
	free(ev);
	free(text);
	return rc;
}

/* notifications/message, when the client asked for this level */
static int
send_log(struct mcp_stream_call *c, int level, const char *text)
{
	if (c->log_level < 0 || level < c->log_level)
		return 0;
	return am_mcp_send_event(c->st, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "jsonrpc", "2.0", "method",
	    "notifications/message", "params", "level", am_mcp_log_levels[level], "logger", "agent-mesh-gateway", "data",
	    text));
}

static int
send_progress(struct mcp_stream_call *c, uint64_t waited_s, uint64_t total_s)
{
	char msg[300];

	if (c->progress == NULL)
		return am_http_stream_write(c->st, ": waiting\n\n", 11); /* an SSE comment: keeps the line, finds a leaver */
	snprintf(msg, sizeof(msg), "waiting for %s to run it (job %s, %llu s)", c->node, c->job,
	    (unsigned long long) waited_s);
	return am_mcp_send_event(c->st, json_pack("{s:s, s:s, s:{s:O, s:I, s:I, s:s}}", "jsonrpc", "2.0", "method",
	    "notifications/progress", "params", "progressToken", c->progress, "progress", (json_int_t) waited_s, "total",
	    (json_int_t) total_s, "message", msg));
}

static void *
call_thread(void *arg)
{
	struct mcp_stream_call *c = arg;
	am_mcp *m = c->m;
	uint64_t start = am_now_ms(), total_s = (c->deadline_ms - start + 999) / 1000, tick = 0;
	char line[300];
	snprintf(line, sizeof(line), "the call went to %s as job %s", c->node, c->job);
	bool gone = send_log(c, 1, line) != 0 || send_progress(c, 0, total_s) != 0;

	pthread_mutex_lock(&c->mu);
	while (!c->answered && !c->cancelled && !gone) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		if (atomic_load(&m->stopping))
			break;
		uint64_t waited = (am_now_ms() - start) / 1000;
		if (!c->answered && !c->cancelled && waited > tick) {
			tick = waited;
			pthread_mutex_unlock(&c->mu);
			gone = send_progress(c, waited, total_s) != 0;
			pthread_mutex_lock(&c->mu);
		}
	}
	json_t *result = c->answered && !c->cancelled ? json_incref(c->result) : NULL;
	bool answered = c->answered, cancelled = c->cancelled;
	pthread_mutex_unlock(&c->mu);
	if (!gone && !cancelled) {
		const char *st = json_string_value(json_object_get(json_object_get(result, "structuredContent"), "status"));
		snprintf(line, sizeof(line), "job %s: %s", c->job,
		    result == NULL ? "the gateway is stopping" : st != NULL && strcmp(st, "done") == 0 ? "the node answered" : st ? st : "ended");
		(void) send_log(c, result != NULL && st != NULL && strcmp(st, "done") == 0 ? 1 : 3, line);
		if (result != NULL)
			(void) am_mcp_send_event(c->st, am_mcp_rpc_result(c->id, result, c->modern));
		else if (!answered || c->result == NULL)
			(void) am_mcp_send_event(c->st, am_mcp_rpc_error(c->id, -32603, "the gateway is stopping; poll mesh_job_status later"));
	} else
		json_decref(result);
	/* a cancelled call gets no answer (the spec's rule); its job goes on */
	am_http_stream_close(c->st);
	unlist(m, c);
	call_unref(c);
	return NULL;
}

int
am_mcp_stream_call(am_mcp *m, am_http_ex *ex, json_t *id, const char *job, const char *node, json_t *progress,
    uint64_t wait_ms, bool modern, const char *caller, int log_level)
{
	struct mcp_stream_call *c = calloc(1, sizeof(*c));
	pthread_attr_t at;
	pthread_t t;
	int rc;

	if (c == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->m = m;
	c->id = json_incref(id);
	c->progress = progress != NULL ? json_incref(progress) : NULL;
	snprintf(c->job, sizeof(c->job), "%s", job);
	snprintf(c->node, sizeof(c->node), "%s", node);
	snprintf(c->caller, sizeof(c->caller), "%s", caller);
	c->deadline_ms = am_now_ms() + wait_ms;
	c->modern = modern;
	c->log_level = log_level;
	c->refs = 1;
	pthread_mutex_lock(&m->mu);
	if (atomic_load(&m->stopping) || m->nstreams == MCP_STREAMS) {
		pthread_mutex_unlock(&m->mu);
		rc = am_error_set(AM_ELIMIT, "%d calls are waiting already; poll mesh_job_status", MCP_STREAMS);
		goto fail;
	}
	m->streams[m->nstreams++] = c;
	pthread_mutex_unlock(&m->mu);
	c->refs = 2; /* the jobs' callback's, from here on */
	if ((rc = am_jobs_wait(m->calls->jobs, job, c->deadline_ms, job_answered, c)) != 0) {
		c->refs = 1;
		goto unlist;
	}
	if ((rc = am_http_stream_open(ex, 200, "text/event-stream", NULL, &c->st)) != 0)
		goto cancel;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256u << 10);
	if (pthread_create(&t, &at, call_thread, c) != 0) {
		pthread_attr_destroy(&at);
		am_http_stream_close(c->st);
		rc = am_error_set(AM_EIO, "no thread for the call's stream");
		goto cancel_answered;
	}
	pthread_attr_destroy(&at);
	return 0;
cancel:
	/* the waiter stays with the jobs until its deadline; its callback
	 * drops its own reference then */
	;
unlist:
	unlist(m, c);
	call_unref(c);
	return rc;
cancel_answered:
	/* ex is answered (the stream, now ended): report 0 so nobody answers twice */
	unlist(m, c);
	call_unref(c);
	return 0;
fail:
	call_unref(c);
	return rc;
}

void
am_mcp_cancel(am_mcp *m, const char *caller, json_t *request_id)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nstreams; i++) {
		struct mcp_stream_call *c = m->streams[i];
		if (strcmp(c->caller, caller) == 0 && json_equal(c->id, request_id)) {
			pthread_mutex_lock(&c->mu);
			c->cancelled = true;
			pthread_cond_broadcast(&c->cv);
			pthread_mutex_unlock(&c->mu);
		}
	}
	pthread_mutex_unlock(&m->mu);
}

void
am_mcp_streams_stop(am_mcp *m)
{
	pthread_mutex_lock(&m->mu);
	atomic_store(&m->stopping, true);
	for (size_t i = 0; i < m->nstreams; i++) {
		pthread_mutex_lock(&m->streams[i]->mu);
		pthread_cond_broadcast(&m->streams[i]->cv);
		pthread_mutex_unlock(&m->streams[i]->mu);
	}
	while (m->nstreams > 0)
		pthread_cond_wait(&m->idle, &m->mu);
	pthread_mutex_unlock(&m->mu);
}
