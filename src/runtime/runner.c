/*
 * runner.c — the dispatcher thread of a daemon (see am_runtime.h): tool
 * calls in, results out, results to the jobs, catalogs to DATA/catalogs.
 *
 * A call runs at most once per node: DATA/calls/<call id>.json is written
 * (and fsynced) with state "running" before the program starts, and with
 * the result after; a call found "running" at start was cut short by a
 * crash or a restart and is answered "interrupted", never run again. The
 * inbox entry is acknowledged only after the result is stored.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

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

struct am_runner {
	am_runner_config c;
	pthread_t th;
	atomic_int stop;
	char calls[4096], catalogs[4096];
	uint64_t after; /* inbox entries up to here were looked at */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running;    /* calls on worker threads */
	_Atomic uint64_t results_refused; /* answers from keys that may not give them */
};

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
	} else if ((tool = am_toolbox_find(r->c.tools, call.tool)) == NULL) {
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

/* A result counts only from a key that may give it: for a call to one
 * node, that node; for a group, a node whose own signed result says it
 * answers as a member; for an area, any node for itself. In PKI mode the
 * signer must also show a valid certificate from a trusted gateway.
 * Anything else is refused, counted and audited. */
static int
result_allowed(am_runner *r, const am_envelope *env, const json_t *job, const json_t *res, char *why, size_t cap)
{
	const char *target = json_string_value(json_object_get(job, "target"));
	const char *node = json_string_value(json_object_get(job, "target_node"));
	char src[AM_NODE_ID_LEN + 1];

	am_node_id_format(src, env->body.src);
	if (node != NULL) {
		if (strcmp(node, src) != 0) {
			snprintf(why, cap, "signed by %.16s…, but the call went to %.16s…", src, node);
			return AM_EDENIED;
		}
	} else if (target != NULL && strncmp(target, "group:", 6) == 0) {
		const char *g = json_string_value(json_object_get(res, "group"));
		if (g == NULL || strcmp(g, target + 6) != 0) {
			snprintf(why, cap, "%.16s… does not answer as a member of %s", src, target);
			return AM_EDENIED;
		}
	} else if (json_is_true(json_object_get(job, "fan_out")) == 0) {
		snprintf(why, cap, "the job names no node it was sent to");
		return AM_EDENIED;
	}
	if (r->c.pki) {
		const char *cert = json_string_value(json_object_get(res, "certificate"));
		const char *name = json_string_value(json_object_get(res, "node_name"));
		if (am_pki_check_peer(cert, env->body.src, name ? name : "?", r->c.trusted, r->c.ntrusted, r->c.q,
		        am_now_ms()) != 0) {
			snprintf(why, cap, "%s", am_error_detail());
			return AM_EUNTRUSTED;
		}
	}
	return 0;
}

static void
handle_result(am_runner *r, const am_envelope *env)
{
	char job[AM_ID_HEX_LEN + 1], node[AM_NODE_ID_LEN + 1], why[300];
	json_t *res, *j;

	if (r->c.jobs == NULL || !env->body.has_ref)
		return;
	am_id_format(job, env->body.ref);
	if ((j = am_jobs_get(r->c.jobs, job)) == NULL)
		return; /* not a call of ours: carried, nothing to do */
	uint8_t *pl = NULL;
	size_t plen = 0;
	res = payload_of(r, env, &pl, &plen) == 0 ? json_loadb((const char *) pl, plen, 0, NULL) : NULL;
	free(pl);
	am_node_id_format(node, env->body.src);
	if (res == NULL || !json_is_object(res)) {
		snprintf(why, sizeof(why), "the result is not a JSON object (or not sealed to us)");
		goto refuse;
	}
	if (result_allowed(r, env, j, res, why, sizeof(why)) != 0)
		goto refuse;
	/* the node is who signed it, not what it says */
	json_object_set_new(res, "node", json_string(node));
	json_object_del(res, "certificate");
	json_decref(j);
	(void) am_jobs_result(r->c.jobs, job, res, am_now_ms());
	return;
refuse:
	atomic_fetch_add(&r->results_refused, 1);
	(void) am_audit_log(r->c.audit, "tool_result_refused", node, env->body.workflow_id,
	    json_pack("{s:s, s:s, s:s}", "job_id", job, "signer", node, "reason", why));
	json_decref(res);
	json_decref(j);
}

uint64_t
am_runner_results_refused(am_runner *r)
{
	return r != NULL ? atomic_load(&r->results_refused) : 0;
}

static void
handle_catalog(am_runner *r, const am_envelope *env)
{
	char node[AM_NODE_ID_LEN + 1], path[4200];
	uint8_t *pl = NULL;
	size_t plen = 0;
	json_t *cat = NULL, *old;

	if (payload_of(r, env, &pl, &plen) == 0)
		cat = json_loadb((const char *) pl, plen, 0, NULL);
	free(pl);

	if (!json_is_object(cat) || !json_is_array(json_object_get(cat, "tools"))) {
		json_decref(cat);
		return;
	}
	am_node_id_format(node, env->body.src);
	snprintf(path, sizeof(path), "%s/%s.json", r->catalogs, node);
	/* only a newer catalog replaces the one we have */
	if ((old = json_load_file(path, 0, NULL)) != NULL &&
	    (uint64_t) json_integer_value(json_object_get(old, "created_ms")) >= env->body.created_ms) {
		json_decref(old);
		json_decref(cat);
		return;
	}
	json_decref(old);
	json_object_set_new(cat, "created_ms", json_integer((json_int_t) env->body.created_ms));
	char *text = json_dumps(cat, JSON_COMPACT);
	if (text != NULL)
		write_or_say(path, text, 0644);
	free(text);
	json_decref(cat);
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

static void
dispatch(am_runner *r)
{
	am_queue_inbox_entry ents[64];
	size_t n = 0;

	do {
		if (am_queue_inbox_list(r->c.q, r->after, ents, 64, &n) != 0)
			return;
		for (size_t i = 0; i < n && !r->stop; i++) {
			uint8_t *raw = NULL;
			size_t len = 0;
			am_envelope env;
			bool mine = false;
			r->after = ents[i].seq;
			if (am_queue_get(r->c.q, ents[i].id, &raw, &len, NULL) != 0)
				continue;
			if (am_envelope_decode_view(&env, raw, len, ents[i].id) == 0) {
				if (strcmp(env.body.type, "tool_call") == 0) {
					char path[4200], hex[AM_ID_HEX_LEN + 1];
					struct stat st;
					am_id_format(hex, ents[i].id);
					call_path(path, sizeof(path), r, hex);
					if (stat(path, &st) != 0) {
						/* new: to a worker, which acknowledges it */
						start_call(r, raw, len, ents[i].id);
						continue;
					}
					mine = true; /* handled before: only the ack is left */
				} else if (strcmp(env.body.type, "tool_result") == 0) {
					handle_result(r, &env);
					mine = true;
				} else if (strcmp(env.body.type, "tool_catalog") == 0) {
					handle_catalog(r, &env);
					mine = true;
				}
			}
			free(raw);
			if (mine)
				(void) am_queue_inbox_ack(r->c.q, ents[i].id, am_now_ms());
		}
	} while (n == 64 && !r->stop);
}

static void *
run(void *arg)
{
	am_runner *r = arg;
	uint64_t seen = am_hub_inbox_seq(r->c.hub);

	recover(r);
	/* after recover: a call left running is reported first */
	am_prune_dir(r->calls, ".json", AM_KEEP_RECORDS_MS);
	dispatch(r);
	while (!r->stop) {
		bool moved = am_hub_wait_inbox(r->c.hub, seen, 200);
		seen = am_hub_inbox_seq(r->c.hub);
		/* the store may also have been written by another process */
		(void) moved;
		dispatch(r);
		if (r->c.jobs != NULL)
			am_jobs_tick(r->c.jobs, am_now_ms());
	}
	return NULL;
}

/* A new catalog envelope when the tools changed since the last one sent
 * (its hash is kept in DATA/catalogs/.published). */
static void
publish_catalog(am_runner *r)
{
	json_t *cat = json_pack("{s:s, s:o}", "node_name", r->c.name, "tools", am_toolbox_catalog(r->c.tools));
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
		/* and our own entry, for our own mesh_scan and MCP */
		char node[AM_NODE_ID_LEN + 1], mine[4200];
		am_node_id_format(node, am_identity_pk(r->c.me));
		snprintf(mine, sizeof(mine), "%s/%s.json", r->catalogs, node);
		json_t *c2 = json_loads(text, 0, NULL);
		if (c2 != NULL) {
			json_object_set_new(c2, "created_ms", json_integer((json_int_t) now));
			char *t2 = json_dumps(c2, JSON_COMPACT);
			if (t2 != NULL)
				write_or_say(mine, t2, 0644);
			free(t2);
			json_decref(c2);
		}
	}
	am_envelope_clear(&env);
	free(text);
}

int
am_runner_start(am_runner **out, const am_runner_config *c)
{
	am_runner *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (r == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	r->c = *c;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	snprintf(r->calls, sizeof(r->calls), "%s/calls", c->data_dir);
	snprintf(r->catalogs, sizeof(r->catalogs), "%s/catalogs", c->data_dir);
	mkdir(r->calls, 0700);
	mkdir(r->catalogs, 0755);
	if (am_toolbox_count(c->tools) > 0)
		publish_catalog(r);
	if (pthread_create(&r->th, NULL, run, r) != 0) {
		free(r);
		return am_error_set(AM_ENOMEM, "cannot start the dispatcher");
	}
	*out = r;
	return 0;
}

void
am_runner_stop(am_runner *r)
{
	if (r == NULL)
		return;
	r->stop = 1;
	am_hub_kick(r->c.hub);
	pthread_join(r->th, NULL);
	/* running tools are stopped (r->stop) and left "running" for the
	 * next start to report */
	pthread_mutex_lock(&r->mu);
	pthread_cond_broadcast(&r->cv);
	while (r->running > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

json_t *
am_catalogs_load(const char *data_dir)
{
	char dir[4200], **names = NULL;
	size_t n = 0;
	json_t *all = json_object();

	snprintf(dir, sizeof(dir), "%s/catalogs", data_dir);
	if (am_dir_list(&names, &n, dir, ".json") != 0)
		return all;
	for (size_t i = 0; i < n; i++) {
		char path[8400], id[AM_NODE_ID_LEN + 1];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		snprintf(id, sizeof(id), "%.*s", AM_NODE_ID_LEN, names[i]);
		json_t *c = json_load_file(path, 0, NULL);
		if (json_is_object(c))
			json_object_set_new(all, id, c);
		else
			json_decref(c);
	}
	am_dir_list_free(names, n);
	return all;
}
