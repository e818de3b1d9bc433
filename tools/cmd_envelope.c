/*
 * cmd_envelope.c — `envelope inspect`: decode, verify and pretty-print one
 * envelope file. It exits non-zero with the decoder's reason for anything
 * that does not verify, and never prints an unverified payload.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static json_t *
envelope_json(const am_envelope *env, const uint8_t *payload, size_t plen, const char *payload_err)
{
	char idhex[AM_ID_HEX_LEN + 1], src[AM_NODE_ID_LEN + 1], dst[128], t1[40], t2[40], geo[256];
	json_t *j;

	am_id_format(idhex, env->id);
	am_node_id_format(src, env->body.src);
	am_dest_format(dst, sizeof(dst), &env->body);
	cli_time(t1, sizeof(t1), env->body.created_ms);
	cli_time(t2, sizeof(t2), env->body.expires_ms);
	j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:b, s:b, s:I, s:I, s:b}", "version",
	    env->version, "id", idhex, "type", env->body.type, "from", src, "to", dst, "created", t1, "expires", t2,
	    "priority", env->body.priority, "hops_left", env->hops_left, "content_type", env->body.content_type,
	    "compressed", env->body.compressed, "sealed", env->body.sealed, "payload_bytes_carried",
	    (json_int_t) env->body.payload_len, "envelope_bytes", (json_int_t) env->raw_len, "signature_ok", 1);
	if (env->body.geo.kind != AM_GEO_NONE) {
		am_geo_format(geo, sizeof(geo), &env->body.geo);
		json_object_set_new(j, "geo", json_string(geo));
	}
	if (env->body.has_ref) {
		am_id_format(idhex, env->body.ref);
		json_object_set_new(j, "ref", json_string(idhex));
	}
	if (env->body.workflow_id[0])
		json_object_set_new(j, "workflow_id", json_string(env->body.workflow_id));
	if (payload != NULL) {
		json_t *txt = json_stringn((const char *) payload, plen);
		json_object_set_new(j, "payload_bytes", json_integer((json_int_t) plen));
		if (txt != NULL)
			json_object_set_new(j, "text", txt);
	} else if (payload_err != NULL) {
		json_object_set_new(j, "payload_error", json_string(payload_err));
	}
	return j;
}

int
cmd_envelope_inspect(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	    {"identity", required_argument, NULL, 'i'}, {0, 0, 0, 0}};
	const char *identity = NULL, *path;
	bool as_json = false;
	am_identity *me = NULL;
	am_envelope env;
	char *raw = NULL, perr[200] = "";
	uint8_t *payload = NULL;
	size_t len = 0, plen = 0;
	json_t *j;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":ji:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		case 'i': identity = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("give exactly one FILE (or - for stdin)");
	path = argv[optind];
	if (identity != NULL && (rc = am_identity_load_pem(&me, identity)) != 0)
		return cli_fail(rc, "--identity");
	if ((rc = am_file_read(&raw, &len, path, AM_MAX_ENVELOPE + 1)) != 0) {
		am_identity_free(me);
		return cli_fail(rc, "reading");
	}
	rc = am_envelope_decode(&env, (const uint8_t *) raw, len);
	free(raw);
	if (rc != 0) {
		am_identity_free(me);
		fprintf(stderr, "%s: %s: %s (%s)\n", cli_prog, path, am_error_detail(), am_strerror(rc));
		return 1;
	}
	if (am_envelope_payload(&payload, &plen, &env, me) != 0)
		snprintf(perr, sizeof(perr), "%s", am_error_detail());
	j = envelope_json(&env, payload, plen, perr[0] ? perr : NULL);
	if (as_json) {
		cli_json_print(j);
	} else {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v) {
			if (json_is_string(v))
				printf("%-22s %s\n", k, json_string_value(v));
			else if (json_is_boolean(v))
				printf("%-22s %s\n", k, json_is_true(v) ? "yes" : "no");
			else
				printf("%-22s %lld\n", k, (long long) json_integer_value(v));
		}
		json_decref(j);
	}
	free(payload);
	am_envelope_clear(&env);
	am_identity_free(me);
	return 0;
}

int
cmd_envelope_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"store", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	bool as_json = false;
	cli_node node;
	unsigned stored = 0, inboxed = 0, known = 0, bad = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (optind >= argc)
		return cli_usage_error("give one or more envelope FILEs (or - for stdin)");
	if (cli_node_open(&node, dir, 0) != 0)
		return 1;
	for (int i = optind; i < argc; i++) {
		char *raw = NULL;
		size_t len = 0;
		am_queue_result res;
		if ((rc = am_file_read(&raw, &len, argv[i], AM_MAX_ENVELOPE + 1)) != 0) {
			fprintf(stderr, "%s: %s\n", cli_prog, am_error_detail());
			bad++;
			continue;
		}
		rc = am_queue_put(node.q, (const uint8_t *) raw, len, am_now_ms(), &res);
		free(raw);
		if (rc == 0) {
			stored++;
			inboxed += res.inboxed;
		} else if (rc == AM_EDUP || rc == AM_ETOMBSTONE) {
			known++;
		} else {
			fprintf(stderr, "%s: %s: %s\n", cli_prog, argv[i], am_error_detail());
			bad++;
			if (rc == AM_EFULL || rc == AM_ESTORE || rc == AM_EIO)
				break;
		}
	}
	cli_node_close(&node);
	if (as_json)
		cli_json_print(json_pack("{s:i, s:i, s:i, s:i}", "stored", stored, "inboxed", inboxed, "known", known,
		    "refused", bad));
	else if (bad == 0 || stored + known > 0)
		printf("stored %u (%u into the inbox), %u already known, %u refused\n", stored, inboxed, known, bad);
	return bad ? 1 : 0;
}
