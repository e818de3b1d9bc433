/*
 * reconcile.c — range-based set reconciliation over (created, id).
 *
 * Message:  version(1) then ranges until the end; each range is
 *   bound:   varint t (0: infinity, else created = previous bound's + t - 1)
 *            u8 prefix length (0..32) + that many bytes of the id
 *   mode:    u8: 0 SKIP | 1 FINGERPRINT + 16 bytes | 2 IDLIST | 3 NEEDS,
 *            lists as varint count + count * 32-byte ids
 * Ranges are contiguous: each starts where the previous one ended, the
 * first at (0, 0...). A message that stops short of infinity leaves the
 * rest as SKIP. Fingerprint = BLAKE2b-128 of (the ids summed as 256-bit
 * little-endian integers mod 2^256, count as u64 little-endian).
 */
#include "am_sync.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum { M_SKIP = 0, M_FP = 1, M_IDLIST = 2, M_NEEDS = 3 };

struct bound {
	uint64_t ts; /* UINT64_MAX: infinity */
	uint8_t id[AM_ID_BYTES];
};

struct idvec {
	uint8_t *v;
	size_t n, cap;
};

struct am_recon {
	const am_recon_item *items;
	size_t n;
	struct idvec peer_lacks, we_lack;
};

struct buf {
	uint8_t *p;
	size_t len, cap;
	int err;
	struct bound last;        /* last bound written (for deltas) */
	struct bound before_last; /* the bound before it (to widen a SKIP) */
	int last_mode;            /* -1: nothing written yet */
	size_t last_start;        /* where the last range began in p */
	bool asks;                /* holds a FINGERPRINT or IDLIST */
};

static int
vec_push(struct idvec *v, const uint8_t *id)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		uint8_t *nv = realloc(v->v, cap * AM_ID_BYTES);
		if (nv == NULL)
			return am_error_set(AM_ENOMEM, "out of memory reconciling");
		v->v = nv;
		v->cap = cap;
	}
	memcpy(v->v + v->n++ * AM_ID_BYTES, id, AM_ID_BYTES);
	return 0;
}

static int
cmp_item_bound(const am_recon_item *it, const struct bound *b)
{
	if (b->ts == UINT64_MAX)
		return -1;
	if (it->created_ms != b->ts)
		return it->created_ms < b->ts ? -1 : 1;
	return memcmp(it->id, b->id, AM_ID_BYTES);
}

/* first index whose item is >= b */
static size_t
lower(const am_recon *r, const struct bound *b)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_item_bound(&r->items[mid], b) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
fingerprint(uint8_t out[16], const am_recon_item *items, size_t n)
{
	uint8_t acc[AM_ID_BYTES + 8] = {0};

	for (size_t i = 0; i < n; i++) {
		unsigned carry = 0;
		for (int b = 0; b < AM_ID_BYTES; b++) {
			unsigned s = acc[b] + items[i].id[b] + carry;
			acc[b] = (uint8_t) s;
			carry = s >> 8;
		}
	}
	for (int b = 0; b < 8; b++)
		acc[AM_ID_BYTES + b] = (uint8_t) ((uint64_t) n >> (8 * b));
	crypto_generichash(out, 16, acc, sizeof(acc), NULL, 0);
}

/* ------------------------------------------------------------ writing --- */

static void
put(struct buf *b, const void *p, size_t n)
{
	if (b->err)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		if (np == NULL) {
			b->err = AM_ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t) (v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	put(b, tmp, n);
}

static void
put_bound(struct buf *b, const struct bound *bd)
{
	uint8_t plen = AM_ID_BYTES;

	if (bd->ts == UINT64_MAX) {
		put_varint(b, 0);
		plen = 0;
	} else {
		put_varint(b, bd->ts - b->last.ts + 1);
		/* shortest prefix that keeps the bound above what lies below
		 * it: trailing zero bytes need not be sent */
		while (plen > 0 && bd->id[plen - 1] == 0)
			plen--;
	}
	put(b, &plen, 1);
	put(b, bd->id, plen);
	b->last = *bd; /* nothing follows infinity, so no delta from it */
}

/* Emit one range ending at ub. Consecutive SKIPs merge into one. */
static void
emit(struct buf *b, const struct bound *ub, int mode, const void *payload, size_t n_ids)
{
	uint8_t m = (uint8_t) mode;

	if (mode == M_SKIP && b->last_mode == M_SKIP) {
		/* widen the previous SKIP instead of adding another */
		b->len = b->last_start;
		b->last = b->before_last;
	} else {
		b->before_last = b->last;
	}
	b->last_start = b->len;
	put_bound(b, ub);
	put(b, &m, 1);
	if (mode == M_FP) {
		put(b, payload, 16);
	} else if (mode == M_IDLIST || mode == M_NEEDS) {
		put_varint(b, n_ids);
		put(b, payload, n_ids * AM_ID_BYTES);
	}
	b->last_mode = mode;
	if (mode == M_FP || mode == M_IDLIST)
		b->asks = true;
}

static void
buf_init(struct buf *b)
{
	uint8_t v = AM_RECON_VERSION;

	memset(b, 0, sizeof(*b));
	b->last_mode = -1;
	put(b, &v, 1);
}

/* A message that ends in SKIP need not say so. */
static void
trim_tail(struct buf *b)
{
	if (b->last_mode == M_SKIP)
		b->len = b->last_start;
}

/* The lowest bound above items[k-1] and at or below items[k]. */
static void
between(struct bound *out, const am_recon_item *prev, const am_recon_item *next)
{
	size_t l = 0;

	memset(out, 0, sizeof(*out));
	out->ts = next->created_ms;
	if (prev->created_ms != next->created_ms) {
		return; /* (ts, 0...) already separates them */
	}
	while (l < AM_ID_BYTES && prev->id[l] == next->id[l])
		l++;
	memcpy(out->id, next->id, l + 1 <= AM_ID_BYTES ? l + 1 : AM_ID_BYTES);
}

static void
emit_ids(struct buf *b, const struct bound *ub, int mode, const am_recon_item *items, size_t n)
{
	uint8_t *ids = malloc(n ? n * AM_ID_BYTES : 1);

	if (ids == NULL) {
		b->err = AM_ENOMEM;
		return;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(ids + i * AM_ID_BYTES, items[i].id, AM_ID_BYTES);
	emit(b, ub, mode, ids, n);
	free(ids);
}

/* Our side of a range [i0, i1) ending at ub, after a mismatch: its ids
 * when few, else AM_RECON_BRANCH fingerprinted sub-ranges. */
static void
split(struct buf *b, const am_recon *r, size_t i0, size_t i1, const struct bound *ub)
{
	size_t n = i1 - i0, prev = i0;
	uint8_t fp[16];

	if (n <= AM_RECON_IDLIST_MAX) {
		emit_ids(b, ub, M_IDLIST, r->items + i0, n);
		return;
	}
	for (size_t k = 1; k <= AM_RECON_BRANCH; k++) {
		size_t at = k == AM_RECON_BRANCH ? i1 : i0 + n * k / AM_RECON_BRANCH;
		struct bound sb;
		if (at == prev)
			continue;
		if (k == AM_RECON_BRANCH)
			sb = *ub;
		else
			between(&sb, &r->items[at - 1], &r->items[at]);
		fingerprint(fp, r->items + prev, at - prev);
		emit(b, &sb, M_FP, fp, 0);
		prev = at;
	}
}

/* ------------------------------------------------------------ the API --- */

int
am_recon_new(am_recon **out, const am_recon_item *items, size_t n)
{
	am_recon *r;

	*out = NULL;
	for (size_t i = 1; i < n; i++) {
		const am_recon_item *a = &items[i - 1], *b = &items[i];
		if (a->created_ms > b->created_ms ||
		    (a->created_ms == b->created_ms && memcmp(a->id, b->id, AM_ID_BYTES) >= 0))
			return am_error_set(AM_EINVAL, "reconciliation items must be sorted by (created, id) and distinct");
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory reconciling");
	/* an empty set is never a NULL array: offsets into it stay defined */
	static const am_recon_item none[1];
	r->items = items != NULL ? items : none;
	r->n = n;
	*out = r;
	return 0;
}

void
am_recon_free(am_recon *r)
{
	if (r == NULL)
		return;
	free(r->peer_lacks.v);
	free(r->we_lack.v);
	free(r);
}

int
am_recon_initiate(am_recon *r, uint8_t **out, size_t *out_len)
{
	struct buf b;
	struct bound inf = {UINT64_MAX, {0}};

	buf_init(&b);
	split(&b, r, 0, r->n, &inf);
	*out = b.p;
	*out_len = b.len;
	if (b.err) {
		free(b.p);
		*out = NULL;
		return am_error_set(b.err, "out of memory reconciling");
	}
	return 0;
}

/* ------------------------------------------------------------ reading --- */

struct rd {
	const uint8_t *p;
	size_t len, off;
};

static int
get_varint(struct rd *d, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t c;
		if (d->off >= d->len)
			return am_error_set(AM_ETRUNC, "reconciliation message cut inside a number at %zu", d->off);
		c = d->p[d->off++];
		*v |= (uint64_t) (c & 0x7f) << shift;
		if (!(c & 0x80))
			return 0;
	}
	return am_error_set(AM_EMALFORMED, "reconciliation message: number too long at %zu", d->off);
}

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, AM_ID_BYTES);
}

/* Compare the peer's ids in a range with ours: what each side lacks. */
static int
diff_range(am_recon *r, const uint8_t *theirs, size_t nt, size_t i0, size_t i1, struct idvec *we_lack_here)
{
	size_t nm = i1 - i0, a = 0, b = 0;
	uint8_t *t = malloc(nt ? nt * AM_ID_BYTES : 1), *m = malloc(nm ? nm * AM_ID_BYTES : 1);
	int rc = 0;

	if (t == NULL || m == NULL) {
		free(t);
		free(m);
		return am_error_set(AM_ENOMEM, "out of memory reconciling");
	}
	memcpy(t, theirs, nt * AM_ID_BYTES);
	for (size_t i = 0; i < nm; i++)
		memcpy(m + i * AM_ID_BYTES, r->items[i0 + i].id, AM_ID_BYTES);
	qsort(t, nt, AM_ID_BYTES, cmp_id);
	qsort(m, nm, AM_ID_BYTES, cmp_id);
	while (rc == 0 && (a < nt || b < nm)) {
		int c = a == nt ? 1 : b == nm ? -1 : memcmp(t + a * AM_ID_BYTES, m + b * AM_ID_BYTES, AM_ID_BYTES);
		if (c < 0) {
			/* theirs only (a repeated id in their list counts once) */
			if (a == 0 || memcmp(t + a * AM_ID_BYTES, t + (a - 1) * AM_ID_BYTES, AM_ID_BYTES) != 0) {
				if ((rc = vec_push(we_lack_here, t + a * AM_ID_BYTES)) == 0)
					rc = vec_push(&r->we_lack, t + a * AM_ID_BYTES);
			}
			a++;
		} else if (c > 0) {
			rc = vec_push(&r->peer_lacks, m + b * AM_ID_BYTES);
			b++;
		} else {
			a++;
			b++;
		}
	}
	free(t);
	free(m);
	return rc;
}

int
am_recon_reply(am_recon *r, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, bool *done)
{
	struct rd d = {in, in_len, 1};
	struct bound lb = {0, {0}}, ub;
	struct buf b;
	size_t ranges = 0, keep_peer = r->peer_lacks.n, keep_we = r->we_lack.n;
	bool asked = false;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	*done = false;
	if (in_len > AM_RECON_MAX_MSG)
		return am_error_set(AM_ELIMIT, "reconciliation message of %zu bytes, limit %u", in_len, AM_RECON_MAX_MSG);
	if (in_len < 1)
		return am_error_set(AM_ETRUNC, "empty reconciliation message");
	if (in[0] != AM_RECON_VERSION)
		return am_error_set(AM_EVERSION, "reconciliation version %u is not supported (this build speaks %d)", in[0],
		    AM_RECON_VERSION);
	buf_init(&b);
	while (d.off < d.len && lb.ts != UINT64_MAX) {
		uint64_t t;
		uint8_t plen, mode;
		size_t i0, i1;
		if (++ranges > AM_RECON_MAX_RANGES) {
			rc = am_error_set(AM_ELIMIT, "more than %d ranges in one reconciliation message", AM_RECON_MAX_RANGES);
			goto fail;
		}
		if ((rc = get_varint(&d, &t)) != 0)
			goto fail;
		memset(&ub, 0, sizeof(ub));
		if (t == 0) {
			ub.ts = UINT64_MAX;
		} else if (t - 1 > UINT64_MAX - 1 - lb.ts) {
			rc = am_error_set(AM_EMALFORMED, "reconciliation bound overflows at %zu", d.off);
			goto fail;
		} else {
			ub.ts = lb.ts + t - 1;
		}
		if (d.off + 1 > d.len || (plen = d.p[d.off]) > AM_ID_BYTES || d.len - d.off - 1 < plen) {
			rc = am_error_set(d.off + 1 > d.len ? AM_ETRUNC : AM_EMALFORMED, "bad id prefix at %zu", d.off);
			goto fail;
		}
		memcpy(ub.id, d.p + d.off + 1, plen);
		d.off += 1 + plen;
		if (ub.ts != UINT64_MAX && (ub.ts < lb.ts || (ub.ts == lb.ts && memcmp(ub.id, lb.id, AM_ID_BYTES) <= 0)) &&
		    ranges > 1) {
			rc = am_error_set(AM_EMALFORMED, "reconciliation ranges out of order at %zu", d.off);
			goto fail;
		}
		if (d.off >= d.len) {
			rc = am_error_set(AM_ETRUNC, "reconciliation message cut before a mode at %zu", d.off);
			goto fail;
		}
		mode = d.p[d.off++];
		i0 = lower(r, &lb);
		i1 = lower(r, &ub);
		if (i1 < i0)
			i1 = i0;
		switch (mode) {
		case M_SKIP:
			emit(&b, &ub, M_SKIP, NULL, 0);
			break;
		case M_FP: {
			uint8_t mine[16];
			if (d.len - d.off < 16) {
				rc = am_error_set(AM_ETRUNC, "fingerprint cut at %zu", d.off);
				goto fail;
			}
			asked = true;
			fingerprint(mine, r->items + i0, i1 - i0);
			if (sodium_memcmp(mine, d.p + d.off, 16) == 0)
				emit(&b, &ub, M_SKIP, NULL, 0);
			else
				split(&b, r, i0, i1, &ub);
			d.off += 16;
			break;
		}
		case M_IDLIST:
		case M_NEEDS: {
			uint64_t n;
			if ((rc = get_varint(&d, &n)) != 0)
				goto fail;
			if (n > (d.len - d.off) / AM_ID_BYTES) {
				rc = am_error_set(AM_ETRUNC, "id list of %llu cut at %zu", (unsigned long long) n, d.off);
				goto fail;
			}
			if (mode == M_IDLIST) {
				struct idvec here = {0};
				asked = true;
				if ((rc = diff_range(r, d.p + d.off, (size_t) n, i0, i1, &here)) != 0) {
					free(here.v);
					goto fail;
				}
				if (here.n > 0)
					emit(&b, &ub, M_NEEDS, here.v, here.n);
				else
					emit(&b, &ub, M_SKIP, NULL, 0);
				free(here.v);
			} else {
				/* the peer lacks these; believe it only for ids we hold here */
				for (uint64_t k = 0; k < n && rc == 0; k++) {
					const uint8_t *id = d.p + d.off + k * AM_ID_BYTES;
					for (size_t i = i0; i < i1; i++)
						if (memcmp(r->items[i].id, id, AM_ID_BYTES) == 0) {
							rc = vec_push(&r->peer_lacks, id);
							break;
						}
				}
				if (rc != 0)
					goto fail;
				emit(&b, &ub, M_SKIP, NULL, 0);
			}
			d.off += (size_t) n * AM_ID_BYTES;
			break;
		}
		default:
			rc = am_error_set(AM_EMALFORMED, "unknown reconciliation mode %u at %zu", mode, d.off - 1);
			goto fail;
		}
		lb = ub;
	}
	if (d.off != d.len) {
		rc = am_error_set(AM_EMALFORMED, "%zu bytes after the last range", d.len - d.off);
		goto fail;
	}
	if (b.err) {
		rc = am_error_set(b.err, "out of memory reconciling");
		goto fail;
	}
	*done = !b.asks;
	if (!asked) {
		/* only SKIPs and NEEDS came: nothing to answer */
		free(b.p);
		return 0;
	}
	trim_tail(&b);
	*out = b.p;
	*out_len = b.len;
	return 0;
fail:
	/* a bad message changes nothing */
	r->peer_lacks.n = keep_peer;
	r->we_lack.n = keep_we;
	free(b.p);
	return rc;
}

const uint8_t *
am_recon_peer_lacks(const am_recon *r, size_t *n)
{
	*n = r->peer_lacks.n;
	return r->peer_lacks.v;
}

const uint8_t *
am_recon_we_lack(const am_recon *r, size_t *n)
{
	*n = r->we_lack.n;
	return r->we_lack.v;
}
