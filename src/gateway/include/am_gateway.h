/*
 * am_gateway.h — the public contract of src/gateway: what a gateway runs
 * on top of the role-agnostic daemon. Tool calls to the mesh (the HTTP
 * routes and the one path they and MCP share), the jobs they open and
 * the results that complete them, the nodes' tool catalogs, the MCP
 * server, and the feature that registers all of it (am_gateway_calls).
 */
#ifndef AM_GATEWAY_H
#define AM_GATEWAY_H

#include "am_runtime.h"

struct json_t; /* jansson's */

/* Jobs: the tool calls this gateway made, and their results (jobs.c). */
typedef struct am_jobs am_jobs;
/* called once for a waiting request: with the job (NULL if unknown) when
 * it is done, when the wait's deadline passed (job not done), or at stop
 * (stopping true); runs with the jobs lock held: answer, do not call back */
typedef void (*am_job_reply_fn)(void *ctx, struct json_t *job, bool stopping);
int am_jobs_open(am_jobs **out, const char *dir) AM_MUST_CHECK;
/* stop: every waiting request answered (stopping), and a wait from now on
 * answered at once; close: stop, then free */
void am_jobs_stop(am_jobs *j);
void am_jobs_close(am_jobs *j);
/* node: the one node the call went to (only its key's result counts),
 * NULL for a group or an area (target "group:G", "area...") */
int am_jobs_create(am_jobs *j, const char *id, const char *tool, const char *target, const char *workflow_id,
    const uint8_t *node, uint64_t now_ms, uint64_t deadline_ms) AM_MUST_CHECK;
/* result is consumed. AM_EDUP when that node's result is in already,
 * AM_ENOTFOUND for an unknown job. */
int am_jobs_result(am_jobs *j, const char *id, struct json_t *result, uint64_t now_ms);
struct json_t *am_jobs_get(am_jobs *j, const char *id);             /* a copy (new reference) or NULL */
/* the jobs (of workflow_id, NULL: all) in id order after `after` (NULL:
 * from the start), at most limit; next gets the id to continue after, ""
 * at the end (copies, as am_jobs_get: safe to read unlocked) */
struct json_t *am_jobs_list(am_jobs *j, const char *workflow_id, const char *after, size_t limit,
    char next[AM_ID_HEX_LEN + 1]);
int am_jobs_wait(am_jobs *j, const char *id, uint64_t deadline_ms, am_job_reply_fn fn, void *ctx);
/* every save mirrored to the pair's shared state, and a job not held
 * here read from it (am_jobs_get); set before use */
typedef struct am_shared am_shared;
void am_jobs_share(am_jobs *j, am_shared *s);
void am_jobs_tick(am_jobs *j, uint64_t now_ms);

/* What a call is made with: the API (store, identity, token checks) and
 * the jobs. Kept by the caller while routes use it. */
typedef struct am_calls {
	am_api *api;
	am_jobs *jobs;
	am_shared *shared; /* a gateway pair's shared state (NULL: none) */
} am_calls;

/* toolapi.c: GET /v1/tools (every catalog known here), POST
 * /v1/tools/call, GET /v1/jobs[/{id}] */
int am_toolapi_register(am_http_server *srv, am_calls *calls) AM_MUST_CHECK;
/* am_tools_call: the one path for a call from the HTTP API and MCP: check
 * the target and the right, make and store the tool_call envelope, open
 * its job. target: {"node": id-or-name} | {"group": g} | {"geo": spec} |
 * {"broadcast": true}. *job_id (65 bytes) gets the job. Errors with a
 * status: 400 (bad request, named), 403 (not allowed), 404 (unknown node),
 * 500. */
int am_tools_call(const am_calls *calls, am_api_auth *a, const struct json_t *req, char job_id[65], int *status);
/* the catalogs known here (answers.c): {node id: {"node_name", "tools":
 * [...], "created_ms"}} (new reference) */
struct json_t *am_catalogs_load(const char *data_dir);

/* The state a gateway pair shares (shared.c): Redis over hiredis, from
 * --shared-state redis://[user:pass@]host:port[/db]. Writes while Redis
 * is down are queued and replayed in order when it is back; a read then
 * fails at once (AM_EIO), AM_ENOTFOUND for a key not there. */
/* connects (down is not an error: it retries each second) */
int am_shared_open(am_shared **out, const char *url) AM_MUST_CHECK;
void am_shared_close(am_shared *s);
bool am_shared_up(am_shared *s); /* s may be NULL (false) */
const char *am_shared_shown(const am_shared *s);
void am_shared_counts(am_shared *s, size_t *queued, uint64_t *dropped);
/* ttl_ms 0: no expiry */
int am_shared_set(am_shared *s, const char *key, const void *val, size_t len, uint64_t ttl_ms) AM_MUST_CHECK;
int am_shared_del(am_shared *s, const char *key) AM_MUST_CHECK;
int am_shared_get(am_shared *s, const char *key, char **val, size_t *len) AM_MUST_CHECK;
/* key set to val unless it is set already; winner gets what it holds
 * then (ours, or the other gateway's); AM_EIO when Redis is down */
int am_shared_claim(am_shared *s, const char *key, const char *val, char *winner, size_t cap) AM_MUST_CHECK;

/* The MCP server (mcp.c) on its own port, over the same calls. */
typedef struct am_mcp am_mcp;
int am_mcp_start(am_mcp **out, am_calls *calls, const char *host, int port) AM_MUST_CHECK;
/* am_mcp_open: the same, its routes registered but no connection taken
 * (am_http_local serves it) */
int am_mcp_open(am_mcp **out, am_calls *calls, const char *host, int port) AM_MUST_CHECK;
void am_mcp_stop(am_mcp *m);
am_http_server *am_mcp_http(am_mcp *m); /* its HTTP server, for the metrics */
/* the gateway's tick: what MCP clients watch is checked and notified
 * (m may be NULL); a node's catalog arrived (the tool list changed) */
void am_mcp_tick(am_mcp *m, uint64_t now_ms);
void am_mcp_catalog_changed(am_mcp *m);

/* The gateway's feature (gateway.c): the jobs in DATA/jobs, the routes
 * above on the daemon's HTTP server, MCP on --mcp-port; takes tool_result
 * envelopes to the jobs and tool_catalog envelopes to DATA/catalogs;
 * shows each node's tools in mesh_scan. */
extern const am_feature am_gateway_calls;

#endif /* AM_GATEWAY_H */
