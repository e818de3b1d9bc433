/*
 * runner.c — the node's feature am_node_tools (see am_node.h): tool calls
 * in from the daemon's dispatcher, each on a worker thread, results out
 * as signed, sealed tool_result envelopes; the catalog out when the
 * tools changed; GET /v1/tools.
 *
 * A call runs at most once per node: DATA/calls/<call id>.json is written
 * (and fsynced) with state "running" before the program starts, and with
 * the result after; a call found "running" at start was cut short by a
 * crash or a restart and is answered "interrupted", never run again. The
 * inbox entry is acknowledged only after the result is stored.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_node.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOOL_WORKERS 4 /* calls running at once on one node */
#define RESULT_MAX (AM_MAX_PAYLOAD - 16384) /* result JSON, room for the seal and the body */

/* what the daemon gave (am_daemon_view), as this file reads it */
struct runner_config {
	am_queue *q;
	const am_identity *me;
	am_hub *hub;
	am_audit *audit;
	am_api *api;
	const uint8_t *trusted;   /* gateway keys whose tokens allow calls */
	size_t ntrusted;
	const char *name;         /* this node's name (tokens may name it) */
	const char *cert;         /* ours (PKI), shown with each result; "" none */
};

typedef struct am_runner {
	struct runner_config c;
	am_toolbox *tools;        /* may be empty */
	atomic_int stop;
	char calls[4096], catalogs[4096];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running;    /* calls on worker threads */
} am_runner;

/* one call on its own thread, so a long tool does not hold the others */
struct work {
	am_runner *r;
	uint8_t *raw;
	size_t len;
	uint8_t id[AM_ID_BYTES];
};

static void
call_path(char *out, size_t cap, const am_runner *r, const char *id)
{
	snprintf(out, cap, "%s/%s.json", r->calls, id);
}

/* rec is consumed */
static int
record(const am_runner *r, const char *id, json_t *rec)
{
	char path[4200], *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	json_decref(rec);
	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	call_path(path, sizeof(path), r, id);
	rc = am_file_write_atomic(path, text, strlen(text), 0600, true);
	free(text);
	return rc;
}

static void
write_or_say(const char *path, const char *text, unsigned mode)
{
	if (am_file_write_atomic(path, text, strlen(text), mode, true) != 0)
		fprintf(stderr, "tools: %s\n", am_error_detail());
}

/* the result as a signed envelope back to the caller, stored and pushed */
static int
send_result(am_runner *r, const uint8_t caller[AM_PK_BYTES], const uint8_t call_id[AM_ID_BYTES], json_t *result,
    const char *workflow_id, uint64_t expires_ms)
{
	am_envelope_spec s = {0};
	am_envelope env = {0};
	am_queue_result res;
	char *text = json_dumps(result, JSON_COMPACT);
	uint64_t now = am_now_ms();
	int rc;

	/* a result always fits in an envelope: cut the output until it does
	 * (and say so), never drop the answer */
	for (int cut = 0; text != NULL && strlen(text) > RESULT_MAX && cut < 40; cut++) {
		free(text);
		text = NULL;
		json_object_set_new(result, "truncated", json_true());
		const char *keys[] = {"stdout", "stderr", "stdout_base64", "stderr_base64"};
		for (size_t k = 0; k < 4; k++) {
			const char *v = json_string_value(json_object_get(result, keys[k]));
			if (v == NULL)
				continue;
			size_t n = strlen(v) * 3 / 4;
			if (k < 2)
				while (n > 0 && ((unsigned char) v[n] & 0xC0) == 0x80)
					n--; /* not in the middle of a UTF-8 character */
			else
				n -= n % 4; /* whole base64 quanta */
			json_object_set_new(result, keys[k], json_stringn(v, n));
		}
		text = json_dumps(result, JSON_COMPACT);
	}
	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	s.type = "tool_result";
	s.dest_kind = AM_DEST_NODE;
	memcpy(s.dest_node, caller, AM_PK_BYTES);
	s.ref = call_id;
	s.created_ms = now;
	s.expires_ms = expires_ms > now + 24 * 3600 * 1000ull ? expires_ms : now + 24 * 3600 * 1000ull;
	s.priority = AM_PRIO_HIGH;
	s.content_type = "application/json";
	s.workflow_id = workflow_id && workflow_id[0] ? workflow_id : NULL;
	s.seal = true; /* for the caller's eyes: carriers see that, not what */
	s.payload = (const uint8_t *) text;
	s.payload_len = strlen(text);
	if ((rc = am_envelope_create_decoded(&env, &s, r->c.me)) == 0 &&
	    (rc = am_queue_put_own(r->c.q, &env, 1, now, &res)) == 0 && res.rc == 0)
		am_hub_note(r->c.hub, env.id, 1, 0, 0);
	am_envelope_clear(&env);
	free(text);
	return rc;
}

static json_t *
result_base(const am_runner *r, const char *call_id, const char *tool, const char *status)
{
	char node[AM_NODE_ID_LEN + 1];

	am_node_id_format(node, am_identity_pk(r->c.me));
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "call_id", call_id, "node", node, "node_name", r->c.name, "tool",
	    tool, "status", status);
}

/* output as text when it is UTF-8, else base64 */
static void
put_output(json_t *res, const char *key, const char *buf, size_t len)
{
	/* NUL bytes are valid in JSON text but many readers refuse them */
	json_t *t = memchr(buf, 0, len) == NULL ? json_stringn(buf, len) : NULL;

	if (t != NULL) {
		json_object_set_new(res, key, t);
		return;
	}
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(cap), k[32];
	if (b64 == NULL)
		return;
	sodium_bin2base64(b64, cap, (const uint8_t *) buf, len, sodium_base64_VARIANT_ORIGINAL);
	snprintf(k, sizeof(k), "%s_base64", key);
	json_object_set_new(res, k, json_string(b64));
	free(b64);
}

/* May this call's grant run tool here? Names the reason when not. The
 * grant must come from a trusted gateway key, be unexpired and
 * unrevoked, and be bound to the key that signed this envelope: a grant
 * lifted from one call and put in another envelope is refused. */
static int
authorise(am_runner *r, const am_envelope *env, const am_tool_call *call, char *why, size_t cap, char *subject,
    size_t scap)
{
	am_token t;
	char id[AM_NODE_ID_LEN + 1], a1[2 * AM_RIGHT_MAX], a2[2 * AM_RIGHT_MAX];
	int rc;

	snprintf(subject, scap, "unknown");
	if ((rc = am_grant_parse(&t, call->grant)) != 0) {
		snprintf(why, cap, "%s", am_error_detail());
		return rc;
	}
	snprintf(subject, scap, "%s", t.subject);
	if (memcmp(t.blocks[t.nblocks - 1].next_pk, env->body.src, AM_PK_BYTES) != 0) {
		snprintf(why, cap, "grant: bound to another key than the one that signed this call (lifted from another call?)");
		rc = AM_EDENIED;
		goto out;
	}
	if ((rc = am_token_check(&t, r->c.trusted, r->c.ntrusted, am_now_ms(), NULL)) != 0) {
		snprintf(why, cap, "%s", am_error_detail());
		goto out;
	}
	if (am_token_revoked(&t, r->c.q, r->c.trusted, r->c.ntrusted)) {
		snprintf(why, cap, "token: revoked by its issuer");
		rc = AM_EREVOKED;
		goto out;
	}
	/* the node may be named by its name or its id */
	am_node_id_format(id, am_identity_pk(r->c.me));
	snprintf(a1, sizeof(a1), "call:%s:%s", r->c.name, call->tool);
	snprintf(a2, sizeof(a2), "call:%s:%s", id, call->tool);
	{
		/* and a call to a group or an area by the right for that */
		char a3[2 * AM_RIGHT_MAX] = "";
		if (env->body.dest_kind == AM_DEST_GROUP)
			snprintf(a3, sizeof(a3), "call:group:%s:%s", env->body.dest_group, call->tool);
		else if (env->body.dest_kind == AM_DEST_BROADCAST)
			snprintf(a3, sizeof(a3), "call:area:%s", call->tool);
		if (am_token_check(&t, r->c.trusted, r->c.ntrusted, am_now_ms(), a1) != 0 &&
		    am_token_check(&t, r->c.trusted, r->c.ntrusted, am_now_ms(), a2) != 0 &&
		    (a3[0] == '\0' || am_token_check(&t, r->c.trusted, r->c.ntrusted, am_now_ms(), a3) != 0)) {
			snprintf(why, cap, "token: does not allow \"%s\"", a3[0] ? a3 : a1);
			rc = AM_EDENIED;
		} else
			rc = 0;
	}
out:
	am_token_clear(&t);
	return rc;
}

/* the payload as sent: decompressed (and opened when sealed to us) */
static int
payload_of(am_runner *r, const am_envelope *env, uint8_t **pl, size_t *plen)
{
	return am_envelope_payload(pl, plen, env, r->c.me);
}

static void
handle_call(am_runner *r, const am_envelope *env)
{
	char id[AM_ID_HEX_LEN + 1], why[400] = "", subject[AM_NODE_ID_LEN + 1] = "";
	am_tool_call call;
	const am_tool *tool = NULL;
	json_t *res = NULL, *rec;
	int rc;

	/* only called for calls without a record (dispatch checks) */
	am_id_format(id, env->id);
	uint8_t *pl = NULL;
	size_t plen = 0;
	rc = payload_of(r, env, &pl, &plen);
	if (rc == 0)
		rc = am_tool_call_parse(&call, pl, plen);
	free(pl);
	if (rc != 0) {
		res = result_base(r, id, "?", "refused");
		json_object_set_new(res, "reason", json_string(am_error_detail()));
		(void) record(r, id, json_pack("{s:s, s:O}", "state", "done", "result", res));
		(void) send_result(r, env->body.src, env->id, res, env->body.workflow_id, env->body.expires_ms);
		(void) am_audit_log(r->c.audit, "tool_refused", "unknown", env->body.workflow_id,
		    json_pack("{s:s, s:s}", "call_id", id, "reason", am_error_detail()));
		json_decref(res);
		return;
	}
	if ((rc = authorise(r, env, &call, why, sizeof(why), subject, sizeof(subject))) != 0) {
		/* why is set */
	} else if (call.deadline_ms != 0 && call.deadline_ms <= am_now_ms()) {
		snprintf(why, sizeof(why), "the call's deadline passed before it could run");
	} else if ((tool = am_toolbox_find(r->tools, call.tool)) == NULL) {
		snprintf(why, sizeof(why), "unknown tool \"%s\" on %s", call.tool, r->c.name);
	} else if (am_schema_check(am_tool_schema(tool), call.args, why + 11, sizeof(why) - 11) != 0) {
		memcpy(why, "arguments: ", 11);
	}
	if (why[0] != '\0') {
		res = result_base(r, id, call.tool, "refused");
		json_object_set_new(res, "reason", json_string(why));
		(void) record(r, id, json_pack("{s:s, s:O}", "state", "done", "result", res));
		(void) am_audit_log(r->c.audit, "tool_refused", subject, call.workflow_id,
		    json_pack("{s:s, s:s, s:s}", "call_id", id, "tool", call.tool, "reason", why));
	} else {
		am_tool_run run;
		/* before it starts: at most once, whatever happens next */
		rec = json_pack("{s:s, s:s, s:s, s:I}", "state", "running", "tool", call.tool, "workflow_id",
		    call.workflow_id, "started_ms", (json_int_t) am_now_ms());
		char caller[AM_NODE_ID_LEN + 1];
		am_node_id_format(caller, env->body.src);
		json_object_set_new(rec, "caller", json_string(caller));
		json_object_set_new(rec, "expires_ms", json_integer((json_int_t) env->body.expires_ms));
		if (record(r, id, rec) != 0) {
			/* no record, no run: at most once comes first */
			res = result_base(r, id, call.tool, "error");
			json_object_set_new(res, "reason", json_string(am_error_detail()));
		} else if (am_audit_log(r->c.audit, "tool_call", subject, call.workflow_id,
		               json_pack("{s:s, s:s, s:O}", "call_id", id, "tool", call.tool, "args", call.args)),
		    am_tool_exec(tool, call.args, id, call.workflow_id, &run, &r->stop) != 0) {
			res = result_base(r, id, call.tool, "error");
			json_object_set_new(res, "reason", json_string(am_error_detail()));
		} else if (strcmp(run.status, "cancelled") == 0) {
			/* stopping: the record says running; the next start reports it */
			am_tool_run_clear(&run);
			am_tool_call_clear(&call);
			return;
		} else {
			res = result_base(r, id, call.tool, run.status);
			json_object_set_new(res, "exit_code", json_integer(run.exit_code));
			json_object_set_new(res, "duration_ms", json_integer((json_int_t) run.duration_ms));
			put_output(res, "stdout", run.out, run.out_len);
			put_output(res, "stderr", run.err, run.err_len);
			if (run.out_truncated || run.err_truncated)
				json_object_set_new(res, "truncated", json_true());
			if (run.why[0])
				json_object_set_new(res, "reason", json_string(run.why));
			am_tool_run_clear(&run);
		}
		(void) record(r, id, json_pack("{s:s, s:O}", "state", "done", "result", res));
		(void) am_audit_log(r->c.audit, "tool_result", subject, call.workflow_id,
		    json_pack("{s:s, s:s, s:s, s:O}", "call_id", id, "tool", call.tool, "status",
		        json_string_value(json_object_get(res, "status")), "exit_code",
		        json_object_get(res, "exit_code") ? json_object_get(res, "exit_code") : json_null()));
	}
	if (call.workflow_id[0])
		json_object_set_new(res, "workflow_id", json_string(call.workflow_id));
	/* signed by us: the group we answer as a member of */
	if (env->body.dest_kind == AM_DEST_GROUP)
		json_object_set_new(res, "group", json_string(env->body.dest_group));
	if (r->c.cert != NULL && r->c.cert[0])
		json_object_set_new(res, "certificate", json_string(r->c.cert));
	(void) send_result(r, env->body.src, env->id, res, call.workflow_id, env->body.expires_ms);
	json_decref(res);
	am_tool_call_clear(&call);
}

/* calls cut short: answered "interrupted", never run again */
static void
recover(am_runner *r)
{
	char **names = NULL;
	size_t n = 0;

	if (am_dir_list(&names, &n, r->calls, ".json") != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char path[4200], id[AM_ID_HEX_LEN + 1];
		uint8_t cid[AM_ID_BYTES], caller[AM_PK_BYTES];
		snprintf(path, sizeof(path), "%s/%s", r->calls, names[i]);
		snprintf(id, sizeof(id), "%.*s", AM_ID_HEX_LEN, names[i]);
		json_t *rec = json_load_file(path, 0, NULL);
		const char *st = json_string_value(json_object_get(rec, "state"));
		const char *who = json_string_value(json_object_get(rec, "caller"));
		if (st == NULL || strcmp(st, "running") != 0 || am_id_parse(cid, id) != 0 || who == NULL ||
		    am_node_id_parse(caller, who) != 0) {
			json_decref(rec);
			continue;
		}
		const char *tool = json_string_value(json_object_get(rec, "tool"));
		const char *wf = json_string_value(json_object_get(rec, "workflow_id"));
		json_t *res = result_base(r, id, tool ? tool : "?", "interrupted");
		json_object_set_new(res, "reason",
		    json_string("the node stopped while the tool ran; it was not run again (check what it did)"));
		if (wf && wf[0])
			json_object_set_new(res, "workflow_id", json_string(wf));
		(void) record(r, id, json_pack("{s:s, s:O}", "state", "done", "result", res));
		(void) send_result(r, caller, cid, res, wf, (uint64_t) json_integer_value(json_object_get(rec, "expires_ms")));
		(void) am_audit_log(r->c.audit, "tool_result", "restart", wf,
		    json_pack("{s:s, s:s, s:s}", "call_id", id, "tool", tool ? tool : "?", "status", "interrupted"));
		json_decref(res);
		json_decref(rec);
	}
	am_dir_list_free(names, n);
}

static void *
work_run(void *arg)
{
	struct work *w = arg;
	am_runner *r = w->r;
	am_envelope env;

	if (am_envelope_decode_view(&env, w->raw, w->len, w->id) == 0)
		handle_call(r, &env);
	/* acknowledged once its result is stored (or it was left for the
	 * next start to report) */
	if (!r->stop)
		(void) am_queue_inbox_ack(r->c.q, w->id, am_now_ms());
	free(w->raw);
	free(w);
	pthread_mutex_lock(&r->mu);
	r->running--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Hand a call to a worker; waits for a free one. Takes raw. */
static void
start_call(am_runner *r, uint8_t *raw, size_t len, const uint8_t id[AM_ID_BYTES])
{
	struct work *w = calloc(1, sizeof(*w));
	pthread_t th;

	if (w == NULL) {
		free(raw);
		return;
	}
	w->r = r;
	w->raw = raw;
	w->len = len;
	memcpy(w->id, id, AM_ID_BYTES);
	pthread_mutex_lock(&r->mu);
	while (r->running >= TOOL_WORKERS && !r->stop)
		pthread_cond_wait(&r->cv, &r->mu);
	if (r->stop) { /* left in the inbox: the next start runs it */
		pthread_mutex_unlock(&r->mu);
		free(raw);
		free(w);
		return;
	}
	r->running++;
	pthread_mutex_unlock(&r->mu);
	if (pthread_create(&th, NULL, work_run, w) != 0) {
		/* no thread: run it here */
		work_run(w);
		return;
	}
	pthread_detach(th);
}

/* A new catalog envelope when the tools changed since the last one sent
 * (its hash is kept in DATA/catalogs/.published). */
static void
publish_catalog(am_runner *r)
{
	json_t *cat = json_pack("{s:s, s:o}", "node_name", r->c.name, "tools", am_toolbox_catalog(r->tools));
	char *text = cat ? json_dumps(cat, JSON_COMPACT | JSON_SORT_KEYS) : NULL, path[4200], hex[65], *old = NULL;
	uint8_t h[32];
	size_t olen = 0;

	json_decref(cat);
	if (text == NULL)
		return;
	crypto_generichash(h, sizeof(h), (const uint8_t *) text, strlen(text), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(path, sizeof(path), "%s/.published", r->catalogs);
	if (am_file_read(&old, &olen, path, 256) == 0 && strcmp(old, hex) == 0) {
		free(old);
		free(text);
		return;
	}
	free(old);
	am_envelope_spec s = {0};
	am_envelope env = {0};
	am_queue_result res;
	uint64_t now = am_now_ms();
	s.type = "tool_catalog";
	s.dest_kind = AM_DEST_BROADCAST;
	s.created_ms = now;
	s.expires_ms = now + 30ull * 24 * 3600 * 1000;
	s.priority = AM_PRIO_NORMAL;
	s.content_type = "application/json";
	s.payload = (const uint8_t *) text;
	s.payload_len = strlen(text);
	if (am_envelope_create_decoded(&env, &s, r->c.me) == 0 && am_queue_put_own(r->c.q, &env, 1, now, &res) == 0 &&
	    res.rc == 0) {
		am_hub_note(r->c.hub, env.id, 1, 0, 0);
		write_or_say(path, hex, 0644);
	}
	am_envelope_clear(&env);
	free(text);
}


/* ---- the feature ---- */

static am_feature_take
on_envelope(void *state, const am_envelope *env, const uint8_t id[AM_ID_BYTES], uint8_t **raw, size_t len)
{
	am_runner *r = state;
	char path[4200], hex[AM_ID_HEX_LEN + 1];
	struct stat st;

	am_id_format(hex, id);
	call_path(path, sizeof(path), r, hex);
	if (stat(path, &st) == 0)
		return AM_FEATURE_DONE; /* handled before: only the ack is left */
	(void) env;
	/* new: to a worker, which acknowledges it */
	start_call(r, *raw, len, id);
	*raw = NULL;
	return AM_FEATURE_TAKEN;
}

/* GET /v1/tools: this node's tools (name, description, schema) */
static void
on_tools(am_http_ex *ex)
{
	am_runner *r = am_http_data(ex);

	if (am_api_check(r->c.api, ex, "scan") != 0)
		return;
	am_http_reply_json(ex, 200, json_pack("{s:s, s:o}", "node", r->c.name, "tools", am_toolbox_catalog(r->tools)));
}

static int
tools_check(const char *data_dir, char *summary, size_t cap)
{
	am_toolbox *tb = NULL;
	char path[4096];
	int rc;

	snprintf(path, sizeof(path), "%s/tools", data_dir);
	if ((rc = am_toolbox_load(&tb, path)) != 0)
		return rc;
	snprintf(summary, cap, "%zu tools", am_toolbox_count(tb));
	am_toolbox_free(tb);
	return 0;
}

static int
tools_open(void **state, const am_daemon_view *d)
{
	am_runner *r = calloc(1, sizeof(*r));
	char path[4096];
	int rc;

	*state = NULL;
	if (r == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	r->c = (struct runner_config){d->q, d->me, d->hub, d->audit, d->api, d->api->trusted, d->api->ntrusted,
	    d->self->name, d->self->cert};
	snprintf(path, sizeof(path), "%s/tools", d->data_dir);
	if ((rc = am_toolbox_load(&r->tools, path)) != 0) {
		free(r);
		return rc;
	}
	if ((rc = am_http_route(d->http, "GET", "/v1/tools", false, 0, am_api_pre_auth, on_tools, r)) != 0) {
		am_toolbox_free(r->tools);
		free(r);
		return rc;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	snprintf(r->calls, sizeof(r->calls), "%s/calls", d->data_dir);
	snprintf(r->catalogs, sizeof(r->catalogs), "%s/catalogs", d->data_dir);
	mkdir(r->calls, 0700);
	mkdir(r->catalogs, 0755);
	if (am_toolbox_count(r->tools) > 0) {
		am_say("%zu tools from %s", am_toolbox_count(r->tools), path);
		publish_catalog(r);
	}
	/* before the dispatcher hands over a call: one left running is
	 * reported first */
	recover(r);
	am_prune_dir(r->calls, ".json", AM_KEEP_RECORDS_MS);
	*state = r;
	return 0;
}

/* mesh_scan: our own tools, from the toolbox */
static void
tools_scan(void *state, struct json_t *self, struct json_t *peers)
{
	am_runner *r = state;
	json_t *names = json_array(), *cat = am_toolbox_catalog(r->tools), *t;
	size_t i;

	(void) peers;
	json_array_foreach(cat, i, t)
		json_array_append(names, json_object_get(t, "name"));
	json_decref(cat);
	json_object_set_new(self, "tools", names);
}

/* running tools are stopped (r->stop) and left "running" for the next
 * start to report; a call waiting for a worker is left in the inbox */
static void
tools_stop(void *state)
{
	am_runner *r = state;

	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	while (r->running > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

static void
tools_close(void *state)
{
	am_runner *r = state;

	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	am_toolbox_free(r->tools);
	free(r);
}

static const char *const tool_types[] = {"tool_call", NULL};

const am_feature am_node_tools = {
    .name = "tools",
    .check = tools_check,
    .open = tools_open,
    .types = tool_types,
    .on_envelope = on_envelope,
    .scan = tools_scan,
    .stop = tools_stop,
    .close = tools_close,
};
