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
#define text_content am_mcp_text_content

json_t *
am_mcp_text_content(const char *text, bool is_error, json_t *structured)
{
	json_t *r = json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text", am_json_text(text), "isError", is_error);
	if (structured != NULL)
		json_object_set_new(r, "structuredContent", structured);
	return r;
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
				const char *right = json_is_string(u) ? am_mcp_resource_right(json_string_value(u)) : NULL;
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
		return am_mcp_tools_list(m, id, params);
	}
	if (strcmp(method, "resources/list") == 0) {
		if (am_api_auth_allow(m->api, a, "scan", NULL) != 0)
			return rpc_error(id, -32001, am_error_detail());
		return am_mcp_resources_list(m, id, params);
	}
	if (strcmp(method, "resources/templates/list") == 0)
		return rpc_result(id, json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
		                          AM_MCP_JOB_URI "{job_id}", "name", "job", "title", "Job",
		                          "description", "A tool call made through this gateway: status and results", "mimeType",
		                          "application/json"));
	if (strcmp(method, "resources/read") == 0)
		return am_mcp_resources_read(m, a, id, params, rq->modern);
	if (strcmp(method, "resources/subscribe") == 0 || strcmp(method, "resources/unsubscribe") == 0) {
		const char *uri = json_string_value(json_object_get(params, "uri"));
		const char *right = uri != NULL ? am_mcp_resource_right(uri) : NULL;
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
		return am_mcp_tools_call(m, a, id, params, ex, rq, deferred);
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
