/*
 * answers.c — what comes back to the gateway: tool results, each to its
 * job once its signer is shown to be one that may give it (refused,
 * counted and audited otherwise), and the nodes' tool catalogs, kept in
 * DATA/catalogs/<node id>.json (a newer one replaces an older one).
 */
#define _POSIX_C_SOURCE 200809L
#include "gateway_private.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
write_or_say(const char *path, const char *text, unsigned mode)
{
	if (am_file_write_atomic(path, text, strlen(text), mode, true) != 0)
		am_say("catalogs: %s", am_error_detail());
}

/* the payload as sent: decompressed (and opened when sealed to us) */
static int
payload_of(struct gateway *g, const am_envelope *env, uint8_t **pl, size_t *plen)
{
	return am_envelope_payload(pl, plen, env, g->d->me);
}

/* A result counts only from a key that may give it: for a call to one
 * node, that node; for a group, a node whose own signed result says it
 * answers as a member; for an area, any node for itself. In PKI mode the
 * signer must also show a valid certificate from a trusted gateway.
 * Anything else is refused, counted and audited. */
static int
result_allowed(struct gateway *g, const am_envelope *env, const json_t *job, const json_t *res, char *why, size_t cap)
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
	if (g->d->pki) {
		const char *cert = json_string_value(json_object_get(res, "certificate"));
		const char *name = json_string_value(json_object_get(res, "node_name"));
		if (am_pki_check_peer(cert, env->body.src, name ? name : "?", g->d->api->trusted, g->d->api->ntrusted, g->d->q,
		        am_now_ms()) != 0) {
			snprintf(why, cap, "%s", am_error_detail());
			return AM_EUNTRUSTED;
		}
	}
	return 0;
}

void
am_gateway_take_result(struct gateway *g, const am_envelope *env)
{
	char job[AM_ID_HEX_LEN + 1], node[AM_NODE_ID_LEN + 1], why[300];
	json_t *res, *j;

	if (g->jobs == NULL || !env->body.has_ref)
		return;
	am_id_format(job, env->body.ref);
	if ((j = am_jobs_get(g->jobs, job)) == NULL)
		return; /* not a call of ours: carried, nothing to do */
	uint8_t *pl = NULL;
	size_t plen = 0;
	res = payload_of(g, env, &pl, &plen) == 0 ? json_loadb((const char *) pl, plen, 0, NULL) : NULL;
	free(pl);
	am_node_id_format(node, env->body.src);
	if (res == NULL || !json_is_object(res)) {
		snprintf(why, sizeof(why), "the result is not a JSON object (or not sealed to us)");
		goto refuse;
	}
	if (result_allowed(g, env, j, res, why, sizeof(why)) != 0)
		goto refuse;
	/* the node is who signed it, not what it says */
	json_object_set_new(res, "node", json_string(node));
	json_object_del(res, "certificate");
	json_decref(j);
	(void) am_jobs_result(g->jobs, job, res, am_now_ms());
	return;
refuse:
	atomic_fetch_add(g->d->results_refused, 1);
	(void) am_audit_log(g->d->audit, "tool_result_refused", node, env->body.workflow_id,
	    json_pack("{s:s, s:s, s:s}", "job_id", job, "signer", node, "reason", why));
	json_decref(res);
	json_decref(j);
}

void
am_gateway_take_catalog(struct gateway *g, const am_envelope *env)
{
	char node[AM_NODE_ID_LEN + 1], path[4200];
	uint8_t *pl = NULL;
	size_t plen = 0;
	json_t *cat = NULL, *old;

	if (payload_of(g, env, &pl, &plen) == 0)
		cat = json_loadb((const char *) pl, plen, 0, NULL);
	free(pl);

	if (!json_is_object(cat) || !json_is_array(json_object_get(cat, "tools"))) {
		json_decref(cat);
		return;
	}
	am_node_id_format(node, env->body.src);
	snprintf(path, sizeof(path), "%s/%s.json", g->catalogs, node);
	/* only a newer catalog replaces the one we have */
	if ((old = json_load_file(path, 0, NULL)) != NULL &&
	    (uint64_t) json_integer_value(json_object_get(old, "created_ms")) >= env->body.created_ms) {
		json_decref(old);
		json_decref(cat);
		return;
	}
	/* MCP clients hear of a tool list that changed, not of every resend */
	bool changed = old == NULL || !json_equal(json_object_get(old, "tools"), json_object_get(cat, "tools")) ||
	               !json_equal(json_object_get(old, "node_name"), json_object_get(cat, "node_name"));
	json_decref(old);
	json_object_set_new(cat, "created_ms", json_integer((json_int_t) env->body.created_ms));
	char *text = json_dumps(cat, JSON_COMPACT);
	if (text != NULL)
		write_or_say(path, text, 0644);
	free(text);
	json_decref(cat);
	if (changed)
		am_mcp_catalog_changed(g->mcp);
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
