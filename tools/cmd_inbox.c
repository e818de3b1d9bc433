/*
 * cmd_inbox.c — `inbox`: what arrived for this node, oldest first, and
 * (with --ack) consuming it. Without --ack a listing changes nothing, so
 * a crashed consumer simply lists again (at-least-once).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static bool
printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static json_t *
entry_json(const am_queue_inbox_entry *e, const am_envelope *env, const uint8_t *payload, size_t plen)
{
	char idhex[AM_ID_HEX_LEN + 1], src[AM_NODE_ID_LEN + 1], dst[128], ts[40], geo[256];
	json_t *j = json_object();

	am_id_format(idhex, env->id);
	am_node_id_format(src, env->body.src);
	am_dest_format(dst, sizeof(dst), &env->body);
	cli_time(ts, sizeof(ts), env->body.created_ms);
	json_object_set_new(j, "seq", json_integer((json_int_t) e->seq));
	json_object_set_new(j, "id", json_string(idhex));
	json_object_set_new(j, "type", json_string(env->body.type));
	json_object_set_new(j, "from", json_string(src));
	json_object_set_new(j, "to", json_string(dst));
	json_object_set_new(j, "created", json_string(ts));
	json_object_set_new(j, "priority", json_integer(env->body.priority));
	json_object_set_new(j, "content_type", json_string(env->body.content_type));
	if (env->body.geo.kind != AM_GEO_NONE) {
		am_geo_format(geo, sizeof(geo), &env->body.geo);
		json_object_set_new(j, "geo", json_string(geo));
	}
	if (env->body.workflow_id[0])
		json_object_set_new(j, "workflow_id", json_string(env->body.workflow_id));
	/* json_stringn refuses invalid UTF-8, which then counts as binary */
	json_t *txt = payload != NULL && printable(payload, plen) ? json_stringn((const char *) payload, plen) : NULL;
	if (txt != NULL) {
		json_object_set_new(j, "text", txt);
	} else if (payload != NULL) {
		json_object_set_new(j, "payload_bytes", json_integer((json_int_t) plen));
	}
	return j;
}

int
cmd_inbox(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"ack", no_argument, NULL, 'a'}, {"json", no_argument, NULL, 'j'},
	    {"limit", required_argument, NULL, 'n'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	bool ack = false, as_json = false;
	long limit = 100;
	am_queue_inbox_entry *entries = NULL;
	size_t n = 0;
	cli_node node = {0};
	json_t *arr = NULL;
	int c, rc, ret = 1;

	while ((c = getopt_long(argc, argv, ":s:ajn:", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'a': ack = true; break;
		case 'j': as_json = true; break;
		case 'n': {
			char *end = NULL;
			limit = strtol(optarg, &end, 10);
			if (*end != '\0' || limit < 1 || limit > 100000)
				return cli_usage_error("--limit must be 1..100000, got '%s'", optarg);
			break;
		}
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (cli_node_open(&node, dir, 1) != 0)
		return 1;
	entries = calloc((size_t) limit, sizeof(*entries));
	if (entries == NULL) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		goto out;
	}
	if ((rc = am_queue_inbox_list(node.q, 0, entries, (size_t) limit, &n)) != 0) {
		cli_fail(rc, "reading the inbox");
		goto out;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		uint8_t *raw = NULL, *payload = NULL;
		size_t len = 0, plen = 0;
		am_envelope env;
		char idhex[AM_ID_HEX_LEN + 1];
		am_id_format(idhex, entries[i].id);
		if ((rc = am_queue_get(node.q, entries[i].id, &raw, &len, NULL)) != 0 ||
		    (rc = am_envelope_decode(&env, raw, len)) != 0) {
			fprintf(stderr, "%s: envelope %s: %s\n", cli_prog, idhex, am_error_detail());
			free(raw);
			continue;
		}
		free(raw);
		if (am_envelope_payload(&payload, &plen, &env, node.id) != 0) {
			fprintf(stderr, "%s: envelope %s: payload: %s\n", cli_prog, idhex, am_error_detail());
			payload = NULL;
		}
		json_t *j = entry_json(&entries[i], &env, payload, plen);
		if (as_json) {
			json_array_append_new(arr, j);
		} else {
			json_t *t = json_object_get(j, "text");
			printf("%s  from %.16s…  %s  %s  %s\n", idhex, json_string_value(json_object_get(j, "from")),
			    json_string_value(json_object_get(j, "created")), json_string_value(json_object_get(j, "type")),
			    json_string_value(json_object_get(j, "to")));
			if (t != NULL)
				printf("    %s\n", json_string_value(t));
			else
				printf("    (%zu bytes, %s)\n", plen, env.body.content_type);
			json_decref(j);
		}
		free(payload);
		am_envelope_clear(&env);
	}
	if (as_json) {
		cli_json_print(arr);
		arr = NULL;
	} else if (n == 0) {
		fprintf(stderr, "inbox empty\n");
	}
	/* Ack only after everything listed has been written out: a consumer
	 * killed before this point sees the same entries again. */
	if (ack && fflush(stdout) == 0) {
		for (size_t i = 0; i < n; i++)
			if ((rc = am_queue_inbox_ack(node.q, entries[i].id, am_now_ms())) != 0) {
				cli_fail(rc, "acking");
				goto out;
			}
	}
	ret = 0;
out:
	json_decref(arr);
	free(entries);
	cli_node_close(&node);
	return ret;
}
