/*
 * gateway.c — the gateway's feature am_gateway_calls (see am_gateway.h):
 * its hooks into the role-agnostic daemon. Opens the jobs and registers
 * the tool routes on the daemon's HTTP server, starts MCP when asked,
 * hands tool results and catalogs on, ticks the jobs past their
 * deadlines, and fills mesh_scan's "tools" from the catalogs.
 */
#define _POSIX_C_SOURCE 200809L
#include "gateway_private.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* am_trust_claim_fn over the shared state: the name's pin and the key's
 * name, each set when free; what is there decides */
static int
pair_claim(void *ctx, const char *name, const char *key_hex, char *why, size_t cap)
{
	am_shared *s = ctx;
	char key[160], won[AM_NODE_ID_LEN + AM_TAG_MAX + 2];
	int rc;

	snprintf(key, sizeof(key), "agent-mesh:pin:%s", name);
	if ((rc = am_shared_claim(s, key, key_hex, won, sizeof(won))) != 0)
		return rc;
	if (strcmp(won, key_hex) != 0) {
		snprintf(why, cap, "\"%s\" presented key %.16s… but %.16s… is pinned for it", name, key_hex, won);
		return AM_EKEYCHANGED;
	}
	snprintf(key, sizeof(key), "agent-mesh:pin-key:%s", key_hex);
	if ((rc = am_shared_claim(s, key, name, won, sizeof(won))) != 0)
		return rc;
	if (strcmp(won, name) != 0) {
		snprintf(why, cap, "key %.16s… is pinned as \"%s\" and now claims \"%s\"", key_hex, won, name);
		return AM_EKEYCHANGED;
	}
	return 0;
}

static int
calls_open(void **state, const am_daemon_view *d)
{
	struct gateway *g = calloc(1, sizeof(*g));
	char path[4096];
	int rc;

	*state = NULL;
	if (g == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	g->d = d;
	snprintf(path, sizeof(path), "%s/jobs", d->data_dir);
	snprintf(g->catalogs, sizeof(g->catalogs), "%s/catalogs", d->data_dir);
	mkdir(g->catalogs, 0755);
	if ((rc = am_jobs_open(&g->jobs, path)) != 0)
		goto fail;
	if (d->shared_state != NULL) {
		if ((rc = am_shared_open(&g->shared, d->shared_state)) != 0)
			goto fail;
		am_jobs_share(g->jobs, g->shared);
		if (d->trust != NULL)
			am_trust_share(d->trust, pair_claim, g->shared);
		/* --dev-token: one token for the pair, whichever gateway started first */
		char won[sizeof(d->api->token)];
		if (d->api->token[0] && am_shared_claim(g->shared, "agent-mesh:dev-token", d->api->token, won, sizeof(won)) == 0 &&
		    strcmp(won, d->api->token) != 0) {
			char path[4200];
			snprintf(d->api->token, sizeof(d->api->token), "%s", won);
			printf("DEVELOPMENT TOKEN (the gateway pair's, from the shared state): %s\n", d->api->token);
			fflush(stdout);
			snprintf(path, sizeof(path), "%s/dev-token", d->data_dir);
			if (am_file_write_atomic(path, d->api->token, strlen(d->api->token), 0600, true) != 0)
				am_say("could not write %s: %s", path, am_error_detail());
		}
	}
	g->calls = (am_calls){d->api, g->jobs, g->shared};
	if ((rc = am_toolapi_register(d->http, &g->calls)) != 0)
		goto fail;
	if (d->mcp_port > 0) {
		if ((rc = am_mcp_start(&g->mcp, &g->calls, d->host, d->mcp_port)) != 0) {
			rc = am_error_set(rc, "MCP on port %d: %s", d->mcp_port, am_error_detail());
			goto fail;
		}
		am_say("MCP server on http://%s:%d/mcp", d->host, d->mcp_port);
	}
	*state = g;
	return 0;
fail:
	am_jobs_close(g->jobs);
	am_shared_close(g->shared);
	free(g);
	return rc;
}

#define ORPHAN_GRACE_MS (10 * 60 * 1000) /* held this long unplaced: the result is dropped */

/* a pair: is this a result for a job nobody here knows yet? */
static bool
orphaned(struct gateway *g, const am_envelope *env)
{
	char job[AM_ID_HEX_LEN + 1];
	json_t *j;

	if (g->shared == NULL || strcmp(env->body.type, "tool_result") != 0 || !env->body.has_ref)
		return false;
	am_id_format(job, env->body.ref);
	if ((j = am_jobs_get(g->jobs, job)) != NULL) {
		json_decref(j);
		return false;
	}
	return true;
}

static am_feature_take
on_envelope(void *state, const am_envelope *env, const uint8_t id[AM_ID_BYTES], uint8_t **raw, size_t len)
{
	struct gateway *g = state;

	/* both gateways of a pair are the result's destination, and the first
	 * to take it ends it for both (its receipt): one that cannot place it
	 * yet holds it rather than drop the other's answer */
	if (orphaned(g, env) && g->norphans < sizeof(g->orphans) / sizeof(g->orphans[0])) {
		struct orphan *o = &g->orphans[g->norphans++];
		memcpy(o->id, id, AM_ID_BYTES);
		o->raw = *raw;
		o->len = len;
		o->since_ms = am_now_ms();
		*raw = NULL;
		return AM_FEATURE_TAKEN;
	}
	if (strcmp(env->body.type, "tool_result") == 0)
		am_gateway_take_result(g, env);
	else
		am_gateway_take_catalog(g, env);
	return AM_FEATURE_DONE;
}

/* the held results: taken once their job is known, dropped after the grace */
static void
orphans_retry(struct gateway *g, uint64_t now_ms)
{
	for (size_t i = 0; i < g->norphans;) {
		struct orphan *o = &g->orphans[i];
		am_envelope env;
		bool decoded = am_envelope_decode_view(&env, o->raw, o->len, o->id) == 0;
		bool placed = decoded && !orphaned(g, &env);
		if (!placed && decoded && now_ms - o->since_ms < ORPHAN_GRACE_MS) {
			i++;
			continue;
		}
		if (placed)
			am_gateway_take_result(g, &env);
		else
			am_say("a tool result for a job neither this gateway nor the shared state knows, held %llu s: dropped",
			    (unsigned long long) ((now_ms - o->since_ms) / 1000));
		(void) am_queue_inbox_ack(g->d->q, o->id, now_ms);
		free(o->raw);
		g->orphans[i] = g->orphans[--g->norphans];
	}
}

static void
calls_tick(void *state, uint64_t now_ms)
{
	struct gateway *g = state;

	am_jobs_tick(g->jobs, now_ms);
	if (g->norphans > 0)
		orphans_retry(g, now_ms);
	am_mcp_tick(g->mcp, now_ms); /* what MCP clients watch */
}

/* the names of a node's tools, from its catalog */
static json_t *
tool_names(json_t *catalogs, const char *id)
{
	json_t *names = json_array(), *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(catalogs, id), "tools"), i, t)
		if (json_is_string(json_object_get(t, "name")))
			json_array_append(names, json_object_get(t, "name"));
	return names;
}

static void
calls_scan(void *state, json_t *self, json_t *peers)
{
	struct gateway *g = state;
	json_t *cats = am_catalogs_load(g->d->data_dir), *p;
	size_t i;

	json_array_foreach(peers, i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));
		if (id != NULL)
			json_object_set_new(p, "tools", tool_names(cats, id));
	}
	(void) self; /* a gateway runs no tools */
	json_decref(cats);
}

/* /health: the shared state's, when there is one ("up" or "down") */
static void
calls_health(void *state, json_t *h)
{
	struct gateway *g = state;
	size_t queued = 0;
	uint64_t dropped = 0;

	if (g->shared == NULL)
		return;
	am_shared_counts(g->shared, &queued, &dropped);
	json_object_set_new(h, "shared_state", json_string(am_shared_up(g->shared) ? "up" : "down"));
	json_object_set_new(h, "shared_state_url", json_string(am_shared_shown(g->shared)));
	json_object_set_new(h, "shared_state_queued", json_integer((json_int_t) queued));
	json_object_set_new(h, "shared_state_dropped", json_integer((json_int_t) dropped));
}

static am_http_server *
calls_server(void *state, const char **name)
{
	struct gateway *g = state;

	*name = "mcp";
	return am_mcp_http(g->mcp);
}

/* what waits is answered ("stopping") while the servers still run, and
 * what asks from now on at once */
static void
calls_stop(void *state)
{
	struct gateway *g = state;

	am_jobs_stop(g->jobs);
}

/* the daemon's HTTP server is gone (no metrics read g->mcp now): MCP
 * stops, then the jobs its routes used go */
static void
calls_close(void *state)
{
	struct gateway *g = state;

	am_mcp_stop(g->mcp);
	/* held results stay unacknowledged in the inbox: tried again at the next start */
	for (size_t i = 0; i < g->norphans; i++)
		free(g->orphans[i].raw);
	am_jobs_close(g->jobs);
	if (g->shared != NULL && g->d->trust != NULL)
		am_trust_share(g->d->trust, NULL, NULL); /* no pin asks the shared state from here on */
	am_shared_close(g->shared); /* after the jobs: their last saves are mirrored */
	free(g);
}

static const char *const answer_types[] = {"tool_result", "tool_catalog", NULL};

const am_feature am_gateway_calls = {
    .name = "calls",
    .open = calls_open,
    .types = answer_types,
    .on_envelope = on_envelope,
    .tick = calls_tick,
    .scan = calls_scan,
    .health = calls_health,
    .server = calls_server,
    .stop = calls_stop,
    .close = calls_close,
};
