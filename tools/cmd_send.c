/*
 * cmd_send.c — `send`: sign an envelope with the node's key and commit it
 * to the node's store, from where links, sticks or `store copy` carry it.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TTL_MS (7ull * 24 * 3600 * 1000)

int
cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"to", required_argument, NULL, 't'}, {"group", required_argument, NULL, 'g'},
	    {"broadcast", no_argument, NULL, 'b'}, {"geo", required_argument, NULL, 'G'},
	    {"zone", required_argument, NULL, 'z'}, {"ttl", required_argument, NULL, 'l'},
	    {"priority", required_argument, NULL, 'p'}, {"type", required_argument, NULL, 'T'},
	    {"content-type", required_argument, NULL, 'c'}, {"ref", required_argument, NULL, 'r'},
	    {"workflow", required_argument, NULL, 'w'}, {"seal", no_argument, NULL, 'S'},
	    {"no-compress", no_argument, NULL, 'n'}, {"text", required_argument, NULL, 'x'},
	    {"file", required_argument, NULL, 'f'}, {0, 0, 0, 0}};
	const char *dir = NULL, *to = NULL, *group = NULL, *geo_text = NULL, *text = NULL, *file = NULL;
	am_envelope_spec spec = {0};
	am_geo geo = {0};
	uint8_t ref[AM_ID_BYTES];
	uint64_t ttl = DEFAULT_TTL_MS, now;
	char *data = NULL, idhex[AM_ID_HEX_LEN + 1];
	size_t data_len = 0, nzones = 0;
	am_envelope env = {0};
	cli_node node = {0};
	am_queue_result res;
	int c, rc, ndest = 0, ret = 1;
	bool broadcast = false;

	spec.priority = AM_PRIO_NORMAL;
	while ((c = getopt_long(argc, argv, ":s:t:g:bG:z:l:p:T:c:r:w:Snx:f:", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 't': to = optarg; ndest++; break;
		case 'g': group = optarg; ndest++; break;
		case 'b': broadcast = true; ndest++; break;
		case 'G': geo_text = optarg; break;
		case 'z':
			if (geo.kind != AM_GEO_NONE && geo.kind != AM_GEO_ZONE)
				return cli_usage_error("--zone cannot be combined with another geo target");
			geo.kind = AM_GEO_ZONE;
			if (cli_add_tag(geo.tags, AM_GEO_MAX_TAGS, &nzones, "zone tag", optarg) != 0)
				return EXIT_USAGE;
			geo.ntags = (uint8_t) nzones;
			break;
		case 'l':
			if (am_duration_parse(&ttl, optarg) != 0)
				return cli_usage_error("--ttl: %s", am_error_detail());
			if (ttl > AM_MAX_TTL_MS)
				return cli_usage_error("--ttl %s: at most 366d", optarg);
			break;
		case 'p': {
			char *end = NULL;
			long v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0 || v > 3)
				return cli_usage_error("--priority must be 0, 1, 2 or 3 (3 most urgent), got '%s'", optarg);
			spec.priority = (uint8_t) v;
			break;
		}
		case 'T':
			if (am_tag_check("--type", optarg, strlen(optarg)) != 0)
				return cli_usage_error("%s", am_error_detail());
			spec.type = optarg;
			break;
		case 'c': spec.content_type = optarg; break;
		case 'r':
			if (am_id_parse(ref, optarg) != 0)
				return cli_usage_error("--ref: %s", am_error_detail());
			spec.ref = ref;
			break;
		case 'w': spec.workflow_id = optarg; break;
		case 'S': spec.seal = true; break;
		case 'n': spec.no_compress = true; break;
		case 'x': text = optarg; break;
		case 'f': file = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc && strcmp(argv[optind], "-") == 0 && file == NULL) {
		file = "-";
		optind++;
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (ndest != 1)
		return cli_usage_error("give exactly one of --to NODE_ID, --group G, --broadcast");
	if ((text != NULL) + (file != NULL) != 1)
		return cli_usage_error("give the payload with exactly one of --text STRING, --file F or -");
	if (geo_text != NULL) {
		if (geo.kind != AM_GEO_NONE)
			return cli_usage_error("--geo cannot be combined with --zone");
		if (am_geo_parse(&geo, geo_text) != 0)
			return cli_usage_error("--geo: %s", am_error_detail());
	}
	if (to != NULL) {
		spec.dest_kind = AM_DEST_NODE;
		if (am_node_id_parse(spec.dest_node, to) != 0)
			return cli_usage_error("--to: %s", am_error_detail());
	} else if (group != NULL) {
		spec.dest_kind = AM_DEST_GROUP;
		if (am_tag_check("--group", group, strlen(group)) != 0)
			return cli_usage_error("%s", am_error_detail());
		spec.dest_group = group;
	} else {
		spec.dest_kind = AM_DEST_BROADCAST;
	}
	if (spec.seal && spec.dest_kind != AM_DEST_NODE)
		return cli_usage_error("--seal needs --to: only one node can open it");
	(void) broadcast;
	if (text != NULL) {
		data_len = strlen(text);
		if (data_len > AM_MAX_PAYLOAD)
			return cli_usage_error("--text is %zu bytes, limit %u", data_len, AM_MAX_PAYLOAD);
		spec.payload = (const uint8_t *) text;
		if (spec.content_type == NULL)
			spec.content_type = "text/plain; charset=utf-8";
	} else {
		if ((rc = am_file_read(&data, &data_len, file, AM_MAX_PAYLOAD)) != 0)
			return cli_fail(rc, "reading the payload");
		spec.payload = (const uint8_t *) data;
	}
	spec.payload_len = data_len;
	spec.geo = geo.kind != AM_GEO_NONE ? &geo : NULL;
	if (cli_node_open(&node, dir, 1) != 0)
		goto out;
	now = am_now_ms();
	spec.created_ms = now;
	spec.expires_ms = now + ttl;
	if ((rc = am_envelope_create_decoded(&env, &spec, node.id)) != 0) {
		cli_fail(rc, "building the envelope");
		goto out;
	}
	if ((rc = am_queue_put_own(node.q, &env, 1, now, &res)) != 0 || (rc = res.rc) != 0) {
		cli_fail(rc, "storing the envelope");
		goto out;
	}
	am_id_format(idhex, env.id);
	printf("%s\n", idhex);
	ret = 0;
out:
	am_envelope_clear(&env);
	free(data);
	cli_node_close(&node);
	return ret;
}
