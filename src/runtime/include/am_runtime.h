/*
 * am_runtime.h — the public contract of src/runtime: the daemon both
 * roles run (configure, open, run, close) and, until they move into
 * src/gateway and src/node, the role features: tools and their schemas,
 * tool calls, jobs, the dispatcher, MCP and the tool API. The layers
 * below each have their own header, included here: am_net.h (links, hub,
 * discovery), am_stick.h (sticks and bundle files), am_trust.h (TOFU,
 * PKI, audit), am_api.h (HTTP and the messages API).
 */
#ifndef AM_RUNTIME_H
#define AM_RUNTIME_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"
#include "am_net.h"
#include "am_stick.h"
#include "am_trust.h"
#include "am_api.h"

#include <stdatomic.h>

struct json_t; /* jansson's */

/* --------------------------------------------------------------- tools --- */

/* JSON Schema subset check (schema.c); why names the first violation
 * with its path. Errors: AM_EFIELD. */
int am_schema_check(const struct json_t *schema, const struct json_t *value, char *why, size_t cap);
/* am_schema_validate: every "pattern" in schema compiles as ECMA-262;
 * else AM_EFIELD with its path in why ("input_schema.properties.x.pattern: ...") */
int am_schema_validate(const struct json_t *schema, char *why, size_t cap);

/* A node's tools (tools.c): one JSON file each in DATA/tools, see
 * docs/OPERATIONS.md. */
typedef struct am_tool am_tool;
typedef struct am_toolbox am_toolbox;
/* Errors: AM_EMALFORMED, AM_EFIELD (naming the file and field). A missing
 * folder is an empty toolbox. */
int am_toolbox_load(am_toolbox **out, const char *dir) AM_MUST_CHECK;
void am_toolbox_free(am_toolbox *tb);
const am_tool *am_toolbox_find(const am_toolbox *tb, const char *name);
size_t am_toolbox_count(const am_toolbox *tb);
/* [{name, description, input_schema, timeout_ms}] (new reference) */
struct json_t *am_toolbox_catalog(const am_toolbox *tb);
const struct json_t *am_tool_schema(const am_tool *t);

typedef struct am_tool_run {
	char status[24];      /* ok failed timeout output_limit cancelled */
	int exit_code, signal;
	char *out, *err;      /* NUL-terminated, at most max_output bytes */
	size_t out_len, err_len;
	bool out_truncated, err_truncated;
	uint64_t duration_ms;
	bool contained;       /* ran in a PID namespace of its own (descendants end with it) */
	char why[200];
} am_tool_run;
/* am_tool_exec: run t once with args (see tools.c for the sandbox). 0 when
 * it ran (whatever it did: r->status); errors only when it could not be
 * started. Clear r with am_tool_run_clear. */
int am_tool_exec(const am_tool *t, const struct json_t *args, const char *call_id, const char *workflow_id,
    am_tool_run *r, const atomic_int *cancel);
void am_tool_run_clear(am_tool_run *r);

/* A tool_call envelope's payload (calls.c, PROTOCOL.md section 19). */
typedef struct am_tool_call {
	char tool[AM_TAG_MAX + 1];
	struct json_t *args;          /* an object (owned) */
	char *grant;                  /* the call grant that allows it (owned) */
	char workflow_id[AM_TAG_MAX + 1];
	uint64_t deadline_ms;
} am_tool_call;
/* Errors: AM_EMALFORMED, AM_EFIELD (named), AM_ETOOBIG. */
int am_tool_call_parse(am_tool_call *c, const uint8_t *payload, size_t len) AM_MUST_CHECK;
void am_tool_call_clear(am_tool_call *c);
/* the payload (malloc'd JSON text) */
char *am_tool_call_encode(const char *tool, const struct json_t *args, const char *grant, const char *workflow_id,
    uint64_t deadline_ms);

/* Jobs: the tool calls this daemon made, and their results (jobs.c). */
typedef struct am_jobs am_jobs;
/* called once for a waiting request: with the job (NULL if unknown) when
 * it is done, when the wait's deadline passed (job not done), or at stop
 * (stopping true); runs with the jobs lock held: answer, do not call back */
typedef void (*am_job_reply_fn)(void *ctx, struct json_t *job, bool stopping);
int am_jobs_open(am_jobs **out, const char *dir) AM_MUST_CHECK;
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
void am_jobs_tick(am_jobs *j, uint64_t now_ms);

/* The dispatcher (runner.c): takes tool_call envelopes addressed here out
 * of the inbox and runs them (each at most once, recorded in DATA/calls
 * before it starts; one found running at start is reported interrupted),
 * answering with a signed tool_result; hands tool_result envelopes to the
 * jobs; keeps every node's tool catalog (tool_catalog envelopes) in
 * DATA/catalogs. */
typedef struct am_runner am_runner;
typedef struct am_runner_config {
	am_queue *q;
	const am_identity *me;
	am_hub *hub;
	am_audit *audit;
	am_toolbox *tools;        /* may be empty */
	am_jobs *jobs;
	const uint8_t *trusted;   /* gateway keys whose tokens allow calls */
	size_t ntrusted;
	const char *name;         /* this node's name (tokens may name it) */
	const char *data_dir;
	bool pki;                 /* results count only with a certificate */
	const char *cert;         /* ours (PKI), shown with each result; NULL none */
} am_runner_config;
int am_runner_start(am_runner **out, const am_runner_config *c) AM_MUST_CHECK;
void am_runner_stop(am_runner *r);
/* tool results refused since start (signed by a key that may not give them) */
uint64_t am_runner_results_refused(am_runner *r);
/* the catalogs known here: {node id: {"node_name", "tools": [...]}} (new ref) */
struct json_t *am_catalogs_load(const char *data_dir);

/* The MCP server (mcp.c) on its own port, over the same api state. */
typedef struct am_mcp am_mcp;
int am_mcp_start(am_mcp **out, am_api *api, const char *host, int port) AM_MUST_CHECK;
/* am_mcp_open: the same, its routes registered but no connection taken
 * (am_http_local serves it) */
int am_mcp_open(am_mcp **out, am_api *api, const char *host, int port) AM_MUST_CHECK;
void am_mcp_stop(am_mcp *m);
am_http_server *am_mcp_http(am_mcp *m); /* its HTTP server, for the metrics */
/* toolapi.c: GET /v1/tools, POST /v1/tools/call, GET /v1/jobs[/{id}] */
int am_toolapi_register(am_http_server *srv, am_api *api) AM_MUST_CHECK;
/* am_tools_call: the one path for a call from the HTTP API and MCP: check
 * the target and the right, make and store the tool_call envelope, open
 * its job. target: {"node": id-or-name} | {"group": g} | {"geo": spec} |
 * {"broadcast": true}. *job_id (65 bytes) gets the job. Errors with a
 * status: 400 (bad request, named), 403 (not allowed), 404 (unknown node),
 * 500. */
int am_tools_call(am_api *api, am_api_auth *a, const struct json_t *req, char job_id[65], int *status);

/* am_daemon_main: the whole daemon (daemon.c); agent-mesh-node and
 * agent-mesh-gateway are this with their role. Returns the exit status. */
int am_daemon_main(bool gateway, int argc, char **argv);

#endif /* AM_RUNTIME_H */
