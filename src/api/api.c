/*
 * api.c — the messages API both daemons serve (JSON over HTTP, http_server.c):
 *   POST /v1/messages          send: {"to"|"group"|"broadcast", "text"|
 *                              "payload_base64", "ttl", "priority", "geo",
 *                              "content_type", "workflow_id", "seal"} -> 202 {"id"}
 *   GET  /v1/messages/{id}     held here, forwarded to whom (peer, name, when),
 *                              delivered (a receipt was seen, by whom), or unknown
 *   GET  /v1/inbox[?limit=N][&ack=1][&wait_ms=N]   what arrived, oldest
 *                              first; ack=1 acknowledges what was returned;
 *                              wait_ms (<= 30000) waits for an arrival when
 *                              the inbox is empty (one such wait at a time:
 *                              it holds its connection's thread, and there
 *                              is one consumer; a second waiter is
 *                              answered at once)
 *   POST /v1/inbox/ack         {"ids": [...]} -> {"acked": n}
 * Errors are JSON {"error": "..."} naming the problem: 400 bad JSON or a
 * bad field, 401 without the bearer token, 404, 413 too large, 507 store
 * full. Bodies are parsed with jansson; base64 is libsodium's.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_api.h"

#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_MAX_BODY (2u << 20)

static void
send_error(am_http_ex *ex, uint16_t status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
send_error(am_http_ex *ex, uint16_t status, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	am_http_reply_error(ex, status, msg);
}

/* ---- authorization ---- */

/* Who is asking: the development token (every right) or a capability
 * token, verified offline against the trusted gateway keys. */
struct auth {
	bool dev;
	am_token tok;
	bool has_tok;
	char id[2 * AM_TOKEN_ID_BYTES + 1];
};

static void
audit_decision(am_api *api, const struct auth *au, const char *event, const char *action, const char *why,
    const char *workflow_id, int status)
{
	json_t *d = json_pack("{s:s, s:s}", "action", action, "token", au->has_tok ? au->id : au->dev ? "dev-token" : "");
	if (why != NULL)
		json_object_set_new(d, "reason", json_string(why));
	if (status != 0)
		json_object_set_new(d, "status", json_integer(status));
	(void) am_audit_log(api->audit, event, au->has_tok ? au->tok.subject : au->dev ? "dev-token" : "anonymous",
	    workflow_id, d);
}

/* Verify the Authorization header value h (may be NULL); au filled.
 * Returns the refusal in words, or NULL when accepted (audits refusals). */
static const char *
auth_check(am_api *api, const char *h, struct auth *au, const char *action, char *msg, size_t cap)
{
	const char *why = NULL;

	memset(au, 0, sizeof(*au));
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
		why = "missing bearer token (Authorization: Bearer ...)";
		goto refuse;
	}
	h += 7;
	if (api->token[0] != '\0' && strlen(h) == strlen(api->token) && sodium_memcmp(h, api->token, strlen(h)) == 0) {
		au->dev = true;
		return NULL;
	}
	if (strncmp(h, "amg1.", 5) == 0) {
		why = "a call grant is not a bearer token: it is valid only inside the one call it was made for";
		goto refuse;
	}
	if (strncmp(h, "amt1.", 5) != 0) {
		why = "not a valid token (capability tokens start with amt1.)";
		goto refuse;
	}
	if (am_token_parse(&au->tok, h) != 0) {
		why = am_error_detail();
		goto refuse;
	}
	au->has_tok = true;
	am_token_id_hex(au->id, &au->tok);
	if (am_token_check(&au->tok, api->trusted, api->ntrusted, am_now_ms(), NULL) != 0) {
		why = am_error_detail();
		goto refuse;
	}
	if (am_token_revoked(&au->tok, api->q, api->trusted, api->ntrusted)) {
		why = "token: revoked by its issuer";
		goto refuse;
	}
	return NULL;
refuse:
	snprintf(msg, cap, "%s", why);
	/* anyone can make 401s: written at a bounded cost (first of a kind a
	 * minute in full, the rest counted) */
	{
		json_t *d = json_pack("{s:s, s:s, s:s, s:i}", "action", action, "token", au->has_tok ? au->id : "",
		    "reason", msg, "status", 401);
		(void) am_audit_refusal(api->refusals, "token_refused", msg, au->has_tok ? au->tok.subject : "anonymous", d,
		    am_now_ms());
	}
	if (au->has_tok)
		am_token_clear(&au->tok);
	au->has_tok = false;
	return msg;
}

/* 401 unless the request carries a token we can verify (the action is
 * checked later, when it is known). */
static bool
authenticate(am_api *api, am_http_ex *ex, struct auth *au, const char *action)
{
	char msg[300];

	if (auth_check(api, am_http_header(ex, "Authorization"), au, action, msg, sizeof(msg)) == NULL)
		return true;
	send_error(ex, 401, "%s", msg);
	return false;
}

/* 403 unless the token allows action. Every refusal is audited, and
 * every accepted action that changes something (send, call); accepted
 * reads (inbox, messages, scan, metrics) are not: a poller or a scraper
 * would fill the log with them. */
static bool
allow(am_api *api, am_http_ex *ex, struct auth *au, const char *action, const char *workflow_id)
{
	int rc = 0;

	if (au->has_tok)
		rc = am_token_check(&au->tok, api->trusted, api->ntrusted, am_now_ms(), action);
	if (rc != 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", am_error_detail());
		audit_decision(api, au, "token_refused", action, msg, workflow_id, 403);
		send_error(ex, 403, "%s", msg);
		return false;
	}
	if (strncmp(action, "read:", 5) != 0 && strcmp(action, "scan") != 0 && strcmp(action, "metrics") != 0)
		audit_decision(api, au, "token_accepted", action, NULL, workflow_id, 0);
	return true;
}

static void
auth_done(struct auth *au)
{
	if (au->has_tok)
		am_token_clear(&au->tok);
}

struct am_api_auth {
	struct auth au;
};

int
am_api_auth_begin(am_api *api, const char *authorization, const char *action, am_api_auth **out)
{
	char msg[300];
	am_api_auth *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (a == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if (auth_check(api, authorization, &a->au, action, msg, sizeof(msg)) != NULL) {
		free(a);
		return am_error_set(AM_EUNTRUSTED, "%s", msg);
	}
	*out = a;
	return 0;
}

int
am_api_auth_allow(am_api *api, am_api_auth *a, const char *action, const char *workflow_id)
{
	int rc = 0;

	if (a->au.has_tok)
		rc = am_token_check(&a->au.tok, api->trusted, api->ntrusted, am_now_ms(), action);
	if (rc != 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", am_error_detail());
		audit_decision(api, &a->au, "token_refused", action, msg, workflow_id, 403);
		return am_error_set(AM_EDENIED, "%s", msg);
	}
	if (strncmp(action, "read:", 5) != 0 && strcmp(action, "scan") != 0 && strcmp(action, "metrics") != 0)
		audit_decision(api, &a->au, "token_accepted", action, NULL, workflow_id, 0);
	return 0;
}

const am_token *
am_api_auth_token(const am_api_auth *a)
{
	return a->au.has_tok ? &a->au.tok : NULL;
}

const char *
am_api_auth_subject(const am_api_auth *a)
{
	return a->au.has_tok ? a->au.tok.subject : "dev-token";
}

void
am_api_auth_end(am_api_auth *a)
{
	if (a == NULL)
		return;
	auth_done(&a->au);
	free(a);
}

int
am_api_check(am_api *api, am_http_ex *ex, const char *action)
{
	struct auth au;
	bool ok = authenticate(api, ex, &au, action) && allow(api, ex, &au, action, NULL);
	auth_done(&au);
	return ok ? 0 : AM_EDENIED;
}

static int
status_for(int rc)
{
	switch (rc) {
	case AM_EFULL: return 507;
	case AM_ETOOBIG: return 413;
	case AM_ENOTFOUND: return 404;
	case AM_ESTORE:
	case AM_EIO:
	case AM_EREADONLY:
	case AM_ENOMEM: return 500;
	default: return 400;
	}
}

/* Reading a send request: 0, or an HTTP status (400, 413) with why. */
#define SPEC_ERR(status, ...) \
	do { \
		snprintf(why, cap, __VA_ARGS__); \
		return status; \
	} while (0)

/* exactly one of "to", "group", "broadcast": true; and "geo" */
static int
send_destination(const json_t *j, am_envelope_spec *s, am_geo *geo, char *why, size_t cap)
{
	size_t ndest = 0;
	json_t *v;

	if ((v = json_object_get(j, "to")) != NULL) {
		ndest++;
		if (!json_is_string(v) || am_node_id_parse(s->dest_node, json_string_value(v)) != 0)
			SPEC_ERR(400, "field \"to\" must be a node id (64 hex characters)");
		s->dest_kind = AM_DEST_NODE;
	}
	if ((v = json_object_get(j, "group")) != NULL) {
		ndest++;
		if (!json_is_string(v) || am_tag_check("group", json_string_value(v), strlen(json_string_value(v))) != 0)
			SPEC_ERR(400, "field \"group\" must be a group name of [A-Za-z0-9._:-]");
		s->dest_kind = AM_DEST_GROUP;
		s->dest_group = json_string_value(v);
	}
	if ((v = json_object_get(j, "broadcast")) != NULL) {
		if (!json_is_boolean(v))
			SPEC_ERR(400, "field \"broadcast\" must be true or false");
		if (json_is_true(v)) {
			ndest++;
			s->dest_kind = AM_DEST_BROADCAST;
		}
	}
	if (ndest != 1)
		SPEC_ERR(400, "give exactly one of \"to\", \"group\", \"broadcast\": true");
	if ((v = json_object_get(j, "geo")) != NULL) {
		if (!json_is_string(v) || am_geo_parse(geo, json_string_value(v)) != 0)
			SPEC_ERR(400, "field \"geo\": %s",
			    json_is_string(v) ? am_error_detail() : "must be a string like circle:LAT,LON,R");
		s->geo = geo;
	}
	return 0;
}

/* "ttl", "priority", "content_type", "workflow_id", "seal" */
static int
send_options(const json_t *j, am_envelope_spec *s, uint64_t *ttl, char *why, size_t cap)
{
	json_t *v;

	if ((v = json_object_get(j, "ttl")) != NULL) {
		if (json_is_integer(v) && json_integer_value(v) > 0)
			*ttl = (uint64_t) json_integer_value(v) * 1000;
		else if (!json_is_string(v) || am_duration_parse(ttl, json_string_value(v)) != 0)
			SPEC_ERR(400, "field \"ttl\" must be seconds or a duration like \"2h\"");
		if (*ttl > AM_MAX_TTL_MS ||
		    (json_is_integer(v) && json_integer_value(v) > (json_int_t) (AM_MAX_TTL_MS / 1000)))
			SPEC_ERR(400, "field \"ttl\" is more than the 366 days allowed");
	}
	s->priority = AM_PRIO_NORMAL;
	if ((v = json_object_get(j, "priority")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3)
			SPEC_ERR(400, "field \"priority\" must be 0, 1, 2 or 3");
		s->priority = (uint8_t) json_integer_value(v);
	}
	if ((v = json_object_get(j, "content_type")) != NULL) {
		if (!json_is_string(v))
			SPEC_ERR(400, "field \"content_type\" must be a string");
		s->content_type = json_string_value(v);
	}
	if ((v = json_object_get(j, "workflow_id")) != NULL) {
		if (!json_is_string(v))
			SPEC_ERR(400, "field \"workflow_id\" must be a string");
		s->workflow_id = json_string_value(v);
	}
	if ((v = json_object_get(j, "seal")) != NULL) {
		if (!json_is_boolean(v))
			SPEC_ERR(400, "field \"seal\" must be true or false");
		s->seal = json_is_true(v);
	}
	return 0;
}

/* "text" or "payload_base64" (decoded into *bin, the caller frees it) */
static int
send_payload(const json_t *j, am_envelope_spec *s, uint8_t **bin, char *why, size_t cap)
{
	json_t *v;

	if ((v = json_object_get(j, "text")) != NULL) {
		if (!json_is_string(v))
			SPEC_ERR(400, "field \"text\" must be a string");
		s->payload = (const uint8_t *) json_string_value(v);
		s->payload_len = json_string_length(v);
		if (s->content_type == NULL)
			s->content_type = "text/plain; charset=utf-8";
	} else if ((v = json_object_get(j, "payload_base64")) != NULL) {
		size_t bcap, n = 0;
		if (!json_is_string(v))
			SPEC_ERR(400, "field \"payload_base64\" must be a string");
		bcap = json_string_length(v) / 4 * 3 + 3;
		if ((*bin = malloc(bcap ? bcap : 1)) == NULL)
			SPEC_ERR(500, "out of memory");
		if (sodium_base642bin(*bin, bcap, json_string_value(v), json_string_length(v), " \r\n", &n, NULL,
		        sodium_base64_VARIANT_ORIGINAL) != 0)
			SPEC_ERR(400, "field \"payload_base64\" is not valid base64");
		s->payload = *bin;
		s->payload_len = n;
	} else {
		SPEC_ERR(400, "give the payload as \"text\" or \"payload_base64\"");
	}
	if (s->payload_len > AM_MAX_PAYLOAD)
		SPEC_ERR(413, "payload is %zu bytes, limit %u", s->payload_len, AM_MAX_PAYLOAD);
	return 0;
}
#undef SPEC_ERR

/* what the token must allow: the destination, and each zone of a zone
 * target (any other area: send:area); false once answered */
static bool
allow_destination(am_api *api, am_http_ex *ex, struct auth *au, const am_envelope_spec *s)
{
	char action[AM_RIGHT_MAX + 1], id[AM_NODE_ID_LEN + 1];

	if (s->dest_kind == AM_DEST_NODE) {
		am_node_id_format(id, s->dest_node);
		snprintf(action, sizeof(action), "send:node:%s", id);
	} else if (s->dest_kind == AM_DEST_GROUP)
		snprintf(action, sizeof(action), "send:group:%s", s->dest_group);
	else
		snprintf(action, sizeof(action), "send:broadcast");
	if (!allow(api, ex, au, action, s->workflow_id))
		return false;
	if (s->geo != NULL && s->geo->kind == AM_GEO_ZONE) {
		for (size_t i = 0; i < s->geo->ntags; i++) {
			snprintf(action, sizeof(action), "send:zone:%s", s->geo->tags[i]);
			if (!allow(api, ex, au, action, s->workflow_id))
				return false;
		}
		return true;
	}
	return s->geo == NULL || allow(api, ex, au, "send:area", s->workflow_id);
}

static void
on_send(am_http_ex *ex)
{
	am_api *api = am_http_data(ex);
	am_envelope_spec s = {0};
	am_envelope env = {0};
	am_geo geo;
	am_queue_result res;
	json_t *j = NULL;
	uint8_t *bin = NULL;
	char idhex[AM_ID_HEX_LEN + 1], why[300];
	uint64_t ttl = 7ull * 24 * 3600 * 1000, now = am_now_ms();
	struct auth au;
	int rc, status;

	if (!authenticate(api, ex, &au, "send"))
		return;
	if ((j = am_http_json_body(ex, why, sizeof(why))) == NULL || !json_is_object(j)) {
		send_error(ex, 400, "%s", j == NULL ? why : "the body must be a JSON object");
		goto out;
	}
	if ((status = send_destination(j, &s, &geo, why, sizeof(why))) != 0 ||
	    (status = send_options(j, &s, &ttl, why, sizeof(why))) != 0 ||
	    (status = send_payload(j, &s, &bin, why, sizeof(why))) != 0) {
		send_error(ex, (uint16_t) status, "%s", why);
		goto out;
	}
	if (!allow_destination(api, ex, &au, &s))
		goto out;
	s.created_ms = now;
	s.expires_ms = now + ttl;
	if ((rc = am_envelope_create_decoded(&env, &s, api->me)) != 0) {
		send_error(ex, 400, "%s", am_error_detail());
		goto out;
	}
	if ((rc = am_queue_put_own(api->q, &env, 1, now, &res)) != 0 || (rc = res.rc) != 0) {
		send_error(ex, (uint16_t) status_for(rc), "%s", rc == res.rc && res.detail[0] ? res.detail : am_error_detail());
		goto out;
	}
	am_id_format(idhex, env.id);
	/* live links push it now */
	am_hub_note(api->hub, env.id, 1, 0, res.inboxed);
	am_http_reply_json(ex, 202, json_pack("{s:s}", "id", idhex));
out:
	auth_done(&au);
	am_envelope_clear(&env);
	free(bin);
	json_decref(j);
}

/* A node's id and, when known, its name */
static json_t *
node_json(am_api *api, const uint8_t pk[AM_PK_BYTES])
{
	char id[AM_NODE_ID_LEN + 1];
	am_queue_peer p;

	am_node_id_format(id, pk);
	json_t *e = json_pack("{s:s}", "node", id);
	if (am_queue_peer_get(api->q, pk, &p) == 0 && p.name[0])
		json_object_set_new(e, "name", json_string(p.name));
	return e;
}

static void
on_message(am_http_ex *ex)
{
	am_api *api = am_http_data(ex);
	const char *uri = am_http_uri(ex), *last = strrchr(uri, '/');
	uint8_t id[AM_ID_BYTES], signers[64][AM_PK_BYTES], *raw = NULL;
	bool checked[64];
	size_t nr = 0, rawlen = 0;
	am_envelope env;
	bool known = false, delivered = false;
	int held;

	if (am_api_check(api, ex, "read:messages") != 0)
		return;
	if (last == NULL || am_id_parse(id, last + 1) != 0) {
		send_error(ex, 400, "the path must end in an envelope id (64 hex characters)");
		return;
	}
	held = am_queue_has(api->q, id);
	(void) am_queue_receipts(api->q, id, signers, checked, 64, &nr);
	if (held == AM_ENOTFOUND && nr == 0) {
		send_error(ex, 404, "no envelope %s here", last + 1);
		return;
	}
	/* A receipt counts only from whom it may come: for an envelope to one
	 * node, that node; for a group or an area, each member for itself
	 * (listed one by one: there is no single "delivered" for many). When
	 * the original is no longer here, the store checked it on arrival. */
	if (held == 0 && am_queue_get(api->q, id, &raw, &rawlen, NULL) == 0 &&
	    am_envelope_decode_view(&env, raw, rawlen, id) == 0)
		known = true;
	json_t *j = json_pack("{s:s, s:b}", "id", last + 1, "held", held == 0);
	json_t *to = json_array(), *ignored = json_array();
	for (size_t i = 0; i < nr; i++) {
		bool counts = known ? (env.body.dest_kind != AM_DEST_NODE ||
		                          memcmp(env.body.dest_node, signers[i], AM_PK_BYTES) == 0)
		                    : checked[i];
		json_array_append_new(counts ? to : ignored, node_json(api, signers[i]));
	}
	if (known && env.body.dest_kind != AM_DEST_NODE) {
		json_object_set_new(j, "destination", json_string(env.body.dest_kind == AM_DEST_GROUP ? "group" : "broadcast"));
		json_object_set_new(j, "received_by", to);
	} else {
		delivered = json_array_size(to) > 0;
		json_object_set_new(j, "delivered", json_boolean(delivered));
		if (delivered)
			json_object_set_new(j, "delivered_to",
			    json_string(json_string_value(json_object_get(json_array_get(to, 0), "node"))));
		json_decref(to);
	}
	/* receipts signed by keys that may not give them: carried, ignored */
	if (json_array_size(ignored) > 0)
		json_object_set_new(j, "receipts_ignored", ignored);
	else
		json_decref(ignored);
	free(raw);
	{
		am_queue_forward fw[32];
		size_t nf = 0;
		json_t *arr = json_array();
		if (am_queue_forwarded_get(api->q, id, fw, 32, &nf) == 0)
			for (size_t i = 0; i < nf; i++) {
				json_t *e = node_json(api, fw[i].peer);
				json_object_set(e, "peer", json_object_get(e, "node"));
				json_object_del(e, "node");
				json_object_set_new(e, "at_ms", json_integer((json_int_t) fw[i].at_ms));
				json_array_append_new(arr, e);
			}
		json_object_set_new(j, "forwarded_to", arr);
	}
	if (held == AM_ETOMBSTONE)
		json_object_set_new(j, "state", json_string(delivered ? "delivered" : "gone (delivered, expired or deleted)"));
	else
		json_object_set_new(j, "state", json_string(held == 0 ? (delivered ? "delivered" : "held") :
		                                            delivered ? "delivered" : "not held here (receipts only)"));
	am_http_reply_json(ex, 200, j);
}

static json_t *
inbox_entry(am_api *api, const am_queue_inbox_entry *e)
{
	uint8_t *raw = NULL, *payload = NULL;
	size_t len = 0, plen = 0;
	am_envelope env;
	char idhex[AM_ID_HEX_LEN + 1], src[AM_NODE_ID_LEN + 1];
	json_t *j;

	am_id_format(idhex, e->id);
	if (am_queue_get(api->q, e->id, &raw, &len, NULL) != 0 || am_envelope_decode(&env, raw, len) != 0) {
		free(raw);
		return json_pack("{s:s, s:s}", "id", idhex, "error", am_error_detail());
	}
	free(raw);
	am_node_id_format(src, env.body.src);
	j = json_pack("{s:I, s:s, s:s, s:s, s:I, s:i, s:s}", "seq", (json_int_t) e->seq, "id", idhex, "from", src, "type",
	    env.body.type, "created_ms", (json_int_t) env.body.created_ms, "priority", env.body.priority, "content_type",
	    env.body.content_type);
	if (env.body.workflow_id[0])
		json_object_set_new(j, "workflow_id", json_string(env.body.workflow_id));
	if (am_envelope_payload(&payload, &plen, &env, api->me) == 0) {
		json_t *t = json_stringn((const char *) payload, plen);
		if (t != NULL && strncmp(env.body.content_type, "text/", 5) == 0) {
			json_object_set_new(j, "text", t);
		} else {
			size_t cap = sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_ORIGINAL);
			char *b64 = malloc(cap);
			json_decref(t);
			if (b64 != NULL) {
				sodium_bin2base64(b64, cap, payload, plen, sodium_base64_VARIANT_ORIGINAL);
				json_object_set_new(j, "payload_base64", json_string(b64));
				free(b64);
			}
		}
		free(payload);
	}
	am_envelope_clear(&env);
	return j;
}

static void
on_inbox(am_http_ex *ex)
{
	am_api *api = am_http_data(ex);
	const char *uri = am_http_uri(ex), *q = strchr(uri, '?');
	size_t limit = 100, n = 0;
	long wait_ms = 0;
	int lrc = 0;
	bool ack = false;
	am_queue_inbox_entry *ents;
	json_t *arr;

	if (am_api_check(api, ex, "read:inbox") != 0)
		return;
	for (const char *p = q; p != NULL && *p; p = strchr(p + 1, '&')) {
		const char *kv = p + 1;
		if (strncmp(kv, "limit=", 6) == 0) {
			char *end;
			long l = strtol(kv + 6, &end, 10);
			if (l < 1 || l > 10000 || (*end != '\0' && *end != '&')) {
				send_error(ex, 400, "query \"limit\" must be 1..10000");
				return;
			}
			limit = (size_t) l;
		} else if (strncmp(kv, "ack=", 4) == 0) {
			ack = kv[4] == '1' || strncmp(kv + 4, "true", 4) == 0;
		} else if (strncmp(kv, "wait_ms=", 8) == 0) {
			char *end;
			wait_ms = strtol(kv + 8, &end, 10);
			if (wait_ms < 0 || wait_ms > 30000 || (*end != '\0' && *end != '&')) {
				send_error(ex, 400, "query \"wait_ms\" must be 0..30000");
				return;
			}
		}
	}
	if ((ents = calloc(limit, sizeof(*ents))) == NULL) {
		send_error(ex, 500, "out of memory");
		return;
	}
	for (;;) {
		uint64_t seen = api->hub ? am_hub_inbox_seq(api->hub) : 0;
		if ((lrc = am_queue_inbox_list(api->q, 0, ents, limit, &n)) != 0 || n > 0 || wait_ms == 0 ||
		    api->hub == NULL || atomic_exchange(&api->waiting, true))
			break;
		bool moved = am_hub_wait_inbox(api->hub, seen, (int) wait_ms);
		atomic_store(&api->waiting, false);
		wait_ms = 0; /* one wait, then answer with what there is */
		if (!moved)
			break;
	}
	if (lrc != 0) {
		free(ents);
		send_error(ex, 500, "%s", am_error_detail());
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *e = inbox_entry(api, &ents[i]);
		const char *type = json_string_value(json_object_get(e, "type"));
		/* the daemon's own traffic (tool calls, results, catalogs) is
		 * handled by its dispatcher, not by apps */
		if (type != NULL && am_api_daemon_type(type)) {
			json_decref(e);
			ents[i].seq = 0; /* not listed: not acked either */
			continue;
		}
		json_array_append_new(arr, e);
	}
	/* acked only once the listing is built; a client that loses the
	 * response loses them, so careful clients ack separately */
	for (size_t i = 0; ack && i < n; i++)
		if (ents[i].seq != 0)
			(void) am_queue_inbox_ack(api->q, ents[i].id, am_now_ms());
	free(ents);
	am_http_reply_json(ex, 200, json_pack("{s:o, s:b}", "messages", arr, "acked", ack));
}

static void
on_ack(am_http_ex *ex)
{
	am_api *api = am_http_data(ex);
	json_t *j, *ids, *v;
	size_t i, acked = 0;

	if (am_api_check(api, ex, "read:inbox") != 0)
		return;
	{
		char why[300];
		if ((j = am_http_json_body(ex, why, sizeof(why))) == NULL) {
			send_error(ex, 400, "%s", why);
			return;
		}
	}
	if (!json_is_array(ids = json_object_get(j, "ids"))) {
		json_decref(j);
		send_error(ex, 400, "field \"ids\" must be an array of envelope ids");
		return;
	}
	json_array_foreach(ids, i, v) {
		uint8_t id[AM_ID_BYTES];
		if (!json_is_string(v) || am_id_parse(id, json_string_value(v)) != 0) {
			json_decref(j);
			send_error(ex, 400, "field \"ids\" entry %zu is not an envelope id", i);
			return;
		}
		acked += am_queue_inbox_ack(api->q, id, am_now_ms()) == 0;
	}
	json_decref(j);
	am_http_reply_json(ex, 200, json_pack("{s:I}", "acked", (json_int_t) acked));
}

/* The token check on the request head: a body without a token that
 * verifies is never read (the action is checked by the handler). */
void
am_api_pre_auth(am_http_ex *ex)
{
	am_api *api = am_http_server_data(ex);
	struct auth au;
	char msg[300], what[96];

	snprintf(what, sizeof(what), "%s %.80s", am_http_method(ex), am_http_uri(ex));
	if (auth_check(api, am_http_header(ex, "Authorization"), &au, what, msg, sizeof(msg)) != NULL) {
		send_error(ex, 401, "%s", msg);
		return;
	}
	auth_done(&au);
}

bool
am_api_daemon_type(const char *type)
{
	return strncmp(type, "tool_", 5) == 0;
}

int
am_api_register(am_http_server *srv, am_api *api)
{
	static const struct {
		const char *path, *method;
		am_http_fn fn;
		bool tree;
		size_t body_max;
	} routes[] = {
	    {"/v1/messages", "POST", on_send, false, API_MAX_BODY},
	    {"/v1/messages", "GET", on_message, true, 0},
	    {"/v1/inbox", "GET", on_inbox, false, 0},
	    {"/v1/inbox/ack", "POST", on_ack, false, 1u << 20},
	};
	int rc;

	am_http_server_set_data(srv, api);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if ((rc = am_http_route(srv, routes[i].method, routes[i].path, routes[i].tree, routes[i].body_max, am_api_pre_auth,
		         routes[i].fn, api)) != 0)
			return rc;
	return 0;
}
