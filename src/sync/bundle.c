/*
 * bundle.c — the bundle file format: a signed header, independently
 * compressed blocks of length-prefixed envelopes, and an id index.
 *
 *   header (202 bytes, fixed)  magic "AMBUNDLE", version, flags, writer,
 *                              created, count, blocks, index offset, total
 *                              length, BLAKE2b-256 of everything after the
 *                              header, "to", Ed25519 signature of the above
 *   block                      "BLK1" method(1) count(4) ulen(4) clen(4) data
 *   index                      "IDX1" count(4) count * id(32)
 *
 * Blocks are compressed separately so that damage loses one block, not the
 * rest of the file, and carry markers so a reader can find the next one
 * after garbage. Every envelope still verifies on its own; the signature
 * only says who wrote the file and that it is whole. docs/PROTOCOL.md
 * section 8 is normative.
 */
#include "am_sync.h"
#include "be32_private.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const uint8_t magic[8] = {'A', 'M', 'B', 'U', 'N', 'D', 'L', 'E'};
#define SIGNED_LEN 138 /* header bytes covered by the signature */
#define BLK_HDR 17

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t) (v >> 32));
	put32(p + 4, (uint32_t) v);
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t) get32(p) << 32 | get32(p + 4);
}

/* ------------------------------------------------------------ writer --- */

struct am_bundle_writer {
	const am_identity *id;
	uint64_t created;
	bool has_to;
	uint8_t to[AM_PK_BYTES];
	am_sync_write_fn fn;
	void *ctx;
	crypto_generichash_state hs; /* over everything after the header */
	uint64_t emitted;
	uint8_t *blk;                /* the open block's records */
	size_t blk_len, blk_cap;
	uint32_t blk_count;
	uint8_t *ids;
	size_t nids, ids_cap;
	uint32_t nblocks;
	uint8_t *zbuf;
	size_t zcap;
	size_t fill;                 /* close a block past this */
};

static int
emit(am_bundle_writer *w, const void *buf, size_t len, bool hashed)
{
	int rc = w->fn(w->ctx, buf, len);

	if (rc != 0)
		return rc;
	if (hashed)
		crypto_generichash_update(&w->hs, buf, len);
	w->emitted += len;
	return 0;
}

int
am_bundle_writer_new(am_bundle_writer **out, const am_identity *writer, uint64_t created_ms, const uint8_t *to,
    am_sync_write_fn fn, void *ctx)
{
	am_bundle_writer *w = calloc(1, sizeof(*w));
	uint8_t zero[AM_BUNDLE_HDR_LEN] = {0};
	int rc;

	*out = NULL;
	if (w == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a bundle writer");
	w->id = writer;
	w->fill = AM_BUNDLE_BLOCK_FILL;
	w->created = created_ms;
	w->fn = fn;
	w->ctx = ctx;
	if (to != NULL) {
		w->has_to = true;
		memcpy(w->to, to, AM_PK_BYTES);
	}
	crypto_generichash_init(&w->hs, NULL, 0, AM_ID_BYTES);
	/* placeholder: the real header needs the contents hash */
	if ((rc = emit(w, zero, sizeof(zero), false)) != 0) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static bool
dense(const uint8_t *p, size_t n)
{
	bool seen[256] = {0};
	size_t sample = n < 4096 ? n : 4096, distinct = 0;

	for (size_t i = 0; i < sample; i++) {
		distinct += !seen[p[i]];
		seen[p[i]] = true;
	}
	return distinct > 250;
}

static int
flush_block(am_bundle_writer *w)
{
	uint8_t hdr[BLK_HDR];
	const uint8_t *data = w->blk;
	size_t clen = w->blk_len;
	uint8_t method = 0;
	int rc;

	if (w->blk_count == 0)
		return 0;
	/* Envelopes of random or sealed payloads do not compress: skip the
	 * attempt (it would cost more than the stick write it saves). */
	if (!dense(w->blk, w->blk_len)) {
		uLongf cap = compressBound((uLong) w->blk_len);
		if (cap > w->zcap) {
			uint8_t *nb = realloc(w->zbuf, cap);
			if (nb == NULL)
				return am_error_set(AM_ENOMEM, "out of memory compressing a block");
			w->zbuf = nb;
			w->zcap = cap;
		}
		if (compress2(w->zbuf, &cap, w->blk, (uLong) w->blk_len, Z_DEFAULT_COMPRESSION) == Z_OK &&
		    cap < w->blk_len) {
			data = w->zbuf;
			clen = cap;
			method = 1;
		}
	}
	memcpy(hdr, "BLK1", 4);
	hdr[4] = method;
	put32(hdr + 5, w->blk_count);
	put32(hdr + 9, (uint32_t) w->blk_len);
	put32(hdr + 13, (uint32_t) clen);
	if ((rc = emit(w, hdr, sizeof(hdr), true)) != 0 || (rc = emit(w, data, clen, true)) != 0)
		return rc;
	w->nblocks++;
	w->blk_len = 0;
	w->blk_count = 0;
	return 0;
}

int
am_bundle_writer_add(am_bundle_writer *w, const uint8_t *env, size_t len, const uint8_t id[static AM_ID_BYTES])
{
	int rc;

	if (len == 0 || len > AM_MAX_ENVELOPE)
		return am_error_set(AM_ETOOBIG, "envelope of %zu bytes cannot go in a bundle", len);
	if (w->nids >= AM_BUNDLE_MAX_COUNT)
		return am_error_set(AM_ELIMIT, "a bundle holds at most %u envelopes", AM_BUNDLE_MAX_COUNT);
	if (w->blk_count > 0 && w->blk_len + 4 + len > w->fill && (rc = flush_block(w)) != 0)
		return rc;
	if (w->blk_len + 4 + len > w->blk_cap) {
		size_t cap = w->blk_cap ? w->blk_cap : 65536;
		while (cap < w->blk_len + 4 + len)
			cap *= 2;
		uint8_t *nb = realloc(w->blk, cap);
		if (nb == NULL)
			return am_error_set(AM_ENOMEM, "out of memory for a bundle block");
		w->blk = nb;
		w->blk_cap = cap;
	}
	if (w->nids == w->ids_cap) {
		size_t cap = w->ids_cap ? w->ids_cap * 2 : 1024;
		uint8_t *nb = realloc(w->ids, cap * AM_ID_BYTES);
		if (nb == NULL)
			return am_error_set(AM_ENOMEM, "out of memory for a bundle index");
		w->ids = nb;
		w->ids_cap = cap;
	}
	put32(w->blk + w->blk_len, (uint32_t) len);
	memcpy(w->blk + w->blk_len + 4, env, len);
	w->blk_len += 4 + len;
	w->blk_count++;
	memcpy(w->ids + w->nids * AM_ID_BYTES, id, AM_ID_BYTES);
	w->nids++;
	/* a block of one huge envelope is closed at once */
	if (w->blk_len >= w->fill)
		return flush_block(w);
	return 0;
}

void
am_bundle_writer_set_block(am_bundle_writer *w, size_t bytes)
{
	w->fill = bytes < 1024 ? 1024 : bytes > AM_BUNDLE_BLOCK_MAX ? AM_BUNDLE_BLOCK_MAX : bytes;
}

uint64_t
am_bundle_writer_size(const am_bundle_writer *w, size_t extra_env)
{
	uint64_t open = w->blk_count ? BLK_HDR + w->blk_len : 0;

	return w->emitted + open + (extra_env ? BLK_HDR + 4 + extra_env : 0) + 8 +
	    (uint64_t) (w->nids + (extra_env ? 1 : 0)) * AM_ID_BYTES;
}

uint32_t
am_bundle_writer_count(const am_bundle_writer *w)
{
	return (uint32_t) w->nids;
}

int
am_bundle_writer_finish(am_bundle_writer *w, uint8_t hdr[static AM_BUNDLE_HDR_LEN])
{
	uint8_t idx[8], hash[AM_ID_BYTES];
	uint64_t index_off;
	int rc;

	if ((rc = flush_block(w)) != 0)
		return rc;
	index_off = w->emitted;
	memcpy(idx, "IDX1", 4);
	put32(idx + 4, (uint32_t) w->nids);
	if ((rc = emit(w, idx, sizeof(idx), true)) != 0 ||
	    (w->nids && (rc = emit(w, w->ids, w->nids * AM_ID_BYTES, true)) != 0))
		return rc;
	crypto_generichash_final(&w->hs, hash, sizeof(hash));
	memset(hdr, 0, AM_BUNDLE_HDR_LEN);
	memcpy(hdr, magic, 8);
	hdr[8] = AM_BUNDLE_VERSION;
	hdr[9] = w->has_to ? 1 : 0;
	memcpy(hdr + 10, am_identity_pk(w->id), AM_PK_BYTES);
	put64(hdr + 42, w->created);
	put32(hdr + 50, (uint32_t) w->nids);
	put32(hdr + 54, w->nblocks);
	put64(hdr + 58, index_off);
	put64(hdr + 66, w->emitted);
	memcpy(hdr + 74, hash, AM_ID_BYTES);
	if (w->has_to)
		memcpy(hdr + 106, w->to, AM_PK_BYTES);
	am_identity_sign(w->id, hdr + SIGNED_LEN, hdr, SIGNED_LEN);
	return 0;
}

void
am_bundle_writer_free(am_bundle_writer *w)
{
	if (w == NULL)
		return;
	free(w->blk);
	free(w->ids);
	free(w->zbuf);
	free(w);
}

/* ------------------------------------------------------------ reader --- */

static int
parse_header(am_bundle_info *info, const uint8_t *buf, size_t len)
{
	memset(info, 0, sizeof(*info));
	if (len < AM_BUNDLE_HDR_LEN)
		return am_error_set(AM_ETRUNC, "bundle is %zu bytes, shorter than its %d-byte header", len,
		    AM_BUNDLE_HDR_LEN);
	if (memcmp(buf, magic, 8) != 0)
		return am_error_set(AM_EMALFORMED, "not a bundle (no AMBUNDLE marker)");
	info->version = buf[8];
	if (info->version != AM_BUNDLE_VERSION)
		return am_error_set(AM_EVERSION, "bundle version %u is not supported (this build reads %d)", buf[8],
		    AM_BUNDLE_VERSION);
	info->has_to = buf[9] & 1;
	memcpy(info->writer, buf + 10, AM_PK_BYTES);
	info->created_ms = get64(buf + 42);
	info->count = get32(buf + 50);
	info->nblocks = get32(buf + 54);
	info->index_off = get64(buf + 58);
	info->total_len = get64(buf + 66);
	memcpy(info->hash, buf + 74, AM_ID_BYTES);
	memcpy(info->to, buf + 106, AM_PK_BYTES);
	info->header_ok = true;
	info->sig_ok = crypto_sign_verify_detached(buf + SIGNED_LEN, buf, SIGNED_LEN, info->writer) == 0;
	return 0;
}

struct reader {
	am_bundle_info *info;
	const uint8_t *buf;
	size_t len;
	am_bundle_env_fn on_env;
	am_bundle_damage_fn on_damage;
	void *ctx;
	int first_rc;
	uint8_t *scratch;
	size_t scratch_cap;
};

static void
damage(struct reader *r, int rc, uint64_t off, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
damage(struct reader *r, int rc, uint64_t off, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	r->info->damaged++;
	if (r->first_rc == 0) {
		r->first_rc = rc;
		am_error_set(rc, "offset %llu: %s", (unsigned long long) off, what);
	}
	if (r->on_damage != NULL)
		r->on_damage(r->ctx, off, what);
}

/* Next block or index marker at or after off, or len. */
static size_t
resync(const struct reader *r, size_t off)
{
	for (; off + 4 <= r->len; off++)
		if (r->buf[off] == 'B' || r->buf[off] == 'I')
			if (memcmp(r->buf + off, "BLK1", 4) == 0 || memcmp(r->buf + off, "IDX1", 4) == 0)
				return off;
	return r->len;
}

/* Decode one block at off. Returns its length, or 0 when it is damaged
 * (reported). A non-zero *stop is the callback's wish to stop. */
static size_t
read_block(struct reader *r, size_t off, int *stop)
{
	const uint8_t *h = r->buf + off;
	uint32_t count, ulen, clen;
	const uint8_t *data;
	size_t pos = 0, avail = r->len - off;

	if (avail < BLK_HDR) {
		damage(r, AM_ETRUNC, off, "block header cut off (%zu bytes left)", avail);
		return 0;
	}
	count = get32(h + 5);
	ulen = get32(h + 9);
	clen = get32(h + 13);
	if (h[4] > 1 || ulen > AM_BUNDLE_BLOCK_MAX + AM_MAX_ENVELOPE || count == 0 || count > ulen / 5 + 1 ||
	    (h[4] == 0 && clen != ulen)) {
		damage(r, AM_EMALFORMED, off, "block header is inconsistent (method %u, %u envelopes, %u/%u bytes)",
		    h[4], count, clen, ulen);
		return 0;
	}
	if (clen > avail - BLK_HDR) {
		damage(r, AM_ETRUNC, off, "block of %u bytes cut off after %zu", clen, avail - BLK_HDR);
		return 0;
	}
	data = h + BLK_HDR;
	if (h[4] == 1) {
		uLongf out = ulen;
		if (ulen > r->scratch_cap) {
			uint8_t *nb = realloc(r->scratch, ulen);
			if (nb == NULL) {
				damage(r, AM_ENOMEM, off, "out of memory for a %u-byte block", ulen);
				return 0;
			}
			r->scratch = nb;
			r->scratch_cap = ulen;
		}
		if (uncompress(r->scratch, &out, data, clen) != Z_OK || out != ulen) {
			damage(r, AM_EMALFORMED, off, "block does not decompress (zlib data damaged)");
			return 0;
		}
		data = r->scratch;
	}
	/* records: check the whole framing before handing any out, so a
	 * damaged stored block is reported as one */
	for (uint32_t i = 0; i < count; i++) {
		uint32_t n;
		if (ulen - pos < 4 || (n = get32(data + pos)) == 0 || n > AM_MAX_ENVELOPE || n > ulen - pos - 4) {
			damage(r, AM_EMALFORMED, off, "record %u of the block is damaged", i + 1);
			return 0;
		}
		pos += 4 + n;
	}
	if (pos != ulen) {
		damage(r, AM_EMALFORMED, off, "%zu stray bytes after the block's records", (size_t) ulen - pos);
		return 0;
	}
	pos = 0;
	for (uint32_t i = 0; i < count && *stop == 0; i++) {
		uint32_t n = get32(data + pos);
		r->info->found++;
		if (r->on_env != NULL)
			*stop = r->on_env(r->ctx, data + pos + 4, n, off);
		pos += 4 + n;
	}
	return BLK_HDR + clen;
}

int
am_bundle_read(am_bundle_info *info, const uint8_t *buf, size_t len, am_bundle_env_fn on_env,
    am_bundle_damage_fn on_damage, void *ctx)
{
	struct reader r = {info, buf, len, on_env, on_damage, ctx, 0, NULL, 0};
	size_t off = AM_BUNDLE_HDR_LEN;
	uint32_t blocks = 0;
	int stop = 0, rc;

	rc = parse_header(info, buf, len);
	if (rc != 0) {
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		info->damaged++;
		r.first_rc = rc;
		if (on_damage != NULL)
			on_damage(ctx, 0, why);
		am_error_set(rc, "offset 0: %s", why);
		if (rc == AM_EVERSION)
			return rc; /* another format: do not guess at its blocks */
		off = resync(&r, 0);
	} else {
		if (!info->sig_ok)
			damage(&r, AM_EBADSIG, 0, "header signature does not verify: writer unknown or header altered");
		if (info->total_len != len)
			damage(&r, info->total_len > len ? AM_ETRUNC : AM_EMALFORMED, len < info->total_len ? len : info->total_len,
			    "file is %zu bytes, the header says %llu", len, (unsigned long long) info->total_len);
	}
	/* The contents hash is taken in the same pass as the blocks, so each
	 * byte of a large bundle is touched once, in order (a caller that maps
	 * the file can drop what lies behind the current offset). */
	crypto_generichash_state hs;
	size_t hashed = AM_BUNDLE_HDR_LEN < len ? AM_BUNDLE_HDR_LEN : len;
	crypto_generichash_init(&hs, NULL, 0, AM_ID_BYTES);
#define HASH_TO(upto)                                                                  \
	do {                                                                           \
		size_t u_ = (upto) < len ? (upto) : len;                               \
		if (u_ > hashed) {                                                     \
			crypto_generichash_update(&hs, buf + hashed, u_ - hashed);    \
			hashed = u_;                                                   \
		}                                                                      \
	} while (0)
	while (off < len && stop == 0) {
		HASH_TO(off);
		if (len - off >= 4 && memcmp(buf + off, "BLK1", 4) == 0) {
			/* hash the block before its records go out (clamped; a
			 * lying length is caught by read_block) */
			size_t clen = len - off >= BLK_HDR ? get32(buf + off + 13) : 0;
			HASH_TO(clen < len - off ? off + BLK_HDR + clen : len);
			size_t used = read_block(&r, off, &stop);
			if (used == 0) {
				off = resync(&r, off + 1);
				continue;
			}
			blocks++;
			off += used;
		} else if (len - off >= 4 && memcmp(buf + off, "IDX1", 4) == 0) {
			uint64_t n = len - off >= 8 ? get32(buf + off + 4) : 0;
			if (len - off < 8 || n * AM_ID_BYTES > len - off - 8) {
				damage(&r, AM_ETRUNC, off, "id index cut off");
				break;
			}
			off += 8 + n * AM_ID_BYTES;
			if (off != len)
				damage(&r, AM_EMALFORMED, off, "%zu bytes after the id index", len - off);
			break;
		} else {
			size_t next = resync(&r, off);
			damage(&r, next == len ? AM_ETRUNC : AM_EMALFORMED, off, "%zu unreadable bytes", next - off);
			off = next;
		}
	}
	HASH_TO(len);
#undef HASH_TO
	if (info->header_ok && stop == 0) {
		uint8_t hash[AM_ID_BYTES];
		crypto_generichash_final(&hs, hash, sizeof(hash));
		info->hash_ok = sodium_memcmp(hash, info->hash, AM_ID_BYTES) == 0;
		if (!info->hash_ok && info->total_len == len)
			damage(&r, AM_EBADSIG, AM_BUNDLE_HDR_LEN, "contents do not match the signed hash (altered or reordered)");
	}
	if (stop == 0 && info->header_ok && info->found != info->count && r.first_rc == 0)
		damage(&r, AM_EMALFORMED, len, "found %u envelopes, the header says %u", info->found, info->count);
	free(r.scratch);
	if (stop != 0)
		return stop;
	if (r.first_rc != 0)
		return am_error_set(r.first_rc, "%s", am_error_detail());
	(void) blocks;
	return 0;
}

int
am_bundle_read_index(am_bundle_info *info, const uint8_t *buf, size_t len, const uint8_t **ids, size_t *n)
{
	int rc = parse_header(info, buf, len);
	uint64_t off;

	*ids = NULL;
	*n = 0;
	if (rc != 0)
		return rc;
	if (!info->sig_ok)
		return am_error_set(AM_EBADSIG, "bundle header signature does not verify");
	off = info->index_off;
	if (off < AM_BUNDLE_HDR_LEN || off > len || len - off < 8 || memcmp(buf + off, "IDX1", 4) != 0)
		return am_error_set(AM_ETRUNC, "bundle id index missing at offset %llu", (unsigned long long) off);
	if ((uint64_t) get32(buf + off + 4) * AM_ID_BYTES > len - off - 8 || get32(buf + off + 4) != info->count)
		return am_error_set(AM_EMALFORMED, "bundle id index is inconsistent");
	*ids = buf + off + 8;
	*n = get32(buf + off + 4);
	return 0;
}
