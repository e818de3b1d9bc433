/*
 * cmd_bundle.c — `bundle sync|export|import|inspect`: a USB stick is a
 * peer that happens to be a folder; a bundle file crosses a data diode.
 *
 * On a terminal a progress line (counts, MB/s, time left) is redrawn on
 * stderr; otherwise output is quiet and line-oriented, and --json prints
 * one summary object.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "cli.h"
#include "am_runtime.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ui {
	bool tty, json;
	double t0, last;
	unsigned damage_lines;
};

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total, uint64_t bytes)
{
	struct ui *u = ctx;
	double now = mono(), el = now - u->t0, rate;

	if (!u->tty || now - u->last < 0.1)
		return;
	u->last = now;
	rate = el > 0 ? bytes / el / 1e6 : 0;
	if (total > 0 && done <= total && rate > 0) {
		double left = (total - done) / 1e6 / rate;
		fprintf(stderr, "\r%-7s %6.1f/%.1f MB  %5.1f MB/s  %3.0f s left   ", phase, done / 1e6, total / 1e6, rate,
		    left);
	} else {
		fprintf(stderr, "\r%-7s %8llu envelopes  %6.1f MB  %5.1f MB/s   ", phase, (unsigned long long) done,
		    bytes / 1e6, rate);
	}
}

static void
on_damage(void *ctx, const char *file, uint64_t off, const char *what)
{
	struct ui *u = ctx;

	if (u->damage_lines++ < 50)
		fprintf(stderr, "%s%s: %s: offset %llu: %s\n", u->tty ? "\r" : "", cli_prog, file,
		    (unsigned long long) off, what);
	else if (u->damage_lines == 51)
		fprintf(stderr, "%s: (further damage reports left out)\n", cli_prog);
}

static void
ui_start(struct ui *u, am_stick_options *o)
{
	u->tty = !u->json && isatty(STDERR_FILENO);
	u->t0 = mono();
	o->now_ms = am_now_ms();
	o->progress = on_progress;
	o->damage = on_damage;
	o->ctx = u;
}

static int
parse_size(uint64_t *out, const char *s)
{
	char *end = NULL;
	double v = strtod(s, &end);
	uint64_t mul = 1;

	if (end == s || v < 0)
		return cli_usage_error("--max-size \"%s\" is not a size like 500K, 64M, 2G", s);
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case '\0': break;
	default: return cli_usage_error("--max-size \"%s\": unknown unit (use K, M or G)", s);
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v * mul < 1024)
		return cli_usage_error("--max-size \"%s\" must be at least 1K", s);
	*out = (uint64_t) (v * mul);
	return 0;
}

static void
report_json(const am_stick_report *r, int rc)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:b, s:b}",
	    "files", (json_int_t) r->files, "files_skipped", (json_int_t) r->files_skipped, "seen", (json_int_t) r->seen,
	    "imported", (json_int_t) r->imported, "inboxed", (json_int_t) r->inboxed, "known", (json_int_t) r->known,
	    "expired", (json_int_t) r->expired, "refused", (json_int_t) r->refused, "receipts_made",
	    (json_int_t) r->receipts_made, "unknown_writers", (json_int_t) r->unknown_writers, "damaged",
	    (json_int_t) r->damaged, "exported", (json_int_t) r->exported, "export_bytes", (json_int_t) r->export_bytes,
	    "left_behind", (json_int_t) r->left_behind, "left_bytes", (json_int_t) r->left_bytes, "bundle", r->bundle,
	    "read_only", r->read_only, "full", r->full);
	json_object_set_new(j, "pruned", json_integer((json_int_t) r->pruned));
	json_object_set_new(j, "ok", json_boolean(rc == 0));
	if (rc != 0)
		json_object_set_new(j, "problem", json_string(r->problem[0] ? r->problem : am_error_detail()));
	cli_json_print(j);
}

static void
report_text(const am_stick_report *r, bool import, bool export, double secs)
{
	if (import)
		printf("imported %llu of %llu envelopes from %llu files (%llu into the inbox), %llu already known, "
		       "%llu expired, %llu refused; %llu receipts made%s\n",
		    (unsigned long long) r->imported, (unsigned long long) r->seen, (unsigned long long) r->files,
		    (unsigned long long) r->inboxed, (unsigned long long) r->known, (unsigned long long) r->expired,
		    (unsigned long long) r->refused, (unsigned long long) r->receipts_made,
		    r->unknown_writers ? " (some bundles were written by nodes not met before; "
		                         "their envelopes were checked one by one)" : "");
	if (export) {
		if (r->read_only)
			printf("wrote nothing: the stick is read-only\n");
		else if (r->bundle[0])
			printf("wrote %llu envelopes (%.2f MB) to %s%s\n", (unsigned long long) r->exported,
			    r->export_bytes / 1e6, r->bundle, r->left_behind ? "" : "");
		else
			printf("nothing to write: the stick already carries everything\n");
		if (r->left_behind)
			printf("did not fit: %llu envelopes (%.2f MB)\n", (unsigned long long) r->left_behind,
			    r->left_bytes / 1e6);
		if (r->pruned)
			printf("removed %llu bundles that carried only delivered or expired envelopes\n",
			    (unsigned long long) r->pruned);
	}
	if (secs > 0.5)
		printf("took %.1f s\n", secs);
}

static int
finish(const struct ui *u, const am_stick_report *r, int rc, bool import, bool export)
{
	if (u->tty)
		fprintf(stderr, "\r%60s\r", "");
	if (u->json)
		report_json(r, rc);
	else
		report_text(r, import, export, mono() - u->t0);
	if (rc != 0) {
		/* damage was already reported line by line: sum it up, or stay
		 * quiet when that one line said it all */
		if (u->damage_lines == 0)
			fprintf(stderr, "%s: %s\n", cli_prog, r->problem[0] ? r->problem : am_error_detail());
		else if (u->damage_lines > 1 || r->imported > 0)
			fprintf(stderr, "%s: %u damaged places (above); %llu envelopes that verified were imported\n", cli_prog,
			    u->damage_lines, (unsigned long long) r->imported);
		return 1;
	}
	return 0;
}

int
cmd_bundle_sync(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"max-size", required_argument, NULL, 'm'}, {"json", no_argument, NULL, 'j'},
	    {"import-only", no_argument, NULL, 'i'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	am_stick_options o = {0};
	am_stick_report r;
	struct ui u = {0};
	cli_node node;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:m:ji", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'm':
			if (parse_size(&o.max_size, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'j': u.json = true; break;
		case 'i': o.no_export = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (optind + 1 != argc)
		return cli_usage_error("give the stick's folder (its mount point or its AGENTMESH folder)");
	if (cli_node_open(&node, dir, 1) != 0)
		return 1;
	ui_start(&u, &o);
	rc = am_stick_sync(node.q, node.id, argv[optind], &o, &r);
	/* what came in from where, and the custody record left behind */
	cli_audit(dir, node.id, "bundle_import", argv[optind],
	    json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:s}", "stick", argv[optind], "files",
	        (json_int_t) r.files, "imported", (json_int_t) r.imported, "refused", (json_int_t) r.refused, "damaged",
	        (json_int_t) r.damaged, "receipts_ignored", (json_int_t) r.receipts_foreign, "exported",
	        (json_int_t) r.exported, "custody_bundle", r.bundle, "rc", (json_int_t) rc, "problem", r.problem));
	cli_node_close(&node);
	if (rc == AM_ENOTFOUND && r.seen == 0 && r.problem[0] == '\0')
		snprintf(r.problem, sizeof(r.problem), "%s", am_error_detail());
	return finish(&u, &r, rc, true, !o.no_export);
}

static int
parse_since(uint64_t *out, const char *s, am_queue *q)
{
	uint8_t id[AM_ID_BYTES];
	uint64_t ms;
	struct tm tm;
	char *end;

	if (strlen(s) == AM_ID_HEX_LEN && am_id_parse(id, s) == 0) {
		uint8_t *raw = NULL;
		size_t len;
		am_queue_meta m;
		if (am_queue_get(q, id, &raw, &len, &m) != 0)
			return cli_usage_error("--since %s: no such envelope in the store", s);
		free(raw);
		*out = m.created_ms;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) != NULL && *end == '\0') {
		*out = (uint64_t) timegm(&tm) * 1000;
		return 0;
	}
	if (am_duration_parse(&ms, s) == 0) {
		*out = am_now_ms() - ms;
		return 0;
	}
	return cli_usage_error("--since \"%s\" is not an envelope id, a time like 2026-11-28T10:00:00Z, or a "
	                       "duration like 2h", s);
}

int
cmd_bundle_export(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"output", required_argument, NULL, 'o'}, {"since", required_argument, NULL, 'S'},
	    {"to", required_argument, NULL, 't'}, {"max-size", required_argument, NULL, 'm'},
	    {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	const char *dir = NULL, *output = NULL, *since = NULL, *to = NULL;
	am_stick_options o = {0};
	am_stick_report r;
	struct ui u = {0};
	uint8_t to_pk[AM_PK_BYTES];
	cli_node node;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:o:S:t:m:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'o': output = optarg; break;
		case 'S': since = optarg; break;
		case 't': to = optarg; break;
		case 'm':
			if (parse_size(&o.max_size, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'j': u.json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL || output == NULL)
		return cli_usage_error("--store DIR and --output FILE (or -) are required");
	if (strcmp(output, "-") == 0 && isatty(STDOUT_FILENO))
		return cli_usage_error("refusing to write a bundle to a terminal; use --output FILE or a pipe");
	if (to != NULL) {
		if (am_node_id_parse(to_pk, to) != 0)
			return cli_usage_error("--to: %s", am_error_detail());
		o.to = to_pk;
	}
	if (cli_node_open(&node, dir, 1) != 0)
		return 1;
	if (since != NULL && parse_since(&o.since_ms, since, node.q) != 0) {
		cli_node_close(&node);
		return EXIT_USAGE;
	}
	ui_start(&u, &o);
	rc = am_bundle_export_file(node.q, node.id, output, &o, &r);
	cli_node_close(&node);
	if (strcmp(output, "-") == 0) {
		/* stdout carries the bundle: the summary goes to stderr */
		if (rc != 0)
			fprintf(stderr, "%s: %s\n", cli_prog, r.problem);
		else if (!u.json)
			fprintf(stderr, "wrote %llu envelopes (%.2f MB) to standard output\n", (unsigned long long) r.exported,
			    r.export_bytes / 1e6);
		return rc ? 1 : 0;
	}
	if (rc == 0 && r.bundle[0] == '\0' && !u.json)
		printf("nothing to export\n");
	return finish(&u, &r, rc, false, r.bundle[0] || rc);
}

int
cmd_bundle_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"store", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	am_stick_options o = {0};
	am_stick_report r;
	struct ui u = {0};
	cli_node node;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'j': u.json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	if (optind + 1 != argc)
		return cli_usage_error("give one bundle FILE (or - for standard input)");
	if (cli_node_open(&node, dir, 1) != 0)
		return 1;
	ui_start(&u, &o);
	rc = am_bundle_import_file(node.q, node.id, argv[optind], &o, &r);
	cli_audit(dir, node.id, "bundle_import", argv[optind],
	    json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "file", argv[optind], "imported", (json_int_t) r.imported,
	        "refused", (json_int_t) r.refused, "damaged", (json_int_t) r.damaged, "receipts_ignored",
	        (json_int_t) r.receipts_foreign, "rc", (json_int_t) rc, "problem", r.problem));
	cli_node_close(&node);
	return finish(&u, &r, rc, true, false);
}

/* ------------------------------------------------------------- inspect --- */

struct inspect_ctx {
	json_t *damage;
	json_t *dests;
	uint64_t valid, invalid, oldest, newest_exp;
};

static int
inspect_env(void *ctx, const uint8_t *env, size_t len, uint64_t off)
{
	struct inspect_ctx *ic = ctx;
	am_envelope e;
	char key[160];

	if (am_envelope_decode_view(&e, env, len, NULL) != 0) {
		ic->invalid++;
		json_array_append_new(ic->damage,
		    json_pack("{s:I, s:s}", "offset", (json_int_t) off, "what", am_error_detail()));
		return 0;
	}
	ic->valid++;
	am_dest_format(key, sizeof(key), &e.body);
	json_object_set_new(ic->dests, key, json_integer(json_integer_value(json_object_get(ic->dests, key)) + 1));
	if (ic->oldest == 0 || e.body.created_ms < ic->oldest)
		ic->oldest = e.body.created_ms;
	if (e.body.expires_ms > ic->newest_exp)
		ic->newest_exp = e.body.expires_ms;
	return 0;
}

static void
inspect_damage(void *ctx, uint64_t off, const char *what)
{
	struct inspect_ctx *ic = ctx;

	json_array_append_new(ic->damage, json_pack("{s:I, s:s}", "offset", (json_int_t) off, "what", what));
}

static json_t *
inspect_bundle(const char *path, const char *label, bool *bad)
{
	const uint8_t *buf;
	size_t len;
	am_bundle_info info;
	struct inspect_ctx ic = {json_array(), json_object(), 0, 0, 0, 0};
	char writer[AM_NODE_ID_LEN + 1] = "", t1[40] = "", t2[40] = "", t3[40] = "";
	json_t *j;

	if (am_file_map(&buf, &len, path) != 0) {
		*bad = true;
		json_decref(ic.dests);
		json_decref(ic.damage);
		return json_pack("{s:s, s:s}", "file", label, "error", am_error_detail());
	}
	(void) am_bundle_read(&info, buf, len, inspect_env, inspect_damage, &ic);
	am_file_unmap(buf, len);
	if (info.header_ok) {
		am_node_id_format(writer, info.writer);
		cli_time(t1, sizeof(t1), info.created_ms);
	}
	if (ic.oldest)
		cli_time(t2, sizeof(t2), ic.oldest);
	if (ic.newest_exp)
		cli_time(t3, sizeof(t3), ic.newest_exp);
	j = json_pack("{s:s, s:I, s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:I, s:o, s:s, s:s, s:o}", "file", label, "bytes",
	    (json_int_t) len, "writer", writer, "written", t1, "header_ok", info.header_ok, "signature_ok", info.sig_ok,
	    "contents_ok", info.hash_ok, "count", (json_int_t) info.count, "valid", (json_int_t) ic.valid, "invalid",
	    (json_int_t) ic.invalid, "for", ic.dests, "oldest", t2, "last_expiry", t3, "damage", ic.damage);
	if (info.has_to) {
		am_node_id_format(writer, info.to);
		json_object_set_new(j, "exported_for", json_string(writer));
	}
	if (!info.header_ok || !info.sig_ok || !info.hash_ok || ic.invalid || json_array_size(ic.damage))
		*bad = true;
	return j;
}

static json_t *
inspect_records(const char *dir, const char *sub, bool custody, bool *bad)
{
	char sdir[4200], path[4400], **names = NULL;
	size_t n = 0;
	json_t *arr = json_array();

	snprintf(sdir, sizeof(sdir), "%s/%s", dir, sub);
	if (am_dir_list(&names, &n, sdir, ".env") != 0)
		return arr;
	for (size_t i = 0; i < n; i++) {
		char *raw = NULL, node[AM_NODE_ID_LEN + 1], ts[40];
		size_t len;
		am_envelope e;
		am_custody c;
		json_t *j;
		snprintf(path, sizeof(path), "%s/%s", sdir, names[i]);
		if (am_file_read(&raw, &len, path, AM_MAX_ENVELOPE) != 0 || am_envelope_decode(&e, (uint8_t *) raw, len) != 0) {
			*bad = true;
			json_array_append_new(arr, json_pack("{s:s, s:b, s:s}", "file", names[i], "signature_ok", 0,
			    "error", am_error_detail()));
			free(raw);
			continue;
		}
		free(raw);
		am_node_id_format(node, e.body.src);
		cli_time(ts, sizeof(ts), e.body.created_ms);
		j = json_pack("{s:s, s:s, s:s, s:b}", "file", names[i], "node", node, "at", ts, "signature_ok", 1);
		if (custody && am_custody_decode(&c, &e) == 0) {
			json_object_set_new(j, "bundle_added", json_string(c.bundle));
			json_object_set_new(j, "added", json_integer((json_int_t) c.added));
			json_object_set_new(j, "taken", json_integer((json_int_t) c.taken));
			json_object_set_new(j, "store_envelopes", json_integer((json_int_t) c.store_count));
		} else if (custody) {
			*bad = true;
			json_object_set_new(j, "error", json_string(am_error_detail()));
		} else {
			json_object_set_new(j, "ids", json_integer((json_int_t) (e.body.payload_len / 8)));
		}
		json_array_append_new(arr, j);
		am_envelope_clear(&e);
	}
	am_dir_list_free(names, n);
	return arr;
}

static void
print_inspect(json_t *root)
{
	size_t i;
	json_t *b, *v;
	const char *k;

	json_array_foreach(json_object_get(root, "bundles"), i, b) {
		if (json_object_get(b, "error")) {
			printf("%s: %s\n", json_string_value(json_object_get(b, "file")),
			    json_string_value(json_object_get(b, "error")));
			continue;
		}
		printf("%s  %lld envelopes, %.2f MB, written %s by %.16s…  signature %s, contents %s\n",
		    json_string_value(json_object_get(b, "file")), (long long) json_integer_value(json_object_get(b, "valid")),
		    json_integer_value(json_object_get(b, "bytes")) / 1e6, json_string_value(json_object_get(b, "written")),
		    json_string_value(json_object_get(b, "writer")),
		    json_is_true(json_object_get(b, "signature_ok")) ? "ok" : "BAD",
		    json_is_true(json_object_get(b, "contents_ok")) ? "ok" : "DAMAGED");
		printf("    since %s, last expiry %s\n", json_string_value(json_object_get(b, "oldest")),
		    json_string_value(json_object_get(b, "last_expiry")));
		json_object_foreach(json_object_get(b, "for"), k, v)
			printf("    %5lld for %s\n", (long long) json_integer_value(v), k);
		size_t d;
		json_t *dm;
		json_array_foreach(json_object_get(b, "damage"), d, dm)
			printf("    damage at offset %lld: %s\n", (long long) json_integer_value(json_object_get(dm, "offset")),
			    json_string_value(json_object_get(dm, "what")));
	}
	json_array_foreach(json_object_get(root, "custody"), i, b) {
		if (json_object_get(b, "error"))
			printf("custody %s: %s\n", json_string_value(json_object_get(b, "file")),
			    json_string_value(json_object_get(b, "error")));
		else
			printf("custody %s  node %.16s…  added %lld, took %lld%s%s\n", json_string_value(json_object_get(b, "at")),
			    json_string_value(json_object_get(b, "node")), (long long) json_integer_value(json_object_get(b, "added")),
			    (long long) json_integer_value(json_object_get(b, "taken")),
			    json_string_length(json_object_get(b, "bundle_added")) ? "  → " : "",
			    json_string_value(json_object_get(b, "bundle_added")));
	}
	json_array_foreach(json_object_get(root, "summaries"), i, b) {
		if (json_object_get(b, "error"))
			printf("summary %s: %s\n", json_string_value(json_object_get(b, "file")),
			    json_string_value(json_object_get(b, "error")));
		else
			printf("summary %s  node %.16s…  holds %lld ids\n", json_string_value(json_object_get(b, "at")),
			    json_string_value(json_object_get(b, "node")), (long long) json_integer_value(json_object_get(b, "ids")));
	}
}

int
cmd_bundle_inspect(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	bool as_json = false, bad = false;
	json_t *root;
	struct stat st;
	int c;

	while ((c = getopt_long(argc, argv, ":j", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("give a stick folder or a bundle file");
	if (stat(argv[optind], &st) != 0) {
		fprintf(stderr, "%s: %s: no such file or folder\n", cli_prog, argv[optind]);
		return 1;
	}
	root = json_object();
	if (S_ISREG(st.st_mode)) {
		json_t *arr = json_array();
		json_array_append_new(arr, inspect_bundle(argv[optind], argv[optind], &bad));
		json_object_set_new(root, "bundles", arr);
	} else {
		char dir[4096], bdir[4200], path[4400], **names = NULL;
		size_t n = 0;
		json_t *arr = json_array();
		am_stick_dir(dir, sizeof(dir), argv[optind]);
		snprintf(bdir, sizeof(bdir), "%s/bundles", dir);
		if (am_dir_list(&names, &n, bdir, ".amb") != 0 && stat(dir, &st) != 0) {
			fprintf(stderr, "%s: %s holds no AGENTMESH folder\n", cli_prog, argv[optind]);
			json_decref(root);
			json_decref(arr);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/%s", bdir, names[i]);
			json_array_append_new(arr, inspect_bundle(path, names[i], &bad));
		}
		am_dir_list_free(names, n);
		json_object_set_new(root, "bundles", arr);
		json_object_set_new(root, "custody", inspect_records(dir, "custody", true, &bad));
		json_object_set_new(root, "summaries", inspect_records(dir, "summaries", false, &bad));
	}
	json_object_set_new(root, "ok", json_boolean(!bad));
	if (as_json)
		cli_json_print(root);
	else {
		print_inspect(root);
		json_decref(root);
	}
	if (bad)
		fprintf(stderr, "%s: damage or bad signatures found (see above)\n", cli_prog);
	return bad ? 1 : 0;
}
