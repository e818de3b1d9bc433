/*
 * mcp.c — the Model Context Protocol server (--mcp-port, 8790): the
 * streamable HTTP transport, JSON-RPC 2.0 over POST /mcp, for both eras
 * from one endpoint: 2026-07-28 (stateless: each request carries its
 * revision and the client's capabilities in _meta; server/discover) and
 * the 2025 revisions (initialize, a session in Mcp-Session-Id; GET with
 * the session opens its notification stream). Methods: server/discover,
 * initialize, ping, tools/list, tools/call, resources/list, /read,
 * /templates/list, /subscribe, /unsubscribe, subscriptions/listen,
 * logging/setLevel; notifications get 202 (notifications/cancelled ends
 * a call's wait or a listen). Streams: mcp_stream.c, mcp_watch.c.
 *
 * Tools: the built-ins mesh_send, mesh_inbox, mesh_scan, mesh_job_status,
 * and every tool of every node whose catalog is known here, as
 * "<node name>__<tool>" (mcp_name_plain; "<node>/<tool>" is still taken
 * on calls). A node tool call takes the same path as POST
 * /v1/tools/call (am_tools_call) and waits for the result: as an event
 * stream with progress for clients that take one (mcp_stream.c), else as
 * one JSON answer; a node that does not answer in time gives a job id to
 * poll with mesh_job_status. Authorization: the same bearer capability
 * tokens as the HTTP API, each tool call checked against its own right.
 */
#define _POSIX_C_SOURCE 200809L
#define AM_MCP_NAME_MAX 64 /* what MCP clients accept: ^[a-zA-Z0-9_-]{1,64}$ */
#include "mcp_private.h"

#include <ctype.h>

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the revisions served, newest first: a client asking for another one gets
 * the newest (it may then disconnect, as the lifecycle says) */
#define MCP_TOOLS_PAGE 100 /* tools/list entries a page (nextCursor for more) */
static const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
/* the stateless era (no initialize, no session; each request carries its
 * revision and the client's capabilities in _meta) */
static const char *const mcp_modern_versions[] = {"2026-07-28"};
#define MCP_META_VERSION "io.modelcontextprotocol/protocolVersion"

static bool
modern_known(const char *v)
{
	for (size_t i = 0; i < sizeof(mcp_modern_versions) / sizeof(mcp_modern_versions[0]); i++)
		if (strcmp(v, mcp_modern_versions[i]) == 0)
			return true;
	return false;
}

/* every revision served, newest first */
static json_t *
all_versions(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(mcp_modern_versions) / sizeof(mcp_modern_versions[0]); i++)
		json_array_append_new(a, json_string(mcp_modern_versions[i]));
	for (size_t i = 0; i < sizeof(mcp_versions) / sizeof(mcp_versions[0]); i++)
		json_array_append_new(a, json_string(mcp_versions[i]));
	return a;
}

/* what one POST is: its era, who sent it, what it accepts, and the HTTP
 * status its answer gets (400 for a revision refused) */
typedef struct {
	bool modern;
	bool sse;              /* Accept names text/event-stream */
	unsigned status;
	char caller[65];       /* hash of token and session: who may cancel a call */
	const char *session;   /* Mcp-Session-Id (2025-era), else NULL */
	int log_level;         /* notifications/message from here up; -1 none */
} mcp_req;

static bool
version_known(const char *v)
{
	for (size_t i = 0; i < sizeof(mcp_versions) / sizeof(mcp_versions[0]); i++)
		if (strcmp(v, mcp_versions[i]) == 0)
			return true;
	return false;
}

const char *const am_mcp_log_levels[8] = {"debug", "info", "notice", "warning", "error", "critical", "alert",
    "emergency"};

static int
log_level_index(const char *name)
{
	for (int i = 0; name != NULL && i < 8; i++)
		if (strcmp(name, am_mcp_log_levels[i]) == 0)
			return i;
	return -1;
}

/* the session's logging level (-1: none asked, or no such session);
 * set: store level first */
static int
session_log_level(am_mcp *m, const char *id, bool set, int level)
{
	int found = -1;

	if (id == NULL)
		return -1;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < MCP_SESSIONS; i++)
		if (m->sessions[i].id[0] && strcmp(m->sessions[i].id, id) == 0) {
			if (set)
				m->sessions[i].log_level = level;
			found = m->sessions[i].log_level;
			break;
		}
	pthread_mutex_unlock(&m->mu);
	return found;
}

static void
session_add(am_mcp *m, const char *id)
{
	pthread_mutex_lock(&m->mu);
	snprintf(m->sessions[m->next_session].id, 33, "%s", id);
	m->sessions[m->next_session].at_ms = am_now_ms();
	m->sessions[m->next_session].log_level = -1;
	if (m->calls->shared != NULL) { /* the other gateway of a pair takes it too */
		char key[80];
		snprintf(key, sizeof(key), "agent-mesh:mcp-session:%s", id);
		if (am_shared_set(m->calls->shared, key, "1", 1, 24ull * 3600 * 1000) != 0)
			am_say("MCP: shared state: %s", am_error_detail());
	}
	m->next_session = (m->next_session + 1) % MCP_SESSIONS;
	pthread_mutex_unlock(&m->mu);
}

/* is id a session we gave out (and, with drop, forget it) */
static bool
session_known(am_mcp *m, const char *id, bool drop)
{
	bool found = false;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < MCP_SESSIONS && !found; i++)
		if (m->sessions[i].id[0] && strcmp(m->sessions[i].id, id) == 0) {
			found = true;
			if (drop)
				m->sessions[i].id[0] = '\0';
		}
	pthread_mutex_unlock(&m->mu);
	/* a gateway pair: a session the other gateway gave out is one too
	 * (kept 24 h in the shared state), and ending it ends it for both */
	if (m->calls->shared != NULL && strlen(id) <= 32 && strspn(id, "0123456789abcdef") == strlen(id)) {
		char key[80], *v = NULL;
		size_t len = 0;
		snprintf(key, sizeof(key), "agent-mesh:mcp-session:%s", id);
		if (!found && am_shared_get(m->calls->shared, key, &v, &len) == 0) {
			found = true;
			if (!drop)
				session_add(m, id);
		}
		free(v);
		if (found && drop && am_shared_del(m->calls->shared, key) != 0)
			am_say("MCP: shared state: %s", am_error_detail());
	}
	return found;
}

/* Origin (when a browser sends one) must be this machine or one named in
 * MCP_ALLOWED_ORIGINS (comma-separated, e.g. "https://tools.site.lan"):
 * the transport's guard against DNS rebinding. */
static bool
origin_allowed(const char *origin)
{
	static const char *const local[] = {"http://localhost", "https://localhost", "http://127.0.0.1",
	    "https://127.0.0.1", "http://[::1]", "https://[::1]"};
	const char *allow = getenv("MCP_ALLOWED_ORIGINS");

	if (origin == NULL)
		return true; /* not a browser: nothing to rebind */
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		size_t n = strlen(local[i]);
		if (strncmp(origin, local[i], n) == 0 && (origin[n] == '\0' || origin[n] == ':'))
			return true;
	}
	if (allow != NULL)
		for (const char *p = allow; *p;) {
			size_t n = strcspn(p, ",");
			if (n > 0 && strlen(origin) == n && strncmp(origin, p, n) == 0)
				return true;
			p += n + (p[n] == ',');
		}
	return false;
}

json_t *
am_mcp_rpc_error(json_t *id, int code, const char *msg)
{
	return json_pack("{s:s, s:O, s:{s:i, s:o}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code", code,
	    "message", am_json_text(msg));
}

/* modern: the 2026-07-28 result kind (always "complete" here) */
json_t *
am_mcp_rpc_result(json_t *id, json_t *result, bool modern)
{
	if (modern && json_is_object(result) && json_object_get(result, "resultType") == NULL)
		json_object_set_new(result, "resultType", json_string("complete"));
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

#define rpc_error am_mcp_rpc_error
#define rpc_result(id, r) am_mcp_rpc_result((id), (r), false)

static json_t *
text_content(const char *text, bool is_error, json_t *structured)
{
	json_t *r = json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text", am_json_text(text), "isError", is_error);
	if (structured != NULL)
		json_object_set_new(r, "structuredContent", structured);
	return r;
}

/* ---- tools/list ---- */

static json_t *
builtin_tools(void)
{
	return json_pack(
	    "[{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}},"
	    " {s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}}},"
	    " {s:s, s:s, s:{s:s, s:{}}},"
	    " {s:s, s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}]",
	    "name", "mesh_send", "description",
	    "Send a message through the mesh to a node (to: id), a group, or everyone (broadcast: true); "
	    "it is delivered when the destination is reachable.",
	    "inputSchema", "type", "object", "properties", "to", "type", "string", "group", "type", "string", "broadcast",
	    "type", "boolean", "text", "type", "string", "workflow_id", "type", "string",
	    "name", "mesh_inbox", "description", "Messages that arrived for this gateway, oldest first.", "inputSchema",
	    "type", "object", "properties", "limit", "type", "integer", "ack", "type", "boolean",
	    "name", "mesh_scan", "description", "Every node known: link state, position, zones, groups, tools.",
	    "inputSchema", "type", "object", "properties",
	    "name", "mesh_job_status", "description",
	    "The status and results of a tool call made earlier (the job id a call returned when its node was not "
	    "reachable in time).",
	    "inputSchema", "type", "object", "properties", "job_id", "type", "string", "required", "job_id");
}

/* What each built-in's structuredContent holds (clients check it) */
static void
builtin_output_schemas(json_t *tools)
{
	size_t i;
	json_t *t;

	json_array_foreach(tools, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		json_t *o = NULL;
		if (strcmp(n, "mesh_send") == 0)
			o = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "id", "type", "string", "required",
			    "id");
		else if (strcmp(n, "mesh_inbox") == 0)
			o = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "messages", "type", "array",
			    "required", "messages");
		else if (strcmp(n, "mesh_scan") == 0)
			o = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "catalogs", "type", "object",
			    "required", "catalogs");
		else if (strcmp(n, "mesh_job_status") == 0)
			o = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:[s, s]}", "type", "object", "properties", "job_id",
			    "type", "string", "status", "type", "string", "results", "type", "array", "required", "job_id", "status");
		if (o != NULL)
			json_object_set_new(t, "outputSchema", o);
	}
}

/* An MCP tool name for a node's tool. Clients accept ^[a-zA-Z0-9_-]{1,64}$
 * only, while node and tool names may hold '.' and ':': "<node>__<tool>"
 * with every other character as '-'. Where two tools would get the same
 * name (crane.1 and crane-1), or it would pass 64 characters, each gets
 * its first 55 characters, '_' and 8 hex digits of a hash of the node's
 * id and the tool's name, stable whatever else is in the catalog. The
 * node, its id and the tool are also in the tool's _meta and title. */
static void
mcp_name_plain(char out[AM_MCP_NAME_MAX + 1 + 2 * AM_TAG_MAX], const char *node, const char *tool)
{
	size_t n = 0;
	for (const char *p = node; *p; p++)
		out[n++] = (isalnum((unsigned char) *p) || *p == '_' || *p == '-') ? *p : '-';
	out[n++] = '_';
	out[n++] = '_';
	for (const char *p = tool; *p; p++)
		out[n++] = (isalnum((unsigned char) *p) || *p == '_' || *p == '-') ? *p : '-';
	out[n] = '\0';
}

static void
mcp_name_hashed(char out[AM_MCP_NAME_MAX + 1], const char *plain, const char *node_id, const char *tool)
{
	unsigned char h[4];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *) node_id, strlen(node_id));
	crypto_generichash_update(&st, (const unsigned char *) "/", 1);
	crypto_generichash_update(&st, (const unsigned char *) tool, strlen(tool));
	crypto_generichash_final(&st, h, sizeof(h));
	snprintf(out, AM_MCP_NAME_MAX + 1, "%.55s_%02x%02x%02x%02x", plain, h[0], h[1], h[2], h[3]);
}

static json_t *
node_tools(am_api *api)
{
	json_t *cats = am_catalogs_load(api->data_dir), *out = json_array(), *c, *seen = json_object();
	const char *id;

	/* how many tools would take each plain name */
	json_object_foreach(cats, id, c) {
		const char *node = json_string_value(json_object_get(c, "node_name"));
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(c, "tools"), i, t) {
			char plain[AM_MCP_NAME_MAX + 1 + 2 * AM_TAG_MAX];
			const char *tn = json_string_value(json_object_get(t, "name"));
			if (tn == NULL || node == NULL || strlen(node) > AM_TAG_MAX || strlen(tn) > AM_TAG_MAX)
				continue;
			mcp_name_plain(plain, node, tn);
			json_object_set_new(seen, plain, json_integer(json_integer_value(json_object_get(seen, plain)) + 1));
		}
	}
	json_object_foreach(cats, id, c) {
		const char *node = json_string_value(json_object_get(c, "node_name"));
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(c, "tools"), i, t) {
			char plain[AM_MCP_NAME_MAX + 1 + 2 * AM_TAG_MAX], name[AM_MCP_NAME_MAX + 1], desc[1024], title[160];
			const char *tn = json_string_value(json_object_get(t, "name"));
			const char *td = json_string_value(json_object_get(t, "description"));
			json_t *schema = json_object_get(t, "input_schema");
			if (tn == NULL || node == NULL || strlen(node) > AM_TAG_MAX || strlen(tn) > AM_TAG_MAX)
				continue;
			mcp_name_plain(plain, node, tn);
			if (strlen(plain) > AM_MCP_NAME_MAX || json_integer_value(json_object_get(seen, plain)) > 1)
				mcp_name_hashed(name, plain, id, tn);
			else
				snprintf(name, sizeof(name), "%s", plain);
			snprintf(desc, sizeof(desc), "%s (tool on node %s, %.16s…; runs when the node is reachable)",
			    td ? td : tn, node, id);
			snprintf(title, sizeof(title), "%s on %s", tn, node);
			/* "o" takes the reference: a made-up default schema is not leaked */
			json_t *sch = json_is_object(schema) ? json_incref(schema) : json_pack("{s:s}", "type", "object");
			json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s}}", "name", name, "title",
			    title, "description", desc, "inputSchema", sch, "_meta", "agent-mesh/node", node, "agent-mesh/node_id",
			    id, "agent-mesh/tool", tn));
		}
	}
	json_decref(seen);
	json_decref(cats);
	return out;
}

/* The node (by id) and tool an MCP name stands for: "<node>__<tool>" as
 * tools/list gives it, or the older "<node>/<tool>". */
static bool
resolve_tool(am_api *api, const char *name, char node[AM_NODE_ID_LEN + AM_TAG_MAX + 1], char tool[AM_TAG_MAX + 1])
{
	const char *slash = strchr(name, '/');
	bool found = false;

	if (slash != NULL) {
		if (slash == name || slash[1] == '\0' || (size_t) (slash - name) > AM_TAG_MAX || strlen(slash + 1) > AM_TAG_MAX)
			return false;
		snprintf(node, AM_NODE_ID_LEN + AM_TAG_MAX + 1, "%.*s", (int) (slash - name), name);
		snprintf(tool, AM_TAG_MAX + 1, "%s", slash + 1);
		return true;
	}
	json_t *all = node_tools(api), *t;
	size_t i;
	json_array_foreach(all, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "name")), name) != 0)
			continue;
		json_t *meta = json_object_get(t, "_meta");
		snprintf(node, AM_NODE_ID_LEN + AM_TAG_MAX + 1, "%s", json_string_value(json_object_get(meta, "agent-mesh/node_id")));
		snprintf(tool, AM_TAG_MAX + 1, "%s", json_string_value(json_object_get(meta, "agent-mesh/tool")));
		found = true;
		break;
	}
	json_decref(all);
	return found;
}

/* ---- tools/call ---- */

struct pending {
	am_http_ex *ex;
	json_t *id;
	bool modern;
};

static void job_content(json_t *job, json_t **content);

json_t *
am_mcp_job_content(json_t *job)
{
	json_t *c = NULL;
	job_content(job, &c);
	return c;
}

static void
job_content(json_t *job, json_t **content)
{
	json_t *results = json_object_get(job, "results"), *r;
	const char *status = json_string_value(json_object_get(job, "status"));
	size_t i, n = json_array_size(results);
	bool err = false;
	char *text;

	if (n == 0 && status != NULL && strcmp(status, "expired") == 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "job %s expired: no result came back before the call's deadline",
		    json_string_value(json_object_get(job, "job_id")));
		*content = text_content(msg, true, json_incref(job));
		return;
	}
	if (n == 0) {
		char msg[300];
		snprintf(msg, sizeof(msg),
		    "job %s is %s: the node has not answered yet (it may be out of reach); poll mesh_job_status with this job_id",
		    json_string_value(json_object_get(job, "job_id")), status ? status : "pending");
		*content = text_content(msg, false, json_incref(job));
		return;
	}
	json_array_foreach(results, i, r) {
		const char *st = json_string_value(json_object_get(r, "status"));
		err |= st == NULL || strcmp(st, "ok") != 0;
	}
	if (n == 1) {
		r = json_array_get(results, 0);
		const char *out = json_string_value(json_object_get(r, "stdout"));
		const char *why = json_string_value(json_object_get(r, "reason"));
		text = strdup(err ? (why ? why : (out ? out : "failed")) : (out ? out : ""));
	} else {
		text = json_dumps(results, JSON_COMPACT);
	}
	*content = text_content(text ? text : "", err, json_incref(job));
	free(text);
}

static void
call_done(void *ctx, json_t *job, bool stopping)
{
	struct pending *p = ctx;
	json_t *content;

	if (job == NULL || stopping)
		am_http_reply_json_session(p->ex, 200, rpc_error(p->id, -32603, "the gateway is stopping; poll mesh_job_status later"), NULL);
	else {
		job_content(job, &content);
		am_http_reply_json_session(p->ex, 200, am_mcp_rpc_result(p->id, content, p->modern), NULL);
	}
	json_decref(p->id);
	free(p);
}

/* the built-in mesh_scan: the tool catalogs known here */
static json_t *
builtin_scan(am_mcp *m, am_api_auth *a, json_t *id)
{
	if (am_api_auth_allow(m->api, a, "scan", NULL) != 0)
		return rpc_result(id, text_content(am_error_detail(), true, NULL));
	json_t *cats = am_catalogs_load(m->api->data_dir);
	char *t = json_dumps(cats, JSON_COMPACT);
	json_t *r = rpc_result(id, text_content(t ? t : "{}", false, json_pack("{s:o}", "catalogs", cats)));
	free(t);
	return r;
}

/* the built-in mesh_job_status: one job and its results */
static json_t *
builtin_job_status(am_mcp *m, am_api_auth *a, json_t *id, json_t *args)
{
	const char *jid = json_string_value(json_object_get(args, "job_id"));
	json_t *jobj, *content;

	if (jid == NULL)
		return rpc_error(id, -32602, "arguments.job_id is required");
	if (am_api_auth_allow(m->api, a, "read:jobs", NULL) != 0)
		return rpc_result(id, text_content(am_error_detail(), true, NULL));
	if ((jobj = am_jobs_get(m->calls->jobs, jid)) == NULL)
		return rpc_result(id, text_content("no such job here", true, NULL));
	job_content(jobj, &content);
	json_decref(jobj);
	return rpc_result(id, content);
}

static const char *
str_or(const char *s, const char *otherwise)
{
	return s != NULL ? s : otherwise;
}

/* the first 100 inbox entries, text where it is one */
static json_t *
inbox_messages(am_mcp *m)
{
	am_queue_inbox_entry ents[100];
	size_t n = 0;
	json_t *arr = json_array();

	if (am_queue_inbox_list(m->api->q, 0, ents, 100, &n) != 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *raw = NULL, *pl = NULL;
		size_t len = 0, plen = 0;
		am_envelope env;
		if (am_queue_get(m->api->q, ents[i].id, &raw, &len, NULL) == 0 && am_envelope_decode(&env, raw, len) == 0) {
			char eid[AM_ID_HEX_LEN + 1], src[AM_NODE_ID_LEN + 1];
			am_id_format(eid, env.id);
			am_node_id_format(src, env.body.src);
			json_t *e = json_pack("{s:s, s:s, s:s}", "id", eid, "from", src, "type", env.body.type);
			if (am_envelope_payload(&pl, &plen, &env, m->api->me) == 0) {
				json_t *t = json_stringn((const char *) pl, plen);
				if (t != NULL)
					json_object_set_new(e, "text", t);
				free(pl);
			}
			json_array_append_new(arr, e);
			am_envelope_clear(&env);
		}
		free(raw);
	}
	return arr;
}

/* the built-in mesh_inbox */
static json_t *
builtin_inbox(am_mcp *m, am_api_auth *a, json_t *id)
{
	if (am_api_auth_allow(m->api, a, "read:inbox", NULL) != 0)
		return rpc_result(id, text_content(am_error_detail(), true, NULL));
	json_t *arr = inbox_messages(m);
	char *t = json_dumps(arr, JSON_COMPACT);
	json_t *r = rpc_result(id, text_content(t ? t : "[]", false, json_pack("{s:o}", "messages", arr)));
	free(t);
	return r;
}

/* ---- resources ---- */

/* the right a resource takes to read or watch; NULL: not one of ours */
static const char *
resource_right(const char *uri)
{
	if (strcmp(uri, AM_MCP_INBOX_URI) == 0)
		return "read:inbox";
	if (strcmp(uri, AM_MCP_SCAN_URI) == 0)
		return "scan";
	if (strncmp(uri, AM_MCP_JOB_URI, strlen(AM_MCP_JOB_URI)) == 0 && strlen(uri + strlen(AM_MCP_JOB_URI)) == AM_ID_HEX_LEN)
		return "read:jobs";
	return NULL;
}

static json_t *
resource_entry(const char *uri, const char *name, const char *title, const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name, "title", title, "description", desc,
	    "mimeType", "application/json");
}

/* the inbox and the scan first, then the jobs, 100 a page (the cursor
 * is the last job id given) */
static json_t *
resources_list(am_mcp *m, json_t *id, json_t *params)
{
	const char *cursor = json_string_value(json_object_get(params, "cursor"));
	char next[AM_ID_HEX_LEN + 1];
	json_t *out = json_array(), *job;
	size_t i;

	if (json_object_get(params, "cursor") != NULL && (cursor == NULL || strlen(cursor) != AM_ID_HEX_LEN)) {
		json_decref(out);
		return rpc_error(id, -32602, "params.cursor: not a cursor this server gave");
	}
	if (cursor == NULL) {
		json_array_append_new(out, resource_entry(AM_MCP_INBOX_URI, "inbox", "Inbox",
		    "Messages that arrived for this gateway, oldest first (up to 100)"));
		json_array_append_new(out, resource_entry(AM_MCP_SCAN_URI, "mesh_scan", "Mesh scan",
		    "Every node's tool catalog known here"));
	}
	json_t *jobs = am_jobs_list(m->calls->jobs, NULL, cursor, 100, next);
	json_array_foreach(jobs, i, job) {
		const char *jid = json_string_value(json_object_get(job, "job_id"));
		char uri[160], desc[200];
		if (jid == NULL)
			continue;
		snprintf(uri, sizeof(uri), "%s%s", AM_MCP_JOB_URI, jid);
		snprintf(desc, sizeof(desc), "tool call %s: %s", str_or(json_string_value(json_object_get(job, "tool")), "?"),
		    str_or(json_string_value(json_object_get(job, "status")), "?"));
		json_array_append_new(out, resource_entry(uri, jid, "Job", desc));
	}
	json_decref(jobs);
	json_t *res = json_pack("{s:o}", "resources", out);
	if (next[0])
		json_object_set_new(res, "nextCursor", json_string(next));
	return rpc_result(id, res);
}

static json_t *
resources_read(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, bool modern)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	const char *right = uri != NULL ? resource_right(uri) : NULL;
	json_t *body = NULL;

	if (uri == NULL)
		return rpc_error(id, -32602, "params.uri is required");
	if (right != NULL && am_api_auth_allow(m->api, a, right, NULL) != 0)
		return rpc_error(id, -32001, am_error_detail());
	if (right == NULL) {
		body = NULL;
	} else if (strcmp(uri, AM_MCP_INBOX_URI) == 0) {
		body = json_pack("{s:o}", "messages", inbox_messages(m));
	} else if (strcmp(uri, AM_MCP_SCAN_URI) == 0) {
		body = json_pack("{s:o}", "catalogs", am_catalogs_load(m->api->data_dir));
	} else {
		body = am_jobs_get(m->calls->jobs, uri + strlen(AM_MCP_JOB_URI));
	}
	if (body == NULL) {
		/* not found: -32002 for the 2025 revisions, -32602 for 2026-07-28; the uri in data either way */
		json_t *e = rpc_error(id, modern ? -32602 : -32002, "no such resource here");
		json_object_set_new(json_object_get(e, "error"), "data", json_pack("{s:s}", "uri", uri));
		return e;
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_t *r = rpc_result(id, json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", "application/json",
	                               "text", text ? text : "null"));
	free(text);
	return r;
}

/* the built-in mesh_send, through the same checks as POST /v1/messages;
 * wf: _meta's workflow (the tool's own argument wins) */
static json_t *
builtin_send(am_mcp *m, am_api_auth *a, json_t *id, json_t *args, const char *wf)
{
	const char *text = json_string_value(json_object_get(args, "text"));
	const char *to = json_string_value(json_object_get(args, "to"));
	const char *group = json_string_value(json_object_get(args, "group"));
	am_envelope_spec s = {0};
	am_envelope env = {0};
	am_queue_result res;
	char action[2 * AM_RIGHT_MAX], eid[AM_ID_HEX_LEN + 1], msg[400];
	uint64_t now = am_now_ms();
	json_t *r;

	if (text == NULL)
		return rpc_error(id, -32602, "arguments.text is required");
	if (to != NULL) {
		if (am_node_id_parse(s.dest_node, to) != 0)
			return rpc_error(id, -32602, "arguments.to must be a node id (64 hex)");
		s.dest_kind = AM_DEST_NODE;
		snprintf(action, sizeof(action), "send:node:%s", to);
	} else if (group != NULL) {
		if (am_tag_check("group", group, strlen(group)) != 0)
			return rpc_error(id, -32602, "arguments.group must be a group name");
		s.dest_kind = AM_DEST_GROUP;
		s.dest_group = group;
		snprintf(action, sizeof(action), "send:group:%s", group);
	} else if (json_is_true(json_object_get(args, "broadcast"))) {
		s.dest_kind = AM_DEST_BROADCAST;
		snprintf(action, sizeof(action), "send:broadcast");
	} else {
		return rpc_error(id, -32602, "give arguments.to, arguments.group or arguments.broadcast: true");
	}
	/* the workflow the tool's own argument names, else _meta's: the
	 * audit record and the envelope carry the same one */
	const char *swf = json_string_value(json_object_get(args, "workflow_id"));
	if (swf == NULL)
		swf = wf;
	if (am_api_auth_allow(m->api, a, action, swf) != 0)
		return rpc_result(id, text_content(am_error_detail(), true, NULL));
	s.created_ms = now;
	s.expires_ms = now + 7ull * 24 * 3600 * 1000;
	s.priority = AM_PRIO_NORMAL;
	s.content_type = "text/plain";
	s.workflow_id = swf;
	s.payload = (const uint8_t *) text;
	s.payload_len = strlen(text);
	if (am_envelope_create_decoded(&env, &s, m->api->me) != 0 || am_queue_put_own(m->api->q, &env, 1, now, &res) != 0 ||
	    res.rc != 0) {
		r = rpc_result(id, text_content(am_error_detail(), true, NULL));
	} else {
		am_hub_note(m->api->hub, env.id, 1, 0, res.inboxed);
		am_id_format(eid, env.id);
		snprintf(msg, sizeof(msg), "queued as %s; it goes out on the next link", eid);
		r = rpc_result(id, text_content(msg, false, json_pack("{s:s}", "id", eid)));
	}
	am_envelope_clear(&env);
	return r;
}

/* a node's tool: the call made, then its answer awaited up to
 * _meta.wait_ms — NULL with *deferred when it comes later. A client that
 * takes text/event-stream gets the wait as a stream (progress each second
 * when it gave a progressToken; default wait 60 s, at most 600 s), else
 * one JSON answer (default 10 s, at most 60 s). */
static json_t *
node_tool(am_mcp *m, am_api_auth *a, json_t *id, const char *name, json_t *args, json_t *meta, am_http_ex *ex,
    mcp_req *rq, bool *deferred)
{
	const char *wf = json_string_value(json_object_get(meta, "workflow_id"));
	char node[AM_NODE_ID_LEN + AM_TAG_MAX + 1], tool[AM_TAG_MAX + 1], job[65], msg[400];
	uint64_t wait = rq->sse ? 60000 : 10000, most = rq->sse ? 600000 : 60000;
	int status;

	if (!resolve_tool(m->api, name, node, tool))
		return rpc_error(id, -32602, "unknown tool (see tools/list; node tools are named <node>__<tool>)");
	/* the tool's own workflow_id argument names the workflow too (for the
	 * audit record and the job), _meta's when it has none */
	const char *awf = json_string_value(json_object_get(args, "workflow_id"));
	if (awf != NULL)
		wf = awf;
	json_t *req = json_pack("{s:s, s:s, s:o}", "node", node, "tool", tool, "args", args ? json_incref(args) : json_object());
	if (wf != NULL)
		json_object_set_new(req, "workflow_id", json_string(wf));
	int rc = am_tools_call(m->calls, a, req, job, &status);
	json_decref(req);
	if (rc != 0)
		return rpc_result(id, text_content(am_error_detail(), true, NULL));
	json_t *w = json_object_get(meta, "wait_ms");
	if (json_is_integer(w) && json_integer_value(w) >= 0 && (uint64_t) json_integer_value(w) <= most)
		wait = (uint64_t) json_integer_value(w);
	if (rq->sse && wait > 0) {
		/* the node as the client named it: "<node>" of "<node>__<tool>" or "<node>/<tool>" */
		char shown[AM_TAG_MAX * 2 + 8];
		const char *cut = strstr(name, "__");
		if (cut == NULL)
			cut = strchr(name, '/');
		snprintf(shown, sizeof(shown), "%.*s", cut != NULL ? (int) (cut - name) : (int) strlen(name), name);
		if (am_mcp_stream_call(m, ex, id, job, shown, json_object_get(meta, "progressToken"), wait, rq->modern,
		        rq->caller, rq->log_level) == 0) {
			*deferred = true;
			return NULL;
		}
		/* too many waiting: the job id to poll, as below */
	} else {
		struct pending *p = calloc(1, sizeof(*p));
		if (p == NULL)
			return rpc_error(id, -32603, "out of memory");
		p->ex = ex;
		p->id = json_incref(id);
		p->modern = rq->modern;
		if (am_jobs_wait(m->calls->jobs, job, am_now_ms() + wait, call_done, p) == 0) {
			*deferred = true;
			return NULL;
		}
		json_decref(p->id);
		free(p);
	}
	snprintf(msg, sizeof(msg), "job %s is pending; poll mesh_job_status with this job_id", job);
	return rpc_result(id, text_content(msg, false, json_pack("{s:s, s:s}", "job_id", job, "status", "pending")));
}

/* returns a response, or NULL when the answer comes later (ex kept) */
static json_t *
tools_call(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, am_http_ex *ex, mcp_req *rq, bool *deferred)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments"), *meta = json_object_get(params, "_meta");

	*deferred = false;
	if (name == NULL)
		return rpc_error(id, -32602, "params.name (the tool) is required");
	if (args != NULL && !json_is_object(args))
		return rpc_error(id, -32602, "params.arguments must be an object");
	if (strcmp(name, "mesh_scan") == 0)
		return builtin_scan(m, a, id);
	if (strcmp(name, "mesh_job_status") == 0)
		return builtin_job_status(m, a, id, args);
	if (strcmp(name, "mesh_inbox") == 0)
		return builtin_inbox(m, a, id);
	if (strcmp(name, "mesh_send") == 0)
		return builtin_send(m, a, id, args, json_string_value(json_object_get(meta, "workflow_id")));
	return node_tool(m, a, id, name, args, meta, ex, rq, deferred);
}

/* -32022: the revision asked for is not served (with what is) */
static json_t *
version_refused(json_t *id, const char *requested)
{
	char msg[120];
	snprintf(msg, sizeof(msg), "unsupported protocol version %.40s", requested);
	json_t *e = rpc_error(id, -32022, msg);
	json_object_set_new(json_object_get(e, "error"), "data",
	    json_pack("{s:o, s:s}", "supported", all_versions(), "requested", requested));
	return e;
}

/* The 2026-07-28 checks on one request: its _meta names a revision we
 * serve, and the headers the transport mirrors agree with the body. */
static json_t *
modern_check(am_http_ex *ex, json_t *id, const char *method, const char *mv, mcp_req *rq)
{
	const char *hv = am_http_header(ex, "MCP-Protocol-Version"), *hm = am_http_header(ex, "Mcp-Method");
	char msg[200];

	if (mv == NULL)
		return rpc_error(id, -32602, "params._meta[\"" MCP_META_VERSION "\"] is required (revision 2026-07-28)");
	if (!modern_known(mv)) {
		rq->status = 400;
		return version_refused(id, mv);
	}
	if (hv != NULL && strcmp(hv, mv) != 0) {
		rq->status = 400;
		snprintf(msg, sizeof(msg), "the MCP-Protocol-Version header (%.40s) and the request's _meta (%.40s) disagree", hv, mv);
		return rpc_error(id, -32020, msg);
	}
	if (hm != NULL && strcmp(hm, method) != 0) {
		rq->status = 400;
		snprintf(msg, sizeof(msg), "the Mcp-Method header (%.40s) and the request's method (%.40s) disagree", hm, method);
		return rpc_error(id, -32020, msg);
	}
	if (strcmp(method, "initialize") == 0)
		return rpc_error(id, -32601, "revision 2026-07-28 has no initialize: send server/discover");
	return NULL;
}

/* server/discover: what this server is, for 2026-07-28 clients */
static json_t *
discover(json_t *id)
{
	return am_mcp_rpc_result(id,
	    json_pack("{s:o, s:{s:{s:b}, s:{}, s:{s:b, s:b}}, s:s, s:{s:{s:s, s:s}}}", "supportedVersions", all_versions(),
	        "capabilities", "tools", "listChanged", 1, "logging", "resources", "subscribe", 1, "listChanged", 0, "instructions",
	        "Tools named <node>__<tool> run on that field node; a node out of reach returns a job id: "
	        "poll mesh_job_status. mesh_send queues a message for store-and-forward delivery.",
	        "_meta", "io.modelcontextprotocol/serverInfo", "name", "agent-mesh-gateway", "version", AM_VERSION),
	    true);
}

static json_t *dispatch(am_mcp *m, am_api_auth *a, json_t *msg, am_http_ex *ex, bool single, mcp_req *rq,
    bool *deferred, char *session);

/* results a 2026-07-28 client may cache say for how long and for whom:
 * not at all (catalogs change as nodes come and go), and only for the
 * token that asked (what a list holds depends on its rights) */
static bool
cacheable(const char *method)
{
	static const char *const c[] = {"tools/list", "resources/list", "resources/read", "resources/templates/list",
	    "prompts/list", "server/discover"};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (strcmp(method, c[i]) == 0)
			return true;
	return false;
}

/* one JSON-RPC message; NULL: no response (a notification) or deferred */
static json_t *
handle(am_mcp *m, am_api_auth *a, json_t *msg, am_http_ex *ex, bool single, mcp_req *rq, bool *deferred, char *session)
{
	json_t *r = dispatch(m, a, msg, ex, single, rq, deferred, session);
	json_t *res = json_object_get(r, "result");
	const char *method = json_string_value(json_object_get(msg, "method"));

	if (rq->modern && json_is_object(res)) {
		if (json_object_get(res, "resultType") == NULL)
			json_object_set_new(res, "resultType", json_string("complete"));
		if (method != NULL && cacheable(method)) {
			json_object_set_new(res, "ttlMs", json_integer(0));
			json_object_set_new(res, "cacheScope", json_string("private"));
		}
	}
	return r;
}

static json_t *
dispatch(am_mcp *m, am_api_auth *a, json_t *msg, am_http_ex *ex, bool single, mcp_req *rq, bool *deferred,
    char *session)
{
	json_t *id = json_object_get(msg, "id"), *params = json_object_get(msg, "params");
	const char *method = json_string_value(json_object_get(msg, "method"));

	*deferred = false;
	if (!json_is_object(msg) || strcmp(json_string_value(json_object_get(msg, "jsonrpc")) ? json_string_value(json_object_get(msg, "jsonrpc")) : "", "2.0") != 0 ||
	    method == NULL)
		return id || !json_is_object(msg) ? rpc_error(id, -32600, "not a JSON-RPC 2.0 request") : NULL;
	if (params != NULL && !json_is_object(params))
		return id != NULL ? rpc_error(id, -32602, "params must be an object") : NULL;
	json_t *meta = json_object_get(params, "_meta");
	const char *mv = json_string_value(json_object_get(meta, MCP_META_VERSION));
	if (id == NULL) { /* a notification */
		if (strcmp(method, "notifications/cancelled") == 0 && json_object_get(params, "requestId") != NULL &&
		    !am_mcp_watch_cancel(m, rq->caller, json_object_get(params, "requestId")))
			am_mcp_cancel(m, rq->caller, json_object_get(params, "requestId"));
		return NULL;
	}
	if (mv != NULL || strcmp(method, "server/discover") == 0) {
		json_t *refused;
		rq->modern = true;
		if ((refused = modern_check(ex, id, method, mv, rq)) != NULL)
			return refused;
		rq->log_level = log_level_index(json_string_value(json_object_get(meta, "io.modelcontextprotocol/logLevel")));
		if (strcmp(method, "logging/setLevel") == 0)
			return rpc_error(id, -32601, "revision 2026-07-28 has no logging/setLevel: name the level in each request's _meta");
		if (strcmp(method, "server/discover") == 0)
			return discover(id);
		if (strcmp(method, "resources/subscribe") == 0 || strcmp(method, "resources/unsubscribe") == 0)
			return rpc_error(id, -32601, "revision 2026-07-28 watches resources with subscriptions/listen");
		if (strcmp(method, "subscriptions/listen") == 0) {
			json_t *filter = json_object_get(params, "notifications"), *u;
			size_t i;
			if (!single)
				return rpc_error(id, -32600, "send subscriptions/listen on its own, not in a batch");
			if (filter != NULL && !json_is_object(filter))
				return rpc_error(id, -32602, "params.notifications must be an object");
			json_array_foreach(json_object_get(filter, "resourceSubscriptions"), i, u) {
				const char *right = json_is_string(u) ? resource_right(json_string_value(u)) : NULL;
				if (right == NULL)
					return rpc_error(id, -32602, "params.notifications.resourceSubscriptions: not a resource of this server");
				if (am_api_auth_allow(m->api, a, right, NULL) != 0)
					return rpc_error(id, -32001, am_error_detail());
			}
			if (am_mcp_watch_listen(m, ex, id, filter, rq->caller) != 0)
				return rpc_error(id, -32603, am_error_detail());
			*deferred = true;
			return NULL;
		}
	} else if (strcmp(method, "subscriptions/listen") == 0) {
		return rpc_error(id, -32601, "subscriptions/listen is revision 2026-07-28's: 2025-era sessions use resources/subscribe");
	}
	if (strcmp(method, "initialize") == 0) {
		const char *want = json_string_value(json_object_get(params, "protocolVersion"));
		const char *ver = want != NULL && version_known(want) ? want : mcp_versions[0];
		uint8_t r[16];
		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(session, 33, r, sizeof(r));
		session_add(m, session); /* known before the client can use it */
		return rpc_result(id, json_pack("{s:s, s:{s:{s:b}, s:{}, s:{s:b, s:b}}, s:{s:s, s:s}, s:s}", "protocolVersion", ver,
		                          "capabilities", "tools", "listChanged", 1, "logging", "resources", "subscribe", 1,
		                          "listChanged", 0, "serverInfo", "name", "agent-mesh-gateway",
		                          "version", AM_VERSION, "instructions",
		                          "Tools named <node>__<tool> run on that field node; a node out of reach returns a job id: "
		                          "poll mesh_job_status. mesh_send queues a message for store-and-forward delivery."));
	}
	if (strcmp(method, "ping") == 0)
		return rpc_result(id, json_object());
	if (strcmp(method, "logging/setLevel") == 0) {
		int lv = log_level_index(json_string_value(json_object_get(params, "level")));
		if (lv < 0)
			return rpc_error(id, -32602, "params.level: one of debug, info, notice, warning, error, critical, alert, emergency");
		if (rq->session == NULL || session_log_level(m, rq->session, true, lv) < 0)
			return rpc_error(id, -32602, "logging/setLevel needs a session (initialize first)");
		return rpc_result(id, json_object());
	}
	if (strcmp(method, "tools/list") == 0) {
		if (am_api_auth_allow(m->api, a, "scan", NULL) != 0)
			return rpc_error(id, -32001, am_error_detail());
		/* a page at a time: the cursor is the offset of the next page */
		const char *cursor = json_string_value(json_object_get(params, "cursor"));
		size_t from = 0;
		if (json_object_get(params, "cursor") != NULL) {
			char *end = NULL;
			unsigned long long v = cursor != NULL ? strtoull(cursor, &end, 10) : 0;
			if (cursor == NULL || end == cursor || *end != '\0' || v > 1000000)
				return rpc_error(id, -32602, "params.cursor: not a cursor this server gave");
			from = (size_t) v;
		}
		json_t *all = builtin_tools(), *nodes = node_tools(m->api), *page = json_array();
		builtin_output_schemas(all);
		json_array_extend(all, nodes); /* takes no reference */
		json_decref(nodes);
		for (size_t i = from; i < json_array_size(all) && i < from + MCP_TOOLS_PAGE; i++)
			json_array_append(page, json_array_get(all, i));
		json_t *res = json_pack("{s:o}", "tools", page);
		if (from + MCP_TOOLS_PAGE < json_array_size(all)) {
			char next[24];
			snprintf(next, sizeof(next), "%zu", from + MCP_TOOLS_PAGE);
			json_object_set_new(res, "nextCursor", json_string(next));
		}
		json_decref(all);
		return rpc_result(id, res);
	}
	if (strcmp(method, "resources/list") == 0) {
		if (am_api_auth_allow(m->api, a, "scan", NULL) != 0)
			return rpc_error(id, -32001, am_error_detail());
		return resources_list(m, id, params);
	}
	if (strcmp(method, "resources/templates/list") == 0)
		return rpc_result(id, json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
		                          AM_MCP_JOB_URI "{job_id}", "name", "job", "title", "Job",
		                          "description", "A tool call made through this gateway: status and results", "mimeType",
		                          "application/json"));
	if (strcmp(method, "resources/read") == 0)
		return resources_read(m, a, id, params, rq->modern);
	if (strcmp(method, "resources/subscribe") == 0 || strcmp(method, "resources/unsubscribe") == 0) {
		const char *uri = json_string_value(json_object_get(params, "uri"));
		const char *right = uri != NULL ? resource_right(uri) : NULL;
		if (right == NULL)
			return rpc_error(id, -32602, "params.uri: not a resource of this server (see resources/list)");
		if (rq->session == NULL || session_log_level(m, rq->session, false, 0) < -1)
			return rpc_error(id, -32602, "resources/subscribe needs a session (initialize first)");
		if (am_api_auth_allow(m->api, a, right, NULL) != 0)
			return rpc_error(id, -32001, am_error_detail());
		if (am_mcp_subscribe(m, rq->session, uri, method[10] == 's') != 0)
			return rpc_error(id, -32603, am_error_detail());
		return rpc_result(id, json_object());
	}
	if (strcmp(method, "tools/call") == 0) {
		if (!single) /* a deferred answer needs the request to itself */
			return rpc_error(id, -32600, "send tools/call on its own, not in a batch");
		return tools_call(m, a, id, params, ex, rq, deferred);
	}
	return rpc_error(id, -32601, "method not found");
}

/* What is decided on the request head, before any body is read: the
 * Origin, the method, the session, and the token. */
static void
mcp_head(am_http_ex *ex)
{
	am_mcp *m = am_http_data(ex);
	const char *method = am_http_method(ex);
	const char *sid = am_http_header(ex, "Mcp-Session-Id");
	am_api_auth *a = NULL;

	if (!origin_allowed(am_http_header(ex, "Origin"))) {
		am_http_reply_json_session(ex, 403,
		    rpc_error(NULL, -32000, "Origin not allowed (this machine, or one listed in MCP_ALLOWED_ORIGINS)"), NULL);
		return;
	}
	/* after initialize a client names its revision on every request; one
	 * we do not serve is a 400 (no header: 2025-03-26, as the spec says).
	 * A 2026-07-28 client sends it on every request: stateless, so GET
	 * and DELETE mean nothing to it, and a session id it sends is not
	 * looked at. */
	const char *pv = am_http_header(ex, "MCP-Protocol-Version");
	if (pv != NULL && !version_known(pv) && !modern_known(pv)) {
		am_http_reply_json_session(ex, 400, version_refused(NULL, pv), NULL);
		return;
	}
	if (pv != NULL && modern_known(pv)) {
		if (strcmp(method, "POST") != 0) {
			am_http_answer(ex, 405, NULL, NULL, 0, NULL, "POST");
			return;
		}
		sid = NULL;
	}
	if (strcmp(method, "GET") == 0 && sid == NULL) { /* a server stream is a session's */
		am_http_answer(ex, 405, NULL, NULL, 0, NULL, "POST, DELETE");
		return;
	}
	/* a session we never gave out, or ended: the client must initialize again */
	if (sid != NULL && !session_known(m, sid, strcmp(method, "DELETE") == 0)) {
		am_http_reply_json_session(ex, 404, rpc_error(NULL, -32001, "unknown or ended session: initialize again"),
		    NULL);
		return;
	}
	if (strcmp(method, "DELETE") == 0) {
		if (sid != NULL)
			am_mcp_session_ended(m, sid);
		am_http_reply_json_session(ex, sid != NULL ? 200 : 400, NULL, NULL);
		return;
	}
	if (am_api_auth_begin(m->api, am_http_header(ex, "Authorization"), "mcp", &a) != 0) {
		am_http_reply_json_session(ex, 401, rpc_error(NULL, -32001, am_error_detail()), NULL);
		return;
	}
	am_api_auth_end(a);
}

static void
on_mcp(am_http_ex *ex)
{
	am_mcp *m = am_http_data(ex);
	am_api_auth *a = NULL;
	json_t *j = NULL, *out = NULL;
	bool deferred = false;
	char session[33] = "";
	mcp_req rq = {.status = 200, .log_level = -1};
	const char *accept = am_http_header(ex, "Accept"), *authz = am_http_header(ex, "Authorization");
	const char *pv = am_http_header(ex, "MCP-Protocol-Version"), *sid = am_http_header(ex, "Mcp-Session-Id");

	rq.sse = accept != NULL && strstr(accept, "text/event-stream") != NULL;
	if (sid != NULL && !(pv != NULL && modern_known(pv))) {
		rq.session = sid;
		rq.log_level = session_log_level(m, sid, false, 0);
	}
	{ /* who may cancel this request's call: the same token in the same session */
		unsigned char h[32];
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, sizeof(h));
		crypto_generichash_update(&st, (const unsigned char *) (authz ? authz : ""), authz ? strlen(authz) : 0);
		crypto_generichash_update(&st, (const unsigned char *) "\n", 1);
		if (sid != NULL && !(pv != NULL && modern_known(pv)))
			crypto_generichash_update(&st, (const unsigned char *) sid, strlen(sid));
		crypto_generichash_final(&st, h, sizeof(h));
		sodium_bin2hex(rq.caller, sizeof(rq.caller), h, sizeof(h));
	}
	if (am_api_auth_begin(m->api, authz, "mcp", &a) != 0) {
		am_http_reply_json_session(ex, 401, rpc_error(NULL, -32001, am_error_detail()), NULL);
		return;
	}
	if (strcmp(am_http_method(ex), "GET") == 0) { /* the session's stream of notifications */
		int rc = am_mcp_watch_session(m, ex, sid);
		if (rc == AM_EEXIST)
			am_http_reply_json_session(ex, 409, rpc_error(NULL, -32600, am_error_detail()), NULL);
		else if (rc != 0)
			am_http_reply_json_session(ex, 503, rpc_error(NULL, -32603, am_error_detail()), NULL);
		am_api_auth_end(a);
		return;
	}
	{
		char msg[300], why[280];
		if ((j = am_http_json_body(ex, why, sizeof(why))) == NULL) {
			snprintf(msg, sizeof(msg), "parse error: %s", why);
			am_http_reply_json_session(ex, 400, rpc_error(NULL, -32700, msg), NULL);
			goto out;
		}
	}
	if (json_is_array(j)) {
		size_t i;
		json_t *e;
		out = json_array();
		if (json_array_size(j) == 0) {
			json_decref(out);
			am_http_reply_json_session(ex, 400, rpc_error(NULL, -32600, "an empty batch"), NULL);
			goto out;
		}
		json_array_foreach(j, i, e) {
			json_t *r = handle(m, a, e, ex, false, &rq, &deferred, session);
			if (r != NULL)
				json_array_append_new(out, r);
		}
		if (json_array_size(out) == 0) {
			json_decref(out);
			am_http_reply_json_session(ex, 202, NULL, NULL);
		} else
			am_http_reply_json_session(ex, 200, out, session[0] ? session : NULL);
	} else {
		out = handle(m, a, j, ex, true, &rq, &deferred, session);
		if (deferred)
			; /* call_done or the stream answers */
		else if (out == NULL)
			am_http_reply_json_session(ex, 202, NULL, NULL);
		else
			am_http_reply_json_session(ex, rq.status, out, session[0] ? session : NULL);
	}
out:
	json_decref(j);
	am_api_auth_end(a);
}

int
am_mcp_start(am_mcp **out, am_calls *calls, const char *host, int port)
{
	int rc;

	if ((rc = am_mcp_open(out, calls, host, port)) != 0)
		return rc;
	if ((rc = am_http_server_start((*out)->srv)) != 0) {
		am_mcp_stop(*out);
		*out = NULL;
	}
	return rc;
}

int
am_mcp_open(am_mcp **out, am_calls *calls, const char *host, int port)
{
	am_mcp *m = calloc(1, sizeof(*m));
	am_http_limits lim;
	static const char *const methods[] = {"POST", "GET", "DELETE"};
	int rc;

	*out = NULL;
	if (m == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	m->api = calls->api;
	m->calls = calls;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->idle, NULL);
	if ((rc = am_http_limits_from_env(&lim)) != 0 || (rc = am_http_server_new(&m->srv, "MCP", host, port, &lim)) != 0)
		goto fail;
	for (size_t i = 0; i < 3; i++)
		if ((rc = am_http_route(m->srv, methods[i], "/mcp", false, i == 0 ? 1u << 20 : 0, mcp_head, on_mcp, m)) != 0)
			goto fail;
	*out = m;
	return 0;
fail:
	am_http_server_free(m->srv);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->idle);
	free(m);
	return rc;
}

am_http_server *
am_mcp_http(am_mcp *m)
{
	return m != NULL ? m->srv : NULL;
}

void
am_mcp_stop(am_mcp *m)
{
	if (m == NULL)
		return;
	am_mcp_watch_stop(m);
	am_mcp_streams_stop(m); /* their threads end before the server they write to */
	am_http_server_free(m->srv);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->idle);
	free(m);
}
