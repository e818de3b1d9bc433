/*
 * cmd_store.c — `store stats|gc|copy|set|get`.
 *
 * `store copy` is the reference behaviour for every later carrier (links,
 * sticks): take what the far side lacks from the near side's outbox, spend
 * one hop, and let the far side's put path verify and dedup each one.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_BATCH 256

static int
parse_store_only(int argc, char **argv, const char **dir, bool *as_json)
{
	static const struct option opts[] = {
	    {"store", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	int c;

	while ((c = getopt_long(argc, argv, ":s:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': *dir = optarg; break;
		case 'j': *as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (*dir == NULL)
		return cli_usage_error("--store DIR is required");
	return 0;
}

int
cmd_store_stats(int argc, char **argv)
{
	const char *dir = NULL;
	bool as_json = false;
	cli_node node;
	am_queue_stats st;
	am_position pos;
	uint8_t self[AM_PK_BYTES];
	char nid[AM_NODE_ID_LEN + 1] = "", t1[40] = "-", t2[40] = "-";
	int rc;

	if ((rc = parse_store_only(argc, argv, &dir, &as_json)) != 0)
		return rc;
	if (cli_node_open(&node, dir, 0) != 0)
		return 1;
	if ((rc = am_queue_get_stats(node.q, &st)) != 0 || (rc = am_queue_get_position(node.q, &pos)) != 0) {
		cli_fail(rc, "reading statistics");
		cli_node_close(&node);
		return 1;
	}
	if (am_queue_get_self(node.q, self) == 0)
		am_node_id_format(nid, self);
	if (st.oldest_created_ms)
		cli_time(t1, sizeof(t1), st.oldest_created_ms);
	if (st.newest_created_ms)
		cli_time(t2, sizeof(t2), st.newest_created_ms);
	if (as_json) {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:[I,I,I,I]}", "node_id", nid,
		    "envelopes", (json_int_t) st.envelopes, "bytes", (json_int_t) st.bytes, "outbox",
		    (json_int_t) st.outbox, "inbox_unacked", (json_int_t) st.inbox_unacked, "tombstones",
		    (json_int_t) st.tombstones, "peers", (json_int_t) st.peers, "map_size", (json_int_t) st.map_size,
		    "map_used", (json_int_t) st.map_used, "by_priority", (json_int_t) st.by_priority[0],
		    (json_int_t) st.by_priority[1], (json_int_t) st.by_priority[2], (json_int_t) st.by_priority[3]);
		if (pos.has_fix)
			json_object_set_new(j, "position", json_pack("[f,f]", pos.lat, pos.lon));
		cli_json_print(j);
	} else {
		printf("node        %s\n", nid[0] ? nid : "(no owner)");
		printf("envelopes   %llu (%llu bytes)  by priority 0/1/2/3: %llu/%llu/%llu/%llu\n",
		    (unsigned long long) st.envelopes, (unsigned long long) st.bytes,
		    (unsigned long long) st.by_priority[0], (unsigned long long) st.by_priority[1],
		    (unsigned long long) st.by_priority[2], (unsigned long long) st.by_priority[3]);
		printf("outbox      %llu\ninbox       %llu unacked\ntombstones  %llu\npeers       %llu\n",
		    (unsigned long long) st.outbox, (unsigned long long) st.inbox_unacked,
		    (unsigned long long) st.tombstones, (unsigned long long) st.peers);
		printf("created     %s .. %s\n", t1, t2);
		printf("map         %.1f of %.1f MiB used\n", st.map_used / 1048576.0, st.map_size / 1048576.0);
		if (pos.has_fix)
			printf("position    %.6f,%.6f\n", pos.lat, pos.lon);
	}
	cli_node_close(&node);
	return 0;
}

int
cmd_store_gc(int argc, char **argv)
{
	const char *dir = NULL;
	bool as_json = false;
	cli_node node;
	am_queue_gc_stats st;
	int rc;

	if ((rc = parse_store_only(argc, argv, &dir, &as_json)) != 0)
		return rc;
	if (cli_node_open(&node, dir, 0) != 0)
		return 1;
	rc = am_queue_gc(node.q, am_now_ms(), &st);
	cli_node_close(&node);
	if (rc != 0)
		return cli_fail(rc, "collecting");
	if (as_json)
		cli_json_print(json_pack("{s:I, s:I}", "expired", (json_int_t) st.expired, "tombstones_freed",
		    (json_int_t) st.tombs_freed));
	else
		printf("removed %llu expired envelopes, forgot %llu old tombstones\n", (unsigned long long) st.expired,
		    (unsigned long long) st.tombs_freed);
	return 0;
}

struct copy_ctx {
	am_queue *from, *to;
	uint64_t now;
	am_queue_item items[COPY_BATCH];
	size_t n;
	uint64_t copied, inboxed, skipped, refused;
	int rc;
};

static int
copy_flush(struct copy_ctx *c)
{
	am_queue_result res[COPY_BATCH];
	int rc = 0;

	if (c->n == 0)
		return 0;
	rc = am_queue_put_batch(c->to, c->items, c->n, c->now, res);
	for (size_t i = 0; i < c->n; i++) {
		if (res[i].rc == 0) {
			c->copied++;
			c->inboxed += res[i].inboxed;
		} else if (res[i].rc == AM_EDUP || res[i].rc == AM_ETOMBSTONE || res[i].rc == AM_EEXPIRED) {
			c->skipped++;
		} else {
			char idhex[AM_ID_HEX_LEN + 1];
			am_id_format(idhex, res[i].id);
			fprintf(stderr, "%s: %s refused: %s\n", cli_prog, idhex, res[i].detail);
			c->refused++;
		}
		free((void *) c->items[i].raw);
	}
	c->n = 0;
	return rc;
}

static int
copy_visit(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct copy_ctx *c = ctx;
	uint8_t *raw = NULL;
	size_t len = 0;
	int rc;

	if (m->expires_ms <= c->now || m->hops_left == 0)
		return 0;
	rc = am_queue_has(c->to, id);
	if (rc != AM_ENOTFOUND) {
		c->skipped += rc == 0 || rc == AM_ETOMBSTONE;
		return rc == 0 || rc == AM_ETOMBSTONE ? 0 : (c->rc = rc);
	}
	if ((rc = am_queue_get(c->from, id, &raw, &len, NULL)) != 0)
		return c->rc = rc;
	/* Carrying spends a hop; the signature does not cover hops_left. */
	if ((rc = am_envelope_set_hops(raw, len, (uint8_t) (m->hops_left - 1))) != 0) {
		free(raw);
		return c->rc = rc;
	}
	c->items[c->n].raw = raw;
	c->items[c->n].len = len;
	if (++c->n == COPY_BATCH && (rc = copy_flush(c)) != 0)
		return c->rc = rc;
	return 0;
}

int
cmd_store_copy(int argc, char **argv)
{
	static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	const char *from = NULL, *to = NULL;
	bool as_json = false;
	cli_node a = {0}, b = {0};
	struct copy_ctx *c = NULL;
	int opt, rc, ret = 1;

	while ((opt = getopt_long(argc, argv, ":f:t:j", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_opt_error(opt, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (from == NULL || to == NULL)
		return cli_usage_error("--from DIR and --to DIR are required");
	if (cli_node_open(&a, from, 0) != 0 || cli_node_open(&b, to, 0) != 0)
		goto out;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		goto out;
	}
	c->from = a.q;
	c->to = b.q;
	c->now = am_now_ms();
	rc = am_queue_outbox_each(a.q, copy_visit, c);
	if (rc == 0)
		rc = copy_flush(c);
	for (size_t i = 0; i < c->n; i++)
		free((void *) c->items[i].raw);
	if (rc != 0) {
		cli_fail(rc, "copying");
		goto out;
	}
	if (as_json)
		cli_json_print(json_pack("{s:I, s:I, s:I, s:I}", "copied", (json_int_t) c->copied, "inboxed",
		    (json_int_t) c->inboxed, "skipped", (json_int_t) c->skipped, "refused", (json_int_t) c->refused));
	else
		printf("copied %llu (%llu into the inbox), skipped %llu already held or refused before, %llu invalid\n",
		    (unsigned long long) c->copied, (unsigned long long) c->inboxed, (unsigned long long) c->skipped,
		    (unsigned long long) c->refused);
	ret = c->refused ? 1 : 0;
out:
	free(c);
	cli_node_close(&a);
	cli_node_close(&b);
	return ret;
}

int
cmd_store_set(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"position", required_argument, NULL, 'p'}, {"no-position", no_argument, NULL, 'P'},
	    {"zone", required_argument, NULL, 'z'}, {"group", required_argument, NULL, 'g'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	am_position pos, newpos = {0};
	char groups[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
	size_t ngroups = 0, ntags = 0;
	bool set_pos = false, clear_pos = false, set_groups = false;
	cli_node node;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:p:Pz:g:", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'p':
			if (cli_parse_position(&newpos, optarg) != 0)
				return EXIT_USAGE;
			set_pos = true;
			break;
		case 'P': clear_pos = true; break;
		case 'z':
			if (cli_add_tag(newpos.tags, AM_GEO_MAX_TAGS, &ntags, "zone tag", optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'g':
			if (cli_add_tag(groups, AM_QUEUE_MAX_GROUPS, &ngroups, "group", optarg) != 0)
				return EXIT_USAGE;
			set_groups = true;
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (set_pos && clear_pos)
		return cli_usage_error("--position and --no-position contradict each other");
	if (cli_node_open(&node, dir, 0) != 0)
		return 1;
	if ((rc = am_queue_get_position(node.q, &pos)) != 0)
		goto fail;
	if (set_pos) {
		pos.has_fix = true;
		pos.lat = newpos.lat;
		pos.lon = newpos.lon;
	}
	if (clear_pos)
		pos.has_fix = false;
	if (ntags > 0) {
		memcpy(pos.tags, newpos.tags, sizeof(pos.tags));
		pos.ntags = (uint8_t) ntags;
	}
	if ((rc = am_queue_set_position(node.q, &pos)) != 0)
		goto fail;
	if (set_groups && (rc = am_queue_set_groups(node.q, groups, ngroups)) != 0)
		goto fail;
	cli_node_close(&node);
	return 0;
fail:
	cli_node_close(&node);
	return cli_fail(rc, "saving settings");
}

int
cmd_store_get(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"id", required_argument, NULL, 'i'}, {"output", required_argument, NULL, 'o'}, {0, 0, 0, 0}};
	const char *dir = NULL, *idtext = NULL, *output = NULL;
	uint8_t id[AM_ID_BYTES], *raw = NULL;
	size_t len = 0;
	cli_node node;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:i:o:", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'i': idtext = optarg; break;
		case 'o': output = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL || idtext == NULL)
		return cli_usage_error("--store DIR and --id ID are required");
	if (am_id_parse(id, idtext) != 0)
		return cli_usage_error("--id: %s", am_error_detail());
	if (output == NULL && isatty(STDOUT_FILENO))
		return cli_usage_error("refusing to write binary to a terminal; use --output FILE or a pipe");
	if (cli_node_open(&node, dir, 0) != 0)
		return 1;
	rc = am_queue_get(node.q, id, &raw, &len, NULL);
	cli_node_close(&node);
	if (rc != 0)
		return cli_fail(rc, idtext);
	if (output != NULL)
		rc = am_file_write_atomic(output, raw, len, 0644, true);
	else if (fwrite(raw, 1, len, stdout) != len || fflush(stdout) != 0)
		rc = am_error_set(AM_EIO, "writing to stdout failed");
	free(raw);
	return rc ? cli_fail(rc, "writing the envelope") : 0;
}
