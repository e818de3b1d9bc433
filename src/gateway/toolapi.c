/*
 * toolapi.c — tool calls over HTTP (the gateway's; a node serves its
 * own GET /v1/tools):
 *   GET  /v1/tools               every tool of every node whose catalog is
 *                                known here: {"tools": [{node, node_name,
 *                                name, description, input_schema}]}
 *   POST /v1/tools/call          {"node": ID|NAME | "group": G | "geo": SPEC |
 *                                 "broadcast": true, "tool": T, "args": {...},
 *                                 "wait_ms": N (<= 60000), "workflow_id": W,
 *                                 "ttl": "1h"} -> 200 the job with its result(s)
 *                                 when done within wait_ms, else 202 {"job_id"}
 *   GET  /v1/jobs/{id}           a job: status and results per node
 *   GET  /v1/jobs[?workflow_id=W][&limit=N][&after=ID]  the jobs (of one
 *                                workflow), N (<= 1000, default 100) at a
 *                                time, "next" the ID to continue after
 * The right asked of the caller's token: call:<node name or id>:<tool>,
 * call:group:<g>:<tool>, or call:area:<tool> (geo or broadcast). The
 * token itself never leaves this process: the call carries a grant made
 * from it (am_token_bind) that allows only that action, ends with the
 * call and is bound to this daemon's key, and the node checks it again,
 * offline. A caller on the development token gets a token minted here for
 * that one call. A call to one node is sealed to it.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_gateway.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct find_ctx {
	const char *name;
	uint8_t pk[AM_PK_BYTES];
	bool found;
};

static int
find_peer(void *ctx, const am_queue_peer *p)
{
	struct find_ctx *f = ctx;
	if (strcmp(p->name, f->name) == 0) {
		memcpy(f->pk, p->pk, AM_PK_BYTES);
		f->found = true;
		return 1;
	}
	return 0;
}

/* a node given by id, or by a name the peer table or a catalog knows */
static int
resolve_node(am_api *api, const char *who, uint8_t pk[AM_PK_BYTES], char *name, size_t cap)
{
	struct find_ctx f = {who, {0}, false};

	snprintf(name, cap, "%s", who);
	if (am_node_id_parse(pk, who) == 0) {
		am_queue_peer p;
		if (am_queue_peer_get(api->q, pk, &p) == 0 && p.name[0])
			snprintf(name, cap, "%s", p.name);
		return 0;
	}
	(void) am_queue_peer_each(api->q, find_peer, &f);
	if (!f.found) {
		json_t *cats = am_catalogs_load(api->data_dir), *c;
		const char *id;
		json_object_foreach(cats, id, c) {
			const char *n = json_string_value(json_object_get(c, "node_name"));
			if (n != NULL && strcmp(n, who) == 0 && am_node_id_parse(f.pk, id) == 0) {
				f.found = true;
				break;
			}
		}
		json_decref(cats);
	}
	if (!f.found)
		return am_error_set(AM_ENOTFOUND, "no node \"%s\" known here (by id or name)", who);
	memcpy(pk, f.pk, AM_PK_BYTES);
	return 0;
}

int
am_tools_call(const am_calls *calls, am_api_auth *a, const json_t *req, char job_id[65], int *status)
{
	am_api *api = calls->api;
	am_envelope_spec s = {0};
	am_envelope env = {0};
	am_queue_result res;
	am_geo geo;
	/* a node named by its id (64 hex) is as long as a name can be */
	char action[2 * AM_RIGHT_MAX], target[160], name[AM_NODE_ID_LEN + AM_TAG_MAX + 1], *payload = NULL, *grant = NULL;
	const char *tool = json_string_value(json_object_get(req, "tool")), *wf = NULL;
	const am_token *token;
	am_token minted;
	const json_t *args = json_object_get(req, "args"), *v;
	uint64_t now = am_now_ms(), ttl = 3600 * 1000;
	bool one = false;
	int rc;

	*status = 400;
	if (tool == NULL || am_tag_check("tool", tool, strlen(tool)) != 0)
		return am_error_set(AM_EFIELD, "field \"tool\" must be a tool name");
	if (args != NULL && !json_is_object(args))
		return am_error_set(AM_EFIELD, "field \"args\" must be an object");
	if ((v = json_object_get(req, "workflow_id")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) > AM_TAG_MAX)
			return am_error_set(AM_EFIELD, "field \"workflow_id\" must be a string of at most %d bytes", AM_TAG_MAX);
		wf = json_string_value(v);
	}
	if ((v = json_object_get(req, "ttl")) != NULL &&
	    (!json_is_string(v) || am_duration_parse(&ttl, json_string_value(v)) != 0 || ttl == 0))
		return am_error_set(AM_EFIELD, "field \"ttl\" must be a duration like \"1h\"");
	if (ttl > AM_MAX_TTL_MS)
		return am_error_set(AM_EFIELD, "field \"ttl\" is more than the 366 days allowed");
	s.type = "tool_call";
	if ((v = json_object_get(req, "node")) != NULL) {
		if (!json_is_string(v))
			return am_error_set(AM_EFIELD, "field \"node\" must be a node id or name");
		if (resolve_node(api, json_string_value(v), s.dest_node, name, sizeof(name)) != 0) {
			*status = 404;
			return AM_ENOTFOUND;
		}
		s.dest_kind = AM_DEST_NODE;
		one = true;
		snprintf(action, sizeof(action), "call:%s:%s", name, tool);
		snprintf(target, sizeof(target), "node:%s", name);
	} else if ((v = json_object_get(req, "group")) != NULL) {
		if (!json_is_string(v) || am_tag_check("group", json_string_value(v), json_string_length(v)) != 0)
			return am_error_set(AM_EFIELD, "field \"group\" must be a group name");
		s.dest_kind = AM_DEST_GROUP;
		s.dest_group = json_string_value(v);
		snprintf(action, sizeof(action), "call:group:%s:%s", s.dest_group, tool);
		snprintf(target, sizeof(target), "group:%s", s.dest_group);
	} else if (json_object_get(req, "geo") != NULL || json_is_true(json_object_get(req, "broadcast"))) {
		s.dest_kind = AM_DEST_BROADCAST;
		snprintf(action, sizeof(action), "call:area:%s", tool);
		snprintf(target, sizeof(target), "area");
	} else {
		return am_error_set(AM_EFIELD, "give the target: \"node\", \"group\", \"geo\" or \"broadcast\": true");
	}
	if ((v = json_object_get(req, "geo")) != NULL) {
		if (!json_is_string(v) || am_geo_parse(&geo, json_string_value(v)) != 0)
			return am_error_set(AM_EFIELD, "field \"geo\": %s",
			    json_is_string(v) ? am_error_detail() : "must be a string like circle:LAT,LON,R");
		s.geo = &geo;
		snprintf(target, sizeof(target), "area:%s", json_string_value(v));
	}
	if (am_api_auth_allow(api, a, action, wf) != 0) {
		/* a node may also be named by its id in the token */
		char id[AM_NODE_ID_LEN + 1], alt[2 * AM_RIGHT_MAX];
		am_node_id_format(id, s.dest_node);
		snprintf(alt, sizeof(alt), "call:%s:%s", id, tool);
		if (!one || am_api_auth_allow(api, a, alt, wf) != 0) {
			*status = 403;
			return am_error_set(AM_EDENIED, "token: does not allow \"%s\"", action);
		}
	}
	if ((token = am_api_auth_token(a)) == NULL) {
		/* the development token is no capability: mint one for this call */
		const char *rights[] = {action};
		char *text = NULL;
		if ((rc = am_token_issue(&text, api->me, "dev-token", rights, 1, now - 60000, now + ttl, &minted)) != 0) {
			*status = 500;
			return rc;
		}
		free(text);
		token = &minted;
	}
	/* what travels: this action only, until the deadline, for our key */
	rc = am_token_bind(&grant, token, action, now + ttl, am_identity_pk(api->me));
	if (token == &minted)
		am_token_clear(&minted);
	if (rc != 0) {
		*status = rc == AM_EDENIED ? 403 : 500;
		return rc;
	}
	payload = am_tool_call_encode(tool, args, grant, wf, now + ttl);
	free(grant);
	if (payload == NULL) {
		*status = 500;
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	s.created_ms = now;
	s.expires_ms = now + ttl;
	s.priority = AM_PRIO_HIGH;
	s.content_type = "application/json";
	s.workflow_id = wf;
	s.seal = one; /* carriers see who and when, not what */
	s.payload = (const uint8_t *) payload;
	s.payload_len = strlen(payload);
	if ((rc = am_envelope_create_decoded(&env, &s, api->me)) != 0 ||
	    (rc = am_queue_put_own(api->q, &env, 1, now, &res)) != 0 || (rc = res.rc) != 0) {
		*status = rc == AM_EFULL ? 507 : rc == AM_ETOOBIG ? 413 : rc == AM_ESEAL ? 400 : 500;
		if (rc == AM_ESEAL) /* a random 64-hex string is no node's key */
			rc = am_error_set(rc, "field \"node\": not a node id (no valid public key: %s)", am_error_detail());
		free(payload);
		am_envelope_clear(&env);
		return rc;
	}
	am_id_format(job_id, env.id);
	rc = am_jobs_create(calls->jobs, job_id, tool, target, wf, one ? s.dest_node : NULL, now, now + ttl);
	/* the job exists before the call can travel: its result finds it */
	am_hub_note(api->hub, env.id, 1, 0, res.inboxed);
	free(payload);
	am_envelope_clear(&env);
	*status = rc == 0 ? 202 : 500;
	return rc;
}

static void
waited(void *ctx, json_t *job, bool stopping)
{
	am_http_ex *ex = ctx;

	const char *st = job ? json_string_value(json_object_get(job, "status")) : NULL;

	if (st != NULL && (strcmp(st, "done") == 0 || strcmp(st, "expired") == 0))
		am_http_reply_json(ex, 200, json_incref(job));
	else if (stopping)
		am_http_reply_error(ex, 503, "the daemon is stopping; poll GET /v1/jobs/{id} later");
	else
		am_http_reply_json(ex, 202, job ? json_pack("{s:O, s:s}", "job_id", json_object_get(job, "job_id"), "status",
		                          json_string_value(json_object_get(job, "status")))
		                    : json_pack("{s:s}", "status", "pending"));
}

static void
on_call(am_http_ex *ex)
{
	const am_calls *calls = am_http_data(ex);
	am_api *api = calls->api;
	am_api_auth *a = NULL;
	json_t *j = NULL, *v;
	char job[65];
	int status, rc;
	long wait_ms = 0;

	if (am_api_auth_begin(api, am_http_header(ex, "Authorization"), "call", &a) != 0) {
		am_http_reply_error(ex, 401, am_error_detail());
		return;
	}
	{
		char msg[300];
		if ((j = am_http_json_body(ex, msg, sizeof(msg))) == NULL || !json_is_object(j)) {
			am_http_reply_error(ex, 400, j == NULL ? msg : "the body must be a JSON object");
			goto out;
		}
	}
	if ((v = json_object_get(j, "wait_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 60000) {
			am_http_reply_error(ex, 400, "field \"wait_ms\" must be 0..60000");
			goto out;
		}
		wait_ms = (long) json_integer_value(v);
	}
	if ((rc = am_tools_call(calls, a, j, job, &status)) != 0) {
		am_http_reply_error(ex, (uint16_t) status, am_error_detail());
		goto out;
	}
	/* answered when the result comes, or at wait_ms: no thread waits */
	if (wait_ms == 0 || am_jobs_wait(calls->jobs, job, am_now_ms() + (uint64_t) wait_ms, waited, ex) != 0)
		am_http_reply_json(ex, 202, json_pack("{s:s, s:s}", "job_id", job, "status", "pending"));
out:
	json_decref(j);
	am_api_auth_end(a);
}

static void
on_job(am_http_ex *ex)
{
	const am_calls *calls = am_http_data(ex);
	am_api *api = calls->api;
	const char *uri = am_http_uri(ex), *q = strchr(uri, '?'), *last = strrchr(uri, '/');
	json_t *job;

	if (am_api_check(api, ex, "read:jobs") != 0)
		return;
	if (last != NULL && strncmp(last, "/jobs", 5) != 0 && (q == NULL || q < last)) {
		char id[AM_ID_HEX_LEN + 1];
		snprintf(id, sizeof(id), "%.*s", AM_ID_HEX_LEN, last + 1);
		if ((job = am_jobs_get(calls->jobs, id)) == NULL) {
			am_http_reply_error(ex, 404, "no such job here");
			return;
		}
		am_http_reply_json(ex, 200, job);
		return;
	}
	/* ?workflow_id=W&limit=N&after=JOB: a page at a time, in id order */
	char wf[AM_TAG_MAX + 1], after[AM_ID_HEX_LEN + 1], lim[16], next[AM_ID_HEX_LEN + 1];
	bool has_wf = am_http_query(uri, "workflow_id", wf, sizeof(wf)), has_after = am_http_query(uri, "after", after, sizeof(after));
	long limit = 100;
	if (am_http_query(uri, "limit", lim, sizeof(lim))) {
		char *end = NULL;
		limit = strtol(lim, &end, 10);
		if (end == lim || *end != '\0' || limit < 1 || limit > 1000) {
			am_http_reply_error(ex, 400, "query \"limit\" must be 1..1000");
			return;
		}
	}
	json_t *page = am_jobs_list(calls->jobs, has_wf ? wf : NULL, has_after ? after : NULL, (size_t) limit, next);
	json_t *body = json_pack("{s:o}", "jobs", page);
	if (next[0])
		json_object_set_new(body, "next", json_string(next));
	am_http_reply_json(ex, 200, body);
	(void) q;
}

static void
on_tools(am_http_ex *ex)
{
	const am_calls *calls = am_http_data(ex);
	am_api *api = calls->api;
	json_t *cats, *c, *all, *t;
	const char *id;
	size_t i;

	if (am_api_check(api, ex, "scan") != 0)
		return;
	cats = am_catalogs_load(api->data_dir);
	all = json_array();
	json_object_foreach(cats, id, c) {
		json_array_foreach(json_object_get(c, "tools"), i, t) {
			if (!json_is_object(t))
				continue;
			json_t *one = json_deep_copy(t);
			json_object_set_new(one, "node", json_string(id));
			json_object_set(one, "node_name", json_object_get(c, "node_name"));
			json_array_append_new(all, one);
		}
	}
	json_decref(cats);
	am_http_reply_json(ex, 200, json_pack("{s:s, s:o}", "node", api->name ? api->name : "", "tools", all));
}

int
am_toolapi_register(am_http_server *srv, am_calls *calls)
{
	static const struct {
		const char *path, *method;
		am_http_fn fn;
		bool tree;
		size_t body_max;
	} routes[] = {
	    {"/v1/tools", "GET", on_tools, false, 0},
	    {"/v1/tools/call", "POST", on_call, false, 1u << 20},
	    {"/v1/jobs", "GET", on_job, true, 0},
	};
	int rc;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if ((rc = am_http_route(srv, routes[i].method, routes[i].path, routes[i].tree, routes[i].body_max, am_api_pre_auth,
		         routes[i].fn, calls)) != 0)
			return rc;
	return 0;
}
