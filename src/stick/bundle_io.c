/*
 * bundle_io.c — sneakernet: syncing a store with a stick folder, and the
 * one-way bundle import and export for data diodes and air gaps.
 *
 * Import: for each bundle, its id index first (no decompression): a file
 * holding nothing new is skipped. Otherwise every envelope record is put
 * through the store's normal verified path in batches, so nothing
 * unverified enters, duplicates cost no signature check, and damage costs
 * only the damaged block. Receipts owed for envelopes delivered here are
 * made at once, so they ride back on the same stick.
 *
 * Export: the outbox in its order (most urgent, then oldest), leaving out
 * what the stick already carries and what a node summarised on the stick
 * already has, spending one hop, until the size limit.
 *
 * This file: export and the stick sync; import is bundle_import.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "bundle_private.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ------------------------------------------------------------- export --- */

struct summary {
	uint8_t node[AM_PK_BYTES];
	am_envelope env;
};

struct exporter {
	am_queue *q;
	const am_stick_options *o;
	am_stick_report *r;
	am_bundle_writer *w;
	uint64_t limit;
	uint8_t *have;        /* sorted 8-byte prefixes the stick carries */
	size_t nhave;
	struct summary *sums;
	size_t nsums;
	uint64_t candidates;
	int rc;
	uint64_t read_since_trim;
};

static int
cmp8(const void *a, const void *b)
{
	return memcmp(a, b, 8);
}

static bool
stick_has(const struct exporter *x, const uint8_t *id)
{
	return x->nhave > 0 && bsearch(id, x->have, x->nhave, 8, cmp8) != NULL;
}

/* Does the one destination of this envelope already have it? */
static bool
dest_has(const struct exporter *x, const am_queue_meta *m, const uint8_t *raw, size_t len, const uint8_t *id)
{
	am_envelope v;

	if (m->dest_kind != AM_DEST_NODE || x->nsums == 0)
		return false;
	/* the bytes were verified when stored; only the destination is read */
	if (am_envelope_decode_view(&v, raw, len, id) != 0)
		return false;
	for (size_t i = 0; i < x->nsums; i++)
		if (memcmp(x->sums[i].node, v.body.dest_node, AM_PK_BYTES) == 0)
			return am_summary_has(&x->sums[i].env, id);
	return false;
}

static bool
wanted_by(const am_queue_meta *m, const uint8_t *raw, size_t len, const uint8_t *id, const uint8_t *to)
{
	am_envelope v;

	/* for one node: what is addressed to it, and every group and
	 * broadcast envelope (it may belong, or match the area) */
	if (m->dest_kind != AM_DEST_NODE)
		return true;
	return am_envelope_decode_view(&v, raw, len, id) == 0 && memcmp(v.body.dest_node, to, AM_PK_BYTES) == 0;
}

static int
export_visit(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct exporter *x = ctx;
	uint8_t *raw = NULL;
	size_t len = 0;
	int rc;

	if (m->expires_ms <= x->o->now_ms || m->hops_left == 0 || m->created_ms < x->o->since_ms)
		return 0;
	if (stick_has(x, id))
		return 0;
	if ((rc = am_queue_get(x->q, id, &raw, &len, NULL)) != 0)
		return rc == AM_ENOTFOUND ? 0 : (x->rc = rc);
	if ((x->o->to != NULL && !wanted_by(m, raw, len, id, x->o->to)) || dest_has(x, m, raw, len, id)) {
		free(raw);
		return 0;
	}
	x->candidates++;
	if (am_bundle_writer_size(x->w, len) > x->limit) {
		/* does not fit: keep looking, a smaller one may */
		x->r->left_behind++;
		x->r->left_bytes += len;
		free(raw);
		return 0;
	}
	/* carrying spends a hop; the signature does not cover it */
	if ((rc = am_envelope_set_hops(raw, len, (uint8_t) (m->hops_left - 1))) == 0)
		rc = am_bundle_writer_add(x->w, raw, len, id);
	free(raw);
	if (rc != 0)
		return x->rc = rc;
	x->r->exported++;
	x->r->export_bytes += len;
	x->read_since_trim += len;
	if (x->read_since_trim >= (8u << 20)) {
		am_queue_trim(x->q); /* the envelopes read so far need not stay mapped */
		x->read_since_trim = 0;
	}
	if (x->o->progress != NULL && x->r->exported % 64 == 0)
		x->o->progress(x->o->ctx, "export", x->r->exported, 0, x->r->export_bytes);
	return 0;
}

/* Write one bundle to path. *wrote tells whether a file was made (no file
 * when there was nothing to send). */
static int
export_to(struct exporter *x, const am_identity *me, const char *path, bool *wrote)
{
	struct am_out *f = malloc(sizeof(*f));
	uint8_t hdr[AM_BUNDLE_HDR_LEN];
	int rc;

	*wrote = false;
	if (f == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if ((rc = am_out_open(f, path)) != 0) {
		free(f);
		return rc;
	}
	if ((rc = am_bundle_writer_new(&x->w, me, x->o->now_ms, x->o->to, am_out_write, f)) != 0)
		goto out;
	rc = am_queue_outbox_each(x->q, export_visit, x);
	if (rc == 0)
		rc = x->rc;
	if (rc != 0)
		goto out;
	if (am_bundle_writer_count(x->w) == 0 && strcmp(path, "-") != 0)
		goto out; /* nothing to carry: leave no empty file behind */
	if ((rc = am_bundle_writer_finish(x->w, hdr)) != 0 || (rc = am_out_commit(f, hdr, sizeof(hdr))) != 0)
		goto out;
	*wrote = true;
out:
	am_bundle_writer_free(x->w);
	x->w = NULL;
	am_out_close(f);
	free(f);
	return rc;
}

int
am_bundle_export_file(am_queue *q, const am_identity *me, const char *path, const am_stick_options *o,
    am_stick_report *r)
{
	struct exporter x = {q, o, r, NULL, o->max_size ? o->max_size : UINT64_MAX, NULL, 0, NULL, 0, 0, 0, 0};
	bool wrote;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = export_to(&x, me, path, &wrote);
	if (rc == 0 && wrote)
		snprintf(r->bundle, sizeof(r->bundle), "%s", path);
	if (rc == 0 && r->left_behind > 0) {
		r->full = true;
		rc = am_error_set(AM_EFULL, "%llu envelopes (%llu bytes) did not fit in --max-size",
		    (unsigned long long) r->left_behind, (unsigned long long) r->left_bytes);
	}
	if (rc != 0)
		bk_problem(r, "%s", am_error_detail());
	return rc;
}

/* -------------------------------------------------------------- sticks --- */

/* AM_EREADONLY on a stick that takes no writes, else AM_EIO naming why */
static int
ensure_dir(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : am_error_set(AM_EIO, "%s exists and is not a folder", path);
	if (mkdir(path, 0755) == 0)
		return 0;
	if (errno == EROFS || errno == EACCES || errno == EPERM)
		return am_error_set(AM_EREADONLY, "%s: stick is read-only", path);
	return am_error_set(AM_EIO, "%s: %s", path, strerror(errno));
}

/* A sync killed mid-write leaves its temporary file behind; readers ignore
 * it, and once it is clearly abandoned (a minute old) it is removed so it
 * does not eat the stick. */
static void
remove_stale_temporaries(const char *dir, uint64_t now_ms)
{
	static const char *subs[] = {"bundles", "custody", "summaries"};

	for (size_t s = 0; s < sizeof(subs) / sizeof(subs[0]); s++) {
		char sdir[4200], path[4600];
		DIR *d;
		struct dirent *e;
		struct stat st;
		snprintf(sdir, sizeof(sdir), "%s/%s", dir, subs[s]);
		if ((d = opendir(sdir)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			if (strstr(e->d_name, ".tmp.") == NULL)
				continue;
			snprintf(path, sizeof(path), "%s/%s", sdir, e->d_name);
			if (stat(path, &st) == 0 && (uint64_t) st.st_mtime * 1000 + 60000 < now_ms)
				(void) unlink(path);
		}
		closedir(d);
	}
}

/* Remove bundles that carry nothing anyone still wants: every id in them
 * is tombstoned here (delivered to its one recipient, expired, or
 * deleted). Another node may hold different knowledge, but a tombstone is
 * final: a delivered envelope is refused everywhere its receipt reached,
 * an expired one everywhere. Returns how many files went; names them. */
static int
prune_dead(am_queue *q, const char *dir, char **names, size_t n, am_stick_report *r)
{
	for (size_t i = 0; i < n; i++) {
		char path[4400];
		const uint8_t *buf, *ids;
		size_t len, nids, dead = 0;
		am_bundle_info info;
		snprintf(path, sizeof(path), "%s/bundles/%s", dir, names[i]);
		if (am_file_map(&buf, &len, path) != 0)
			continue;
		if (am_bundle_read_index(&info, buf, len, &ids, &nids) == 0 && nids > 0)
			for (size_t k = 0; k < nids && dead == k; k++)
				dead += am_queue_has(q, ids + k * AM_ID_BYTES) == AM_ETOMBSTONE;
		am_file_unmap(buf, len);
		if (nids > 0 && dead == nids && unlink(path) == 0) {
			r->pruned++;
			names[i][0] = '\0'; /* gone: not a source of "the stick has" */
		}
	}
	return 0;
}

/* What the stick carries: the id indexes of its bundles. */
static int
load_have(struct exporter *x, const char *dir, char **names, size_t n)
{
	size_t cap = 0;

	for (size_t i = 0; i < n; i++) {
		char path[4200];
		const uint8_t *buf, *ids;
		size_t len, nids;
		am_bundle_info info;
		if (names[i][0] == '\0')
			continue; /* pruned */
		snprintf(path, sizeof(path), "%s/bundles/%s", dir, names[i]);
		if (am_file_map(&buf, &len, path) != 0)
			continue;
		if (am_bundle_read_index(&info, buf, len, &ids, &nids) == 0) {
			if (x->nhave + nids > cap) {
				cap = (x->nhave + nids) * 2;
				uint8_t *nh = realloc(x->have, cap * 8);
				if (nh == NULL) {
					am_file_unmap(buf, len);
					return am_error_set(AM_ENOMEM, "out of memory");
				}
				x->have = nh;
			}
			for (size_t k = 0; k < nids; k++)
				memcpy(x->have + (x->nhave + k) * 8, ids + k * AM_ID_BYTES, 8);
			x->nhave += nids;
		}
		am_file_unmap(buf, len);
	}
	if (x->nhave > 0)
		qsort(x->have, x->nhave, 8, cmp8);
	return 0;
}

static int
load_summaries(struct exporter *x, const char *dir)
{
	char sdir[4200], **names = NULL;
	size_t n = 0;

	snprintf(sdir, sizeof(sdir), "%s/summaries", dir);
	if (am_dir_list(&names, &n, sdir, ".env") != 0)
		return 0;
	x->sums = calloc(n ? n : 1, sizeof(*x->sums));
	if (x->sums == NULL) {
		am_dir_list_free(names, n);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char path[4400];
		char *raw = NULL;
		size_t len = 0;
		snprintf(path, sizeof(path), "%s/%s", sdir, names[i]);
		if (am_file_read(&raw, &len, path, AM_MAX_ENVELOPE) != 0)
			continue;
		/* a summary counts only if it verifies and is what it says */
		if (am_envelope_decode(&x->sums[x->nsums].env, (uint8_t *) raw, len) == 0) {
			if (strcmp(x->sums[x->nsums].env.body.type, "summary") == 0) {
				memcpy(x->sums[x->nsums].node, x->sums[x->nsums].env.body.src, AM_PK_BYTES);
				x->nsums++;
			} else {
				am_envelope_clear(&x->sums[x->nsums].env);
			}
		}
		free(raw);
	}
	am_dir_list_free(names, n);
	return 0;
}

struct prefixes {
	uint8_t *p;
	size_t n, cap;
};

static int
add_prefix(void *ctx, const uint8_t id[AM_ID_BYTES])
{
	struct prefixes *ps = ctx;

	if (ps->n * 8 >= AM_MAX_PAYLOAD)
		return 0;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 4096;
		uint8_t *np = realloc(ps->p, cap * 8);
		if (np == NULL)
			return am_error_set(AM_ENOMEM, "out of memory");
		ps->p = np;
		ps->cap = cap;
	}
	memcpy(ps->p + ps->n++ * 8, id, 8);
	return 0;
}

static int
write_record(const char *path, const am_envelope *env, bool overwrite)
{
	return am_file_write_atomic(path, env->raw, env->raw_len, 0644, overwrite);
}

/* 1. import every bundle the stick carries; *import_rc: the first
 * bundle's failure (the rest are still read); a store failure returns */
static int
import_stick(struct importer *im, const char *bdir, char **names, size_t n, am_stick_report *r, int *import_rc)
{
	char bpath[4400];
	struct stat st;
	int erc;

	for (size_t i = 0; i < n; i++) {
		snprintf(bpath, sizeof(bpath), "%s/%s", bdir, names[i]);
		if (stat(bpath, &st) == 0)
			im->total += (uint64_t) st.st_size;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *buf;
		size_t len;
		snprintf(bpath, sizeof(bpath), "%s/%s", bdir, names[i]);
		if ((erc = am_file_map(&buf, &len, bpath)) != 0) {
			bk_problem(r, "%s", am_error_detail());
			r->damaged++;
			if (*import_rc == 0)
				*import_rc = erc;
			continue;
		}
		erc = import_mapped(im, names[i], buf, len);
		am_file_unmap(buf, len);
		im->base += len;
		if (im->fatal != 0)
			return im->fatal;
		if (erc != 0 && *import_rc == 0)
			*import_rc = erc;
	}
	return 0;
}

/* 2. the stick's folders (AM_EREADONLY on a write-protected stick) */
static int
make_folders(const char *dir, const char *bdir)
{
	char path[4400];
	int rc;

	if ((rc = ensure_dir(dir)) != 0 || (rc = ensure_dir(bdir)) != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/custody", dir);
	if ((rc = ensure_dir(path)) != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/summaries", dir);
	return ensure_dir(path);
}

/* the most the bundle may take: --max-size, and the free space less what
 * the summary and custody record written after it need */
static uint64_t
export_limit(am_queue *q, const char *dir, const am_stick_options *o, uint64_t taken, uint64_t exported)
{
	struct statvfs vfs;
	am_queue_stats qs = {0};
	uint64_t free_bytes = UINT64_MAX, margin;

	(void) am_queue_get_counts(q, &qs);
	margin = MARGIN + 8 * (qs.envelopes + qs.tombstones + taken + exported);
	if (statvfs(dir, &vfs) == 0)
		free_bytes = (uint64_t) vfs.f_bavail * vfs.f_frsize;
	free_bytes = free_bytes > margin ? free_bytes - margin : 0;
	return o->max_size && o->max_size < free_bytes ? o->max_size : free_bytes;
}

/* 3. one bundle of what the stick and its summarised nodes lack */
static int
export_bundle(struct exporter *x, const am_identity *me, const char *bdir, am_stick_report *r)
{
	char node[AM_NODE_ID_LEN + 1], name[96], bpath[4400];
	uint8_t rnd[4];
	bool wrote = false;
	int rc;

	am_node_id_format(node, am_identity_pk(me));
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(name, sizeof(name), "%013llu-%.16s-%02x%02x%02x%02x.amb", (unsigned long long) x->o->now_ms, node,
	    rnd[0], rnd[1], rnd[2], rnd[3]);
	snprintf(bpath, sizeof(bpath), "%s/%s", bdir, name);
	rc = export_to(x, me, bpath, &wrote);
	if (rc == AM_EFULL) {
		r->full = true;
		bk_problem(r, "stick full: %s", am_error_detail());
	}
	if (rc != 0)
		return rc;
	if (wrote)
		snprintf(r->bundle, sizeof(r->bundle), "%s", name);
	if (r->left_behind > 0)
		r->full = true;
	return 0;
}

/* 4. this node's summary (every id it knows, by prefix), then the
 * custody record of this visit */
static int
write_records(am_queue *q, const am_identity *me, const char *dir, const struct importer *im,
    const am_stick_options *o, const am_stick_report *r)
{
	struct prefixes ps = {0};
	am_custody c = {0};
	am_envelope env;
	am_queue_stats qs;
	char node[AM_NODE_ID_LEN + 1], path[4400];
	uint8_t rnd[4];
	int rc;

	am_node_id_format(node, am_identity_pk(me));
	if ((rc = am_queue_known_each(q, add_prefix, &ps)) == 0 &&
	    (rc = am_summary_create(&env, ps.p, ps.n, me, o->now_ms)) == 0) {
		snprintf(path, sizeof(path), "%s/summaries/%s.env", dir, node);
		rc = write_record(path, &env, true);
		am_envelope_clear(&env);
	}
	free(ps.p);
	if (rc != 0)
		return rc;
	snprintf(c.bundle, sizeof(c.bundle), "%s", r->bundle);
	c.added = r->exported;
	c.taken = im->ntaken;
	c.taken_prefixes = im->taken;
	if (am_queue_get_counts(q, &qs) == 0)
		c.store_count = qs.envelopes;
	randombytes_buf(rnd, sizeof(rnd));
	if ((rc = am_custody_create(&env, &c, me, o->now_ms)) == 0) {
		snprintf(path, sizeof(path), "%s/custody/%013llu-%.16s-%02x%02x%02x%02x.env", dir,
		    (unsigned long long) o->now_ms, node, rnd[0], rnd[1], rnd[2], rnd[3]);
		rc = write_record(path, &env, false);
		am_envelope_clear(&env);
	}
	return rc;
}

int
am_stick_sync(am_queue *q, const am_identity *me, const char *path, const am_stick_options *o, am_stick_report *r)
{
	char dir[4096], bdir[4200];
	char **names = NULL;
	size_t n = 0;
	struct importer *im = NULL;
	struct exporter x = {.q = q, .o = o, .r = r};
	struct stat st;
	int rc = 0, import_rc = 0;

	memset(r, 0, sizeof(*r));
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return am_error_set(AM_ENOTFOUND, "%s: no such folder (is the stick mounted?)", path);
	am_stick_dir(dir, sizeof(dir), path);
	snprintf(bdir, sizeof(bdir), "%s/bundles", dir);

	if ((im = malloc(sizeof(*im))) == NULL || importer_init(im, q, me, o, r) != 0) {
		free(im);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	if (am_dir_list(&names, &n, bdir, ".amb") == 0 && (rc = import_stick(im, bdir, names, n, r, &import_rc)) != 0)
		goto out;
	if ((rc = importer_finish(im)) != 0 || o->no_export)
		goto out;
	/* a read-only stick is still read (what was imported stays), and
	 * another failure is named as itself */
	if ((rc = make_folders(dir, bdir)) != 0)
		goto out_dir;
	remove_stale_temporaries(dir, o->now_ms);
	prune_dead(q, dir, names, n, r);
	x.limit = export_limit(q, dir, o, im->ntaken, r->exported);
	if ((rc = load_have(&x, dir, names, n)) != 0 || (rc = load_summaries(&x, dir)) != 0)
		goto out;
	if ((rc = export_bundle(&x, me, bdir, r)) == AM_EREADONLY)
		goto out_ro;
	if (rc != 0)
		goto out;
	rc = write_records(q, me, dir, im, o, r);
	goto out;
out_dir:
	if (rc != AM_EREADONLY) {
		bk_problem(r, "%s (imported %llu, wrote nothing)", am_error_detail(), (unsigned long long) r->imported);
		rc = am_error_set(rc, "%s", r->problem);
		goto out;
	}
out_ro:
	r->read_only = true;
	bk_problem(r, "stick is read-only: imported %llu, wrote nothing", (unsigned long long) r->imported);
	rc = am_error_set(AM_EREADONLY, "%s", r->problem);
out:
	am_dir_list_free(names, n);
	for (size_t i = 0; i < x.nsums; i++)
		am_envelope_clear(&x.sums[i].env);
	free(x.sums);
	free(x.have);
	if (im != NULL) {
		importer_free(im);
		free(im);
	}
	if (rc == 0 && r->full)
		rc = am_error_set(AM_EFULL, "%llu envelopes (%llu bytes) did not fit on the stick",
		    (unsigned long long) r->left_behind, (unsigned long long) r->left_bytes);
	if (rc == 0 && import_rc != 0)
		rc = am_error_set(import_rc, "%s", r->problem);
	if (rc != 0)
		bk_problem(r, "%s", am_error_detail());
	return rc;
}
