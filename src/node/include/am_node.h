/*
 * am_node.h — the public contract of src/node: what an edge node runs
 * on top of the role-agnostic daemon. Its tools (one JSON file each in
 * DATA/tools, see docs/OPERATIONS.md), their argument schemas, running
 * one in its sandbox, and the feature that answers tool_call envelopes
 * (am_node_tools) and publishes the node's tool catalog.
 */
#ifndef AM_NODE_H
#define AM_NODE_H

#include "am_runtime.h"

#include <stdatomic.h>

struct json_t; /* jansson's */

/* JSON Schema subset check (schema.c); why names the first violation
 * with its path. Errors: AM_EFIELD. */
int am_schema_check(const struct json_t *schema, const struct json_t *value, char *why, size_t cap);
/* am_schema_validate: every "pattern" in schema compiles as ECMA-262;
 * else AM_EFIELD with its path in why ("input_schema.properties.x.pattern: ...") */
int am_schema_validate(const struct json_t *schema, char *why, size_t cap);

/* A node's tools (tools.c). */
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

/* The node's feature (runner.c): takes tool_call envelopes addressed here
 * out of the inbox and runs them (each at most once, recorded in
 * DATA/calls before it starts; one found running at start is reported
 * interrupted), answering with a signed tool_result; publishes the
 * tool catalog (a tool_catalog envelope) when the tools changed; serves
 * GET /v1/tools; shows its tools in mesh_scan. */
extern const am_feature am_node_tools;

#endif /* AM_NODE_H */
