/*
 * bundle_import.c — importing bundles into a store: for each bundle its id
 * index first (no decompression; a file holding nothing new is skipped),
 * then every envelope record through the store's verified path in
 * batches, verifying on the cores while the last batch commits; damage
 * costs only the damaged block; receipts owed are made at once.
 */
#define _POSIX_C_SOURCE 200809L
#include "bundle_private.h"
#include "files.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
bk_problem(am_stick_report *r, const char *fmt, ...)
{
	va_list ap;

	if (r->problem[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(r->problem, sizeof(r->problem), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------- import --- */

static int
make_receipts(struct importer *im)
{
	return am_owed_send(&im->owed, im->q, im->me, im->o->now_ms, &im->r->receipts_made, NULL);
}

static int
grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 4096;
	while (ncap < need)
		ncap *= 2;
	void *np = realloc(*p, ncap * elem);
	if (np == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	*p = np;
	*cap = ncap;
	return 0;
}

/* Count a committed batch's results. */
static int
tally(struct importer *im, struct batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		am_queue_result *res = &bt->res[i];
		im->r->seen++;
		switch (res->rc) {
		case 0:
			im->r->imported++;
			im->r->inboxed += res->inboxed;
			im->r->receipts_foreign += res->receipt_foreign;
			if (grow((void **) &im->taken, &im->taken_cap, im->ntaken + 1, 8) != 0)
				return AM_ENOMEM;
			memcpy(im->taken + im->ntaken++ * 8, res->id, 8);
			if (am_owed_note(&im->owed, res) != 0)
				return AM_ENOMEM;
			break;
		case AM_EDUP:
		case AM_ETOMBSTONE:
			im->r->known++;
			break;
		case AM_EEXPIRED:
			im->r->expired++;
			break;
		case AM_EFULL:
		case AM_ESTORE:
		case AM_EIO:
		case AM_ENOMEM:
			break; /* the store's problem, reported once by the caller */
		default: {
			char what[240];
			im->r->refused++;
			im->r->damaged++;
			snprintf(what, sizeof(what), "envelope refused: %s", res->detail);
			bk_problem(im->r, "%s: offset %llu: %s", bt->file, (unsigned long long) bt->offs[i], what);
			if (im->o->damage != NULL)
				im->o->damage(im->o->ctx, bt->file, bt->offs[i], what);
		}
		}
	}
	bt->n = 0;
	bt->arena_len = 0;
	return 0;
}

static int
store_failed(struct importer *im, int rc)
{
	if (rc == AM_EFULL || rc == AM_ESTORE || rc == AM_EIO || rc == AM_ENOMEM) {
		bk_problem(im->r, "store: %s", am_error_detail());
		im->fatal = rc;
		return rc;
	}
	return 0;
}

/* Wait for the batch in flight and count it. */
static int
drain(struct importer *im)
{
	int rc;

	if (!im->in_flight)
		return 0;
	rc = am_queue_pipe_flush(im->pipe);
	im->in_flight = false;
	if (tally(im, &im->b[im->cur ^ 1]) != 0)
		return store_failed(im, AM_ENOMEM);
	return store_failed(im, rc);
}

/* Hand the filled batch to the pipe (verification runs now, on every
 * core), count the one that was in flight, and switch buffers. */
static int
flush(struct importer *im)
{
	struct batch *bt = &im->b[im->cur];
	int rc;

	if (bt->n == 0)
		return 0;
	rc = am_queue_pipe_put_batch(im->pipe, bt->items, bt->n, im->o->now_ms, bt->res);
	if (im->in_flight && tally(im, &im->b[im->cur ^ 1]) != 0)
		return store_failed(im, AM_ENOMEM);
	if (store_failed(im, rc) != 0)
		return rc;
	im->in_flight = true;
	im->cur ^= 1;
	return 0;
}

static int
on_env(void *ctx, const uint8_t *env, size_t len, uint64_t off)
{
	struct importer *im = ctx;
	struct batch *bt = &im->b[im->cur];
	int rc;

	if (bt->arena_len + len > bt->arena_cap || bt->n == BATCH) {
		if ((rc = flush(im)) != 0)
			return rc;
		bt = &im->b[im->cur];
		if (len > bt->arena_cap) {
			/* the batch in flight still points into the other arena */
			uint8_t *na = realloc(bt->arena, len);
			if (na == NULL)
				return am_error_set(AM_ENOMEM, "out of memory");
			bt->arena = na;
			bt->arena_cap = len;
		}
	}
	memcpy(bt->arena + bt->arena_len, env, len);
	bt->items[bt->n].raw = bt->arena + bt->arena_len;
	bt->items[bt->n].len = len;
	bt->offs[bt->n] = off;
	bt->file = im->file;
	bt->arena_len += len;
	bt->n++;
	if (im->o->progress != NULL && bt->n % 256 == 0)
		im->o->progress(im->o->ctx, "import", im->base + off, im->total, im->base + off);
	if (off - im->released > RELEASE_STEP) {
		am_file_release(im->map, off);
		im->released = off;
	}
	return 0;
}

static void
on_damage(void *ctx, uint64_t off, const char *what)
{
	struct importer *im = ctx;

	im->r->damaged++;
	bk_problem(im->r, "%s: offset %llu: %s", im->file, (unsigned long long) off, what);
	if (im->o->damage != NULL)
		im->o->damage(im->o->ctx, im->file, off, what);
}

/* Import one mapped bundle. Returns 0, a damage code (reported) or a
 * fatal store error. The batch that holds its last records is committed
 * before returning, since they point into the mapping. */
int
import_mapped(struct importer *im, const char *label, const uint8_t *buf, size_t len)
{
	am_bundle_info info;
	const uint8_t *ids = NULL;
	size_t nids = 0;
	int rc;

	im->file = label;
	im->map = buf;
	im->released = 0;
	im->r->files++;
	/* nothing new in it? then it need not be decompressed at all */
	if (am_bundle_read_index(&info, buf, len, &ids, &nids) == 0) {
		size_t unknown = 0;
		for (size_t i = 0; i < nids && unknown == 0; i++)
			unknown += am_queue_has(im->q, ids + i * AM_ID_BYTES) == AM_ENOTFOUND;
		if (unknown == 0) {
			im->r->files_skipped++;
			im->r->known += nids;
			im->r->seen += nids;
			im->r->bytes_read += len;
			return 0;
		}
	}
	rc = am_bundle_read(&info, buf, len, on_env, on_damage, im);
	if (im->fatal == 0 && flush(im) == 0)
		(void) drain(im);
	im->r->bytes_read += len;
	if (im->fatal != 0)
		return im->fatal;
	if (info.header_ok && info.sig_ok) {
		am_queue_peer p = {0};
		if (am_queue_peer_get(im->q, info.writer, &p) == AM_ENOTFOUND) {
			im->r->unknown_writers++;
			memcpy(p.pk, info.writer, AM_PK_BYTES);
		}
		snprintf(p.address, sizeof(p.address), "stick");
		(void) am_queue_peer_seen(im->q, &p, im->o->now_ms);
	}
	return rc;
}

int
importer_init(struct importer *im, am_queue *q, const am_identity *me, const am_stick_options *o, am_stick_report *r)
{
	memset(im, 0, sizeof(*im));
	im->q = q;
	im->me = me;
	im->o = o;
	im->r = r;
	for (int i = 0; i < 2; i++) {
		im->b[i].arena_cap = ARENA_LIMIT;
		if ((im->b[i].arena = malloc(ARENA_LIMIT)) == NULL)
			return am_error_set(AM_ENOMEM, "out of memory for an import batch");
	}
	return am_queue_pipe_open(&im->pipe, q);
}

/* Finish: receipts for everything delivered, then stop the pipe. */
int
importer_finish(struct importer *im)
{
	int rc = drain(im);

	if (rc == 0 && im->fatal == 0)
		rc = store_failed(im, make_receipts(im));
	return rc;
}

void
importer_free(struct importer *im)
{
	(void) am_queue_pipe_close(im->pipe);
	for (int i = 0; i < 2; i++)
		free(im->b[i].arena);
	free(im->taken);
	am_owed_free(&im->owed);
}

int
am_bundle_import_file(am_queue *q, const am_identity *me, const char *path, const am_stick_options *o,
    am_stick_report *r)
{
	struct importer *im = malloc(sizeof(*im));
	const uint8_t *buf = NULL;
	size_t len = 0;
	char spool[64] = "";
	int rc;

	memset(r, 0, sizeof(*r));
	if (im == NULL || (rc = importer_init(im, q, me, o, r)) != 0) {
		free(im);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	if (strcmp(path, "-") == 0) {
		/* a pipe cannot be mapped: spool it to an unlinked file */
		const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		char chunk[65536];
		ssize_t n;
		int fd;
		snprintf(spool, sizeof(spool), "%.40s/agent-mesh-in.XXXXXX", tmpdir);
		if ((fd = mkstemp(spool)) < 0) {
			rc = am_error_set(AM_EIO, "cannot spool standard input: %s", strerror(errno));
			goto out;
		}
		rc = 0;
		while (rc == 0 && (n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || write(fd, chunk, (size_t) n) != n)
				rc = am_error_set(AM_EIO, "spooling standard input: %s", strerror(errno));
		}
		close(fd);
		if (rc == 0)
			rc = am_file_map(&buf, &len, spool);
		unlink(spool);
	} else {
		rc = am_file_map(&buf, &len, path);
	}
	if (rc != 0)
		goto out;
	if (o->progress != NULL) {
		im->total = len;
		o->progress(o->ctx, "import", 0, len, 0);
	}
	rc = import_mapped(im, strcmp(path, "-") == 0 ? "stdin" : path, buf, len);
	am_file_unmap(buf, len);
	{
		int frc = importer_finish(im);
		if (frc != 0 && (rc == 0 || im->fatal != 0))
			rc = frc;
	}
out:
	if (rc != 0)
		bk_problem(r, "%s", am_error_detail());
	importer_free(im);
	free(im);
	return rc;
}

