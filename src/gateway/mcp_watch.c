/*
 * mcp_watch.c — what MCP clients watch: the resources (the inbox,
 * mesh_scan, each job) and the tool list. A 2025-era client subscribes
 * per session (resources/subscribe) and gets its notifications on the
 * session's GET stream; a 2026-07-28 client opens subscriptions/listen,
 * a POST answered as a stream that carries only what its filter names.
 * Changes are found on the gateway's tick (every inbox wake, or 200 ms):
 * the inbox counter, a catalog generation bumped as catalogs arrive, and
 * the status of each job someone watches. Writes to a stream never
 * block (http_stream.c buffers, and drops a reader 1 MiB behind), so the
 * tick is never held up by a slow client.
 */
#define _POSIX_C_SOURCE 200809L
#include "mcp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
str_or(const char *s, const char *otherwise)
{
	return s != NULL ? s : otherwise;
}

#define MCP_KEEPALIVE_MS 15000 /* an SSE comment on a quiet stream: finds a client that left */

/* a notification for watcher w (2026-07-28: stamped with its subscription) */
static int
notify(struct mcp_watcher *w, const char *method, json_t *params)
{
	if (params == NULL)
		params = json_object();
	if (w->listen_id != NULL)
		json_object_set_new(params, "_meta", json_pack("{s:O}", "io.modelcontextprotocol/subscriptionId", w->listen_id));
	w->last_write_ms = am_now_ms();
	return am_mcp_send_event(w->st, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params));
}

static bool
session_subscribed(am_mcp *m, const char *session, const char *uri)
{
	for (size_t i = 0; i < m->nsubs; i++)
		if (strcmp(m->subs[i].session, session) == 0 && strcmp(m->subs[i].uri, uri) == 0)
			return true;
	return false;
}

static bool
watches(am_mcp *m, struct mcp_watcher *w, const char *uri)
{
	if (w->listen_id == NULL)
		return session_subscribed(m, w->session, uri);
	size_t i;
	json_t *u;
	json_array_foreach(w->uris, i, u)
		if (strcmp(json_string_value(u), uri) == 0)
			return true;
	return false;
}

static void
watcher_free(struct mcp_watcher *w, bool graceful)
{
	/* a 2026-07-28 subscription that ends from our side says so: the
	 * empty result (the client then knows it was not a disconnect) */
	if (graceful && w->listen_id != NULL)
		(void) am_mcp_send_event(w->st, json_pack("{s:s, s:O, s:{s:{s:O}, s:s}}", "jsonrpc", "2.0", "id", w->listen_id, "result",
		    "_meta", "io.modelcontextprotocol/subscriptionId", w->listen_id, "resultType", "complete"));
	am_http_stream_close(w->st);
	json_decref(w->listen_id);
	json_decref(w->uris);
	free(w);
}

static void
watcher_add(am_mcp *m, struct mcp_watcher *w)
{
	/* held under m->mu by the caller, with room checked */
	w->last_write_ms = am_now_ms();
	m->watchers[m->nwatchers++] = w;
}

int
am_mcp_watch_session(am_mcp *m, am_http_ex *ex, const char *session)
{
	struct mcp_watcher *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	snprintf(w->session, sizeof(w->session), "%s", session);
	w->tools = true;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nwatchers; i++)
		if (m->watchers[i]->listen_id == NULL && strcmp(m->watchers[i]->session, session) == 0) {
			pthread_mutex_unlock(&m->mu);
			free(w);
			return am_error_set(AM_EEXIST, "this session has its stream open already");
		}
	if (m->nwatchers == MCP_WATCHERS || atomic_load(&m->stopping)) {
		pthread_mutex_unlock(&m->mu);
		free(w);
		return am_error_set(AM_ELIMIT, "%d streams are open already; try later", MCP_WATCHERS);
	}
	if ((rc = am_http_stream_open(ex, 200, "text/event-stream", session, &w->st)) != 0) {
		pthread_mutex_unlock(&m->mu);
		free(w);
		return rc;
	}
	/* the client sees the stream open; one gone already is dropped on the next tick */
	int wrc = am_http_stream_write(w->st, ": agent-mesh-gateway\n\n", 22);
	(void) wrc;
	watcher_add(m, w);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int
am_mcp_watch_listen(am_mcp *m, am_http_ex *ex, json_t *id, json_t *filter, const char *caller)
{
	struct mcp_watcher *w = calloc(1, sizeof(*w));
	json_t *subs = json_object_get(filter, "resourceSubscriptions"), *u;
	size_t i;
	int rc;

	if (w == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	w->listen_id = json_incref(id);
	w->tools = json_is_true(json_object_get(filter, "toolsListChanged"));
	w->uris = json_array();
	snprintf(w->caller, sizeof(w->caller), "%s", caller);
	json_array_foreach(subs, i, u)
		if (json_is_string(u) && json_array_size(w->uris) < 64)
			json_array_append(w->uris, u);
	pthread_mutex_lock(&m->mu);
	if (m->nwatchers == MCP_WATCHERS || atomic_load(&m->stopping)) {
		pthread_mutex_unlock(&m->mu);
		json_decref(w->listen_id);
		json_decref(w->uris);
		free(w);
		return am_error_set(AM_ELIMIT, "%d streams are open already; try later", MCP_WATCHERS);
	}
	if ((rc = am_http_stream_open(ex, 200, "text/event-stream", NULL, &w->st)) != 0) {
		pthread_mutex_unlock(&m->mu);
		json_decref(w->listen_id);
		json_decref(w->uris);
		free(w);
		return rc;
	}
	/* what is honoured: the tool list, and resources by subscription (no
	 * resource list changes: the list is the inbox, the scan and jobs) */
	json_t *honoured = json_pack("{s:b, s:O}", "toolsListChanged", w->tools, "resourceSubscriptions", w->uris);
	(void) notify(w, "notifications/subscriptions/acknowledged", json_pack("{s:o}", "notifications", honoured));
	watcher_add(m, w);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int
am_mcp_subscribe(am_mcp *m, const char *session, const char *uri, bool on)
{
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nsubs; i++)
		if (strcmp(m->subs[i].session, session) == 0 && strcmp(m->subs[i].uri, uri) == 0) {
			if (!on)
				m->subs[i] = m->subs[--m->nsubs];
			goto out;
		}
	if (!on)
		goto out;
	if (m->nsubs == MCP_SUBS) {
		rc = am_error_set(AM_ELIMIT, "%d resource subscriptions are held already", MCP_SUBS);
		goto out;
	}
	snprintf(m->subs[m->nsubs].session, sizeof(m->subs[0].session), "%s", session);
	snprintf(m->subs[m->nsubs].uri, sizeof(m->subs[0].uri), "%s", uri);
	m->nsubs++;
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

bool
am_mcp_watch_cancel(am_mcp *m, const char *caller, json_t *request_id)
{
	bool found = false;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nwatchers; i++) {
		struct mcp_watcher *w = m->watchers[i];
		if (w->listen_id != NULL && strcmp(w->caller, caller) == 0 && json_equal(w->listen_id, request_id)) {
			m->watchers[i] = m->watchers[--m->nwatchers];
			watcher_free(w, false);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return found;
}

void
am_mcp_session_ended(am_mcp *m, const char *session)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nsubs;)
		if (strcmp(m->subs[i].session, session) == 0)
			m->subs[i] = m->subs[--m->nsubs];
		else
			i++;
	for (size_t i = 0; i < m->nwatchers;)
		if (m->watchers[i]->listen_id == NULL && strcmp(m->watchers[i]->session, session) == 0) {
			struct mcp_watcher *w = m->watchers[i];
			m->watchers[i] = m->watchers[--m->nwatchers];
			watcher_free(w, false);
		} else
			i++;
	pthread_mutex_unlock(&m->mu);
}

void
am_mcp_catalog_changed(am_mcp *m)
{
	if (m != NULL)
		atomic_fetch_add(&m->catalog_gen, 1);
}

/* a job's state as a watcher would see it change: status and results */
static char *
job_state(am_mcp *m, const char *uri)
{
	const char *id = uri + strlen(AM_MCP_JOB_URI);
	json_t *job = am_jobs_get(m->calls->jobs, id);
	char buf[96];
	if (job == NULL)
		return strdup("gone");
	snprintf(buf, sizeof(buf), "%s/%zu", str_or(json_string_value(json_object_get(job, "status")), "?"),
	    json_array_size(json_object_get(job, "results")));
	json_decref(job);
	return strdup(buf);
}

/* every job uri someone watches, with its state now; the ones whose
 * state moved since the last tick go into changed */
static void
jobs_changed(am_mcp *m, json_t *changed)
{
	json_t *now = json_object();
	const char *uri;
	json_t *v;

	for (size_t i = 0; i < m->nsubs; i++)
		if (strncmp(m->subs[i].uri, AM_MCP_JOB_URI, strlen(AM_MCP_JOB_URI)) == 0)
			json_object_set_new(now, m->subs[i].uri, json_null());
	for (size_t i = 0; i < m->nwatchers; i++) {
		size_t k;
		json_array_foreach(m->watchers[i]->uris, k, v) {
			const char *u = json_string_value(v);
			if (strncmp(u, AM_MCP_JOB_URI, strlen(AM_MCP_JOB_URI)) == 0)
				json_object_set_new(now, u, json_null());
		}
	}
	json_object_foreach(now, uri, v) {
		char *st = job_state(m, uri);
		const char *was = json_string_value(json_object_get(m->job_seen, uri));
		if (st != NULL && was != NULL && strcmp(st, was) != 0)
			json_array_append_new(changed, json_string(uri));
		json_object_set_new(now, uri, json_string(st ? st : "?"));
		free(st);
	}
	json_decref(m->job_seen);
	m->job_seen = now;
}

void
am_mcp_tick(am_mcp *m, uint64_t now_ms)
{
	json_t *changed;
	bool tools = false;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	if (m->nwatchers == 0 && m->nsubs == 0) {
		/* nobody watches: only remember where things are */
		m->inbox_seen = m->api->hub ? am_hub_inbox_seq(m->api->hub) : 0;
		m->catalog_seen = atomic_load(&m->catalog_gen);
		pthread_mutex_unlock(&m->mu);
		return;
	}
	changed = json_array();
	uint64_t inbox = m->api->hub ? am_hub_inbox_seq(m->api->hub) : 0, gen = atomic_load(&m->catalog_gen);
	if (inbox != m->inbox_seen)
		json_array_append_new(changed, json_string(AM_MCP_INBOX_URI));
	if (gen != m->catalog_seen) {
		json_array_append_new(changed, json_string(AM_MCP_SCAN_URI));
		tools = true;
	}
	m->inbox_seen = inbox;
	m->catalog_seen = gen;
	jobs_changed(m, changed);
	for (size_t i = 0; i < m->nwatchers;) {
		struct mcp_watcher *w = m->watchers[i];
		size_t k;
		json_t *u;
		int rc = 0;
		if (tools && w->tools)
			rc = notify(w, "notifications/tools/list_changed", NULL);
		json_array_foreach(changed, k, u) {
			if (rc == 0 && watches(m, w, json_string_value(u)))
				rc = notify(w, "notifications/resources/updated", json_pack("{s:O}", "uri", u));
		}
		if (rc == 0 && now_ms - w->last_write_ms >= MCP_KEEPALIVE_MS) {
			w->last_write_ms = now_ms;
			rc = am_http_stream_write(w->st, ": keepalive\n\n", 13);
		}
		if (rc != 0 || !am_http_stream_alive(w->st)) { /* the client left */
			m->watchers[i] = m->watchers[--m->nwatchers];
			watcher_free(w, false);
		} else
			i++;
	}
	pthread_mutex_unlock(&m->mu);
	json_decref(changed);
}

void
am_mcp_watch_stop(am_mcp *m)
{
	pthread_mutex_lock(&m->mu);
	while (m->nwatchers > 0)
		watcher_free(m->watchers[--m->nwatchers], true);
	json_decref(m->job_seen);
	m->job_seen = NULL;
	pthread_mutex_unlock(&m->mu);
}
