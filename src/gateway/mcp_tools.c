/*
 * mcp_tools.c — the MCP server's tools: tools/list (the built-ins with
 * their output schemas, and every node's tools under names MCP clients
 * accept, a page at a time) and tools/call (the built-ins, and a node's
 * tool through the same path as POST /v1/tools/call, its answer awaited
 * as one JSON answer or as an event stream, mcp_stream.c).
 */
#define _POSIX_C_SOURCE 200809L
#define AM_MCP_NAME_MAX 64 /* what MCP clients accept: ^[a-zA-Z0-9_-]{1,64}$ */
#define MCP_TOOLS_PAGE 100 /* tools/list entries a page (nextCursor for more) */
#include "mcp_private.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define rpc_error am_mcp_rpc_error
#define rpc_result(id, r) am_mcp_rpc_result((id), (r), false)
#define text_content am_mcp_text_content

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

/* tools/list: a page at a time, the cursor the offset of the next page */
json_t *
am_mcp_tools_list(am_mcp *m, json_t *id, json_t *params)
{
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

/* the first 100 inbox entries, text where it is one */
json_t *
am_mcp_inbox_messages(am_mcp *m)
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
	json_t *arr = am_mcp_inbox_messages(m);
	char *t = json_dumps(arr, JSON_COMPACT);
	json_t *r = rpc_result(id, text_content(t ? t : "[]", false, json_pack("{s:o}", "messages", arr)));
	free(t);
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
json_t *
am_mcp_tools_call(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, am_http_ex *ex, mcp_req *rq, bool *deferred)
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

