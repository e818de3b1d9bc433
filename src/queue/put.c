/*
 * put.c — accepting envelopes: dedup before verification, verification
 * outside the write lock, one write transaction per batch (group commit),
 * and the inbox admission rule.
 *
 * Each accepted envelope is reduced to a `pending` record (its bytes, id,
 * metadata and where it goes) as soon as it has been verified, so a batch
 * of thousands holds little more than the bytes the caller already has.
 */
#include "queue_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Who we are, read once per batch. */
struct self_view {
	bool has_self;
	uint8_t pk[AM_PK_BYTES];
	am_position pos;
	char groups[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
	size_t ngroups;
};


static int
load_self(am_queue *q, struct self_view *s)
{
	int rc = am_queue_get_self(q, s->pk);

	s->has_self = rc == 0;
	if (rc != 0 && rc != AM_ENOTFOUND)
		return rc;
	if ((rc = am_queue_get_position(q, &s->pos)) != 0)
		return rc;
	return am_queue_get_groups(q, s->groups, &s->ngroups);
}

/* An envelope enters the local inbox when it is meant for this node and
 * its geo target (if any) matches where the node is. Receipts are protocol
 * traffic, not messages for a consumer. */
static bool
admits(const struct self_view *s, const am_body *b)
{
	bool mine = false;

	/* protocol records are acted on by the node, not handed to its apps */
	if (!s->has_self || strcmp(b->type, "receipt") == 0 || strcmp(b->type, "revocation") == 0)
		return false;
	if (memcmp(b->src, s->pk, AM_PK_BYTES) == 0)
		return false;
	switch (b->dest_kind) {
	case AM_DEST_NODE:
		mine = memcmp(b->dest_node, s->pk, AM_PK_BYTES) == 0;
		break;
	case AM_DEST_GROUP:
		for (size_t i = 0; i < s->ngroups && !mine; i++)
			mine = strcmp(s->groups[i], b->dest_group) == 0;
		break;
	case AM_DEST_BROADCAST:
		mine = true;
		break;
	}
	return mine && am_geo_matches(&b->geo, &s->pos);
}

/* Carry onward unless this node is the one final recipient or no hops
 * remain. */
static bool
carries(const struct self_view *s, const am_envelope *e)
{
	if (e->hops_left == 0)
		return false;
	return !(s->has_self && e->body.dest_kind == AM_DEST_NODE &&
	    memcmp(e->body.dest_node, s->pk, AM_PK_BYTES) == 0);
}

static void
pending_from(struct pending *p, const struct self_view *s, const am_envelope *e, const uint8_t *raw,
    uint64_t now_ms)
{
	bool out = carries(s, e), local = s->has_self && memcmp(e->body.src, s->pk, AM_PK_BYTES) == 0;

	p->raw = raw;
	p->len = e->raw_len;
	memcpy(p->id, e->id, AM_ID_BYTES);
	memset(&p->m, 0, sizeof(p->m));
	p->m.created_ms = e->body.created_ms;
	p->m.expires_ms = e->body.expires_ms;
	p->m.received_ms = now_ms;
	p->m.size = (uint32_t) e->raw_len;
	p->m.priority = e->body.priority;
	p->m.hops_left = e->hops_left;
	p->m.dest_kind = (uint8_t) e->body.dest_kind;
	p->inbox = admits(s, &e->body);
	p->m.flags = (out ? AM_QF_OUTBOX : 0) | (p->inbox ? AM_QF_INBOX : 0) | (local ? AM_QF_LOCAL : 0);
	p->nrids = 0;
	if (strcmp(e->body.type, "receipt") == 0) {
		/* a receipt lists the delivered ids in its payload (32 bytes
		 * each), or names one in ref */
		if (!e->body.compressed && !e->body.sealed && e->body.payload_len > 0 &&
		    e->body.payload_len % AM_ID_BYTES == 0) {
			p->rids = e->body.payload; /* into raw: borrowed like it */
			p->nrids = e->body.payload_len / AM_ID_BYTES;
		} else if (e->body.has_ref) {
			p->rids = p->ref;
			p->nrids = 1;
		}
	}
	p->receipt = p->nrids > 0;
	p->nrevs = 0;
	if (strcmp(e->body.type, "revocation") == 0 && !e->body.compressed && !e->body.sealed &&
	    e->body.payload_len > 0 && e->body.payload_len % AM_REVOCATION_RECORD == 0) {
		p->revs = e->body.payload;
		p->nrevs = e->body.payload_len / AM_REVOCATION_RECORD;
	}
	/* a receipt is owed for what is to this node, and for a group's
	 * message it takes as a member (each member answers for itself) */
	p->for_me = !p->receipt && s->has_self && memcmp(e->body.src, s->pk, AM_PK_BYTES) != 0 &&
	    ((e->body.dest_kind == AM_DEST_NODE && memcmp(e->body.dest_node, s->pk, AM_PK_BYTES) == 0) ||
	        (e->body.dest_kind == AM_DEST_GROUP && p->inbox && strcmp(e->body.type, "revocation") != 0));
	memcpy(p->ref, e->body.ref, AM_ID_BYTES);
	memcpy(p->src, e->body.src, AM_PK_BYTES);
	memcpy(p->dest_node, e->body.dest_node, AM_PK_BYTES);
}

/* One id a receipt covers: remember the receipt under (id, signer), so
 * a receipt from anyone else can neither stand in for the destination's
 * nor keep it out; drop our copy of the original when the receipt is
 * signed by the original's one destination. A receipt for an original
 * held here, to one node, signed by another key is counted in *foreign. */
static int
apply_one_receipt(am_queue *q, MDB_txn *txn, const struct pending *p, const uint8_t *rid, uint64_t now_ms,
    bool *foreign)
{
	uint8_t key[AM_ID_BYTES + AM_PK_BYTES], rec[9], tkey[TIME_KEY], id[AM_ID_BYTES];
	MDB_val k = {sizeof(key), key}, v, ev;
	am_queue_meta m;
	am_envelope orig;
	int mrc;

	memcpy(id, rid, AM_ID_BYTES); /* rid may point into the caller's bytes */
	memcpy(key, id, AM_ID_BYTES);
	memcpy(key + AM_ID_BYTES, p->src, AM_PK_BYTES);
	am_q_put_be64(rec, p->m.expires_ms);
	rec[8] = 0;
	/* the original, when held: is the signer its destination? */
	bool held = false, match = false;
	k.mv_size = AM_ID_BYTES;
	k.mv_data = id;
	bool have_meta = mdb_get(txn, q->meta, &k, &v) == 0 && v.mv_size == META_BYTES;
	if (have_meta)
		am_q_meta_decode(&m, v.mv_data);
	if (have_meta && m.dest_kind != AM_DEST_NODE) {
		held = match = true; /* a group or area member answers for itself */
	} else if (have_meta && (p->m.flags & AM_QF_LOCAL) && (m.flags & AM_QF_INBOX)) {
		/* our own receipt for what was delivered here (to us): no need
		 * to read it, and a receipt lists thousands after a big sync */
		held = match = true;
	} else if (have_meta) {
		am_q_time_key(tkey, m.created_ms, id);
		MDB_val tk = {TIME_KEY, tkey};
		if (mdb_get(txn, q->envs, &tk, &ev) == 0) {
			/* The original was verified on entry; this re-reads its
			 * destination. Copy first: the view must not outlive the
			 * transaction's page. */
			uint8_t *copy = malloc(ev.mv_size);
			if (copy == NULL)
				return ENOMEM;
			memcpy(copy, ev.mv_data, ev.mv_size);
			if (am_envelope_decode_view(&orig, copy, ev.mv_size, id) == 0) {
				held = true;
				match = memcmp(orig.body.dest_node, p->src, AM_PK_BYTES) == 0;
				*foreign |= !match;
			}
			free(copy);
		}
	}
	rec[8] = held && match ? 1 : 0; /* checked against the original here */
	k.mv_size = sizeof(key);
	k.mv_data = key;
	v.mv_size = sizeof(rec);
	v.mv_data = rec;
	if ((mrc = mdb_put(txn, q->rcpts, &k, &v, held && match ? 0 : MDB_NOOVERWRITE)) != 0 && mrc != MDB_KEYEXIST)
		return mrc;
	/* our own receipt: the copy here is the delivered one, kept until
	 * its consumer acks it; groups and broadcasts live until they expire */
	if ((p->m.flags & AM_QF_LOCAL) || !held || !match || m.dest_kind != AM_DEST_NODE)
		return 0;
	mrc = am_q_remove(q, txn, id, AM_TOMB_DELIVERED, m.expires_ms, now_ms);
	return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int
apply_receipt(am_queue *q, MDB_txn *txn, const struct pending *p, uint64_t now_ms, bool *foreign)
{
	int mrc;

	for (size_t i = 0; i < p->nrids; i++)
		if ((mrc = apply_one_receipt(q, txn, p, p->rids + i * AM_ID_BYTES, now_ms, foreign)) != 0)
			return mrc;
	return 0;
}

/* A revocation names what it revokes; whether its signer may is the
 * reader's question (am_queue_revoked hands out the signer). */
static int
apply_revocation(am_queue *q, MDB_txn *txn, const struct pending *p)
{
	for (size_t i = 0; i < p->nrevs; i++) {
		uint8_t key[2 * AM_PK_BYTES];
		MDB_val k = {sizeof(key), key}, v = {AM_ID_BYTES, (void *) p->id};
		const uint8_t *rec = p->revs + i * AM_REVOCATION_RECORD;
		int mrc;
		if (rec[0] != AM_REVOKE_TOKEN && rec[0] != AM_REVOKE_KEY)
			continue; /* a kind from a later version */
		memcpy(key, rec + 1, AM_PK_BYTES);
		memcpy(key + AM_PK_BYTES, p->src, AM_PK_BYTES);
		if ((mrc = mdb_put(txn, q->revoked, &k, &v, 0)) != 0)
			return mrc;
	}
	return 0;
}

/* An original whose receipt, signed by its destination, is already here
 * is not stored again. (Before version 0.2 the table was keyed by id
 * alone with the signer in the value; such entries still count.) */
static bool
receipt_seen(am_queue *q, MDB_txn *txn, const struct pending *p)
{
	uint8_t key[AM_ID_BYTES + AM_PK_BYTES];
	MDB_val k = {sizeof(key), key}, v;

	if (p->m.dest_kind != AM_DEST_NODE)
		return false;
	memcpy(key, p->id, AM_ID_BYTES);
	memcpy(key + AM_ID_BYTES, p->dest_node, AM_PK_BYTES);
	if (mdb_get(txn, q->rcpts, &k, &v) == 0)
		return true;
	k.mv_size = AM_ID_BYTES;
	return mdb_get(txn, q->rcpts, &k, &v) == 0 && v.mv_size >= AM_PK_BYTES &&
	    memcmp(v.mv_data, p->dest_node, AM_PK_BYTES) == 0;
}

static void
refuse(am_queue_result *r, int rc, const char *why)
{
	r->rc = rc;
	r->inboxed = false;
	r->receipt_due = false;
	snprintf(r->detail, sizeof(r->detail), "%s", why);
}

/* One cursor per table for a whole batch: LMDB skips the root-to-leaf
 * search when the next key lands on the page the cursor is already on,
 * which sorted inserts make the common case. */
enum { C_META, C_ENVS, C_BYTIME, C_EXPIRY, C_OUTBOX, C_INBOX, C_COUNT };

struct cursors {
	MDB_cursor *c[C_COUNT];
};

static int
cursors_open(struct cursors *cs, am_queue *q, MDB_txn *txn)
{
	MDB_dbi dbis[C_COUNT] = {q->meta, q->envs, q->bytime, q->expiry, q->outbox, q->inbox};
	int mrc;

	memset(cs, 0, sizeof(*cs));
	for (int i = 0; i < C_COUNT; i++)
		if ((mrc = mdb_cursor_open(txn, dbis[i], &cs->c[i])) != 0)
			return mrc;
	return 0;
}

static void
cursors_close(struct cursors *cs)
{
	for (int i = 0; i < C_COUNT; i++)
		if (cs->c[i] != NULL)
			mdb_cursor_close(cs->c[i]);
}

static int
store_one(struct cursors *cs, const struct pending *p)
{
	uint8_t mbuf[META_BYTES], okey[OUTBOX_KEY], tkey[TIME_KEY], seqb[8];
	MDB_val k = {AM_ID_BYTES, (void *) p->id}, v = {META_BYTES, mbuf}, empty = {0, ""};
	int mrc;

	am_q_meta_encode(mbuf, &p->m);
	/* meta is the id index: NOOVERWRITE makes it the dedup point */
	if ((mrc = mdb_cursor_put(cs->c[C_META], &k, &v, MDB_NOOVERWRITE)) != 0)
		return mrc;
	am_q_time_key(tkey, p->m.created_ms, p->id);
	k.mv_size = TIME_KEY;
	k.mv_data = tkey;
	v.mv_size = p->len;
	v.mv_data = (void *) p->raw;
	if ((mrc = mdb_cursor_put(cs->c[C_ENVS], &k, &v, 0)) != 0)
		return mrc;
	if ((mrc = mdb_cursor_put(cs->c[C_BYTIME], &k, &empty, 0)) != 0)
		return mrc;
	am_q_time_key(tkey, p->m.expires_ms, p->id);
	if ((mrc = mdb_cursor_put(cs->c[C_EXPIRY], &k, &empty, 0)) != 0)
		return mrc;
	if (p->m.flags & AM_QF_OUTBOX) {
		am_q_outbox_key(okey, &p->m, p->id);
		k.mv_size = OUTBOX_KEY;
		k.mv_data = okey;
		if ((mrc = mdb_cursor_put(cs->c[C_OUTBOX], &k, &empty, 0)) != 0)
			return mrc;
	}
	if (p->m.inbox_seq) {
		am_q_put_be64(seqb, p->m.inbox_seq);
		k.mv_size = 8;
		k.mv_data = seqb;
		v.mv_size = AM_ID_BYTES;
		v.mv_data = (void *) p->id;
		if ((mrc = mdb_cursor_put(cs->c[C_INBOX], &k, &v, 0)) != 0)
			return mrc;
	}
	return 0;
}

static int
by_created(const void *a, const void *b)
{
	const struct pending *x = *(const struct pending *const *) a, *y = *(const struct pending *const *) b;

	if (x->m.created_ms != y->m.created_ms)
		return x->m.created_ms < y->m.created_ms ? -1 : 1;
	return x < y ? -1 : x > y; /* stable: then as given */
}

static int
by_id(const void *a, const void *b)
{
	return memcmp((*(const struct pending *const *) a)->id, (*(const struct pending *const *) b)->id,
	    AM_ID_BYTES);
}

/* Write the pendings whose res rc is 0, in one transaction, taking at
 * most the first `limit` in id order (the rest are refused as AM_EFULL);
 * returns an LMDB code. On a full map *fitted says how many were written
 * before the map filled (all of them when it was the commit that failed),
 * so the caller can retry with less. */
static int
write_batch(am_queue *q, struct pending *pend, size_t n, size_t limit, am_queue_result *res, size_t *fitted)
{
	MDB_txn *txn = NULL;
	struct pending **order = NULL;
	struct cursors cs = {{0}};
	uint64_t seq = 0, seq0;
	uint8_t seqb[8];
	size_t len = 0;
	int mrc;

	*fitted = 0;
	if ((order = malloc((n ? n : 1) * sizeof(*order))) == NULL)
		return ENOMEM;
	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		goto out;
	if ((mrc = cursors_open(&cs, q, txn)) != 0)
		goto out;
	/* the inbox counter is read and written once per transaction */
	if (am_q_config_get(q, txn, "inbox_seq", seqb, 8, &len) == 0 && len == 8)
		seq = am_q_get_be64(seqb);
	seq0 = seq;
	/* The inbox lists a batch in creation order (its seqs are given
	 * first); then everything is inserted in id order, so the random-keyed
	 * id index fills leaf by leaf instead of jumping across the tree. */
	for (size_t i = 0; i < n; i++)
		order[i] = &pend[i];
	qsort(order, n, sizeof(*order), by_created);
	for (size_t j = 0; j < n; j++)
		order[j]->m.inbox_seq = order[j]->inbox && res[order[j] - pend].rc == 0 ? ++seq : 0;
	qsort(order, n, sizeof(*order), by_id);
	for (size_t j = 0; j < n; j++) {
		struct pending *p = order[j];
		am_queue_result *r = &res[p - pend];
		if (r->rc != 0)
			continue;
		if (j >= limit) {
			refuse(r, AM_EFULL, "store full");
			continue;
		}
		r->receipt_due = false;
		if (receipt_seen(q, txn, p)) {
			/* Held here with its destination's receipt seen, it is the
			 * delivered copy (this node is the destination: a carrier's
			 * copy went when the receipt came), kept until its consumer
			 * acks it: a second copy by another path is a duplicate and
			 * must not take the first one away (it did on 5c271d4: a
			 * gateway pair, or a link then a stick, each bringing it,
			 * lost the unread message) */
			MDB_val hk = {AM_ID_BYTES, p->id}, hv;
			if (mdb_get(txn, q->meta, &hk, &hv) == 0)
				refuse(r, AM_EDUP, "already held (delivered here, waiting for its consumer)");
			else
				refuse(r, AM_ETOMBSTONE, "delivered already (its receipt was seen here)");
			continue;
		}
		mrc = store_one(&cs, p);
		if (mrc == MDB_KEYEXIST) {
			refuse(r, AM_EDUP, "already held (twice in one batch)");
			mrc = 0;
			continue;
		}
		if (mrc != 0) {
			*fitted = j;
			goto out;
		}
		if (p->receipt && (mrc = apply_receipt(q, txn, p, p->m.received_ms, &r->receipt_foreign)) != 0) {
			*fitted = j;
			goto out;
		}
		if (p->nrevs > 0 && (mrc = apply_revocation(q, txn, p)) != 0) {
			*fitted = j;
			goto out;
		}
		r->inboxed = p->inbox;
		r->receipt_due = p->for_me;
		memcpy(r->src, p->src, AM_PK_BYTES);
		r->expires_ms = p->m.expires_ms;
		am_q_trim_check(q); /* bounds pages mapped by this batch */
	}
	/* from here on a full map is the whole batch's fault */
	*fitted = limit < n ? limit : n;
	if (seq != seq0) {
		MDB_val k = {9, "inbox_seq"}, v = {8, seqb};
		am_q_put_be64(seqb, seq);
		if ((mrc = mdb_put(txn, q->config, &k, &v, 0)) != 0)
			goto out;
	}
	cursors_close(&cs);
	memset(&cs, 0, sizeof(cs));
	mrc = mdb_txn_commit(txn);
	txn = NULL;
	if (mrc == 0) {
		for (size_t i = 0; i < n; i++)
			if (res[i].rc == 0)
				atomic_fetch_add_explicit(&q->written_since_trim, pend[i].len, memory_order_relaxed);
	}
out:
	cursors_close(&cs);
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(order);
	return mrc;
}

/* Write; on a full map keep what fits: retry with fewer (in id order)
 * until a transaction commits or nothing is left. The rest are refused
 * with AM_EFULL and nothing already stored changes. */
int
am_q_commit_batch(am_queue *q, struct pending *pend, size_t n, am_queue_result *res)
{
	size_t limit = n, fitted = 0, refused = 0;
	int mrc, rc;

	for (int tries = 0;; tries++) {
		mrc = write_batch(q, pend, n, limit, res, &fitted);
		if (mrc != MDB_MAP_FULL || fitted == 0 || tries == 16)
			break;
		/* commits need pages of their own: leave some room */
		limit = fitted - 1 - fitted / 8;
		for (size_t i = 0; i < n; i++)
			res[i].inboxed = res[i].receipt_due = false;
	}
	rc = mrc ? am_q_err(mrc, "storing envelopes") : 0;
	for (size_t i = 0; i < n; i++) {
		if (mrc != 0 && res[i].rc == 0)
			refuse(&res[i], rc, am_error_detail());
		refused += res[i].rc == AM_EFULL;
	}
	am_q_maybe_trim(q, n);
	if (rc != 0)
		return am_q_err(mrc, "storing envelopes");
	if (refused > 0)
		return am_error_set(AM_EFULL, "store full: %zu of %zu envelopes did not fit", refused, n);
	return 0;
}

/* Phase 1 for own envelopes: tombstone check, pendings. */
int
am_q_prepare_own(am_queue *q, const am_envelope *envs, size_t n, uint64_t now_ms, am_queue_result *res,
    struct pending *pend)
{
	struct self_view self;
	MDB_txn *rtxn = NULL;
	int mrc, rc;

	memset(res, 0, n * sizeof(*res));
	if ((rc = load_self(q, &self)) != 0)
		return rc;
	/* tombstones still win: an id deleted here is not stored again */
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &rtxn)) != 0)
		return am_q_err(mrc, "checking tombstones");
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {AM_ID_BYTES, (void *) envs[i].id}, v;
		memcpy(res[i].id, envs[i].id, AM_ID_BYTES);
		pending_from(&pend[i], &self, &envs[i], envs[i].raw, now_ms);
		if (mdb_get(rtxn, q->tombs, &k, &v) == 0)
			refuse(&res[i], AM_ETOMBSTONE, "deleted, delivered or expired here before");
	}
	mdb_txn_abort(rtxn);
	return 0;
}

/* Hashing and signature checks are independent per envelope and are by
 * far the biggest cost of an import: am_parallel_for spreads them over
 * the cores (each worker writes only its own res[] and pend[]). */
struct prep {
	const am_queue_item *items;
	am_queue_result *res;
	struct pending *pend;
	const struct self_view *self;
	uint64_t now_ms;
};

static void
prep_peek(void *ctx, size_t i0, size_t i1)
{
	struct prep *p = ctx;

	for (size_t i = i0; i < i1; i++)
		if ((p->res[i].rc = am_envelope_peek(p->res[i].id, NULL, p->items[i].raw, p->items[i].len)) != 0)
			refuse(&p->res[i], p->res[i].rc, am_error_detail());
}

static void
prep_verify(void *ctx, size_t i0, size_t i1)
{
	struct prep *p = ctx;
	am_envelope env;
	int rc;

	for (size_t i = i0; i < i1; i++) {
		if (p->res[i].rc != 0)
			continue;
		if ((rc = am_envelope_decode_view(&env, p->items[i].raw, p->items[i].len, p->res[i].id)) != 0) {
			refuse(&p->res[i], rc, am_error_detail());
			continue;
		}
		if (env.body.expires_ms <= p->now_ms) {
			char why[64];
			snprintf(why, sizeof(why), "expired %llu ms ago",
			    (unsigned long long) (p->now_ms - env.body.expires_ms));
			refuse(&p->res[i], AM_EEXPIRED, why);
		} else {
			pending_from(&p->pend[i], p->self, &env, p->items[i].raw, p->now_ms);
		}
	}
}

/* Phase 1 for received envelopes: parse, dedup, verify, pendings. No
 * write lock is taken. */
int
am_q_prepare_batch(am_queue *q, const am_queue_item *items, size_t n, uint64_t now_ms, am_queue_result *res,
    struct pending *pend)
{
	struct self_view self;
	MDB_txn *rtxn = NULL;
	int mrc, rc;

	memset(res, 0, n * sizeof(*res));
	if ((rc = load_self(q, &self)) != 0)
		return rc;
	struct prep p = {items, res, pend, &self, now_ms};
	/* Duplicates and tombstoned ids cost a hash and a look-up, never a
	 * signature check. */
	am_parallel_for(n, prep_peek, &p);
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &rtxn)) != 0)
		return am_q_err(mrc, "checking for duplicates");
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {AM_ID_BYTES, res[i].id}, v;
		if (res[i].rc != 0)
			continue;
		if (mdb_get(rtxn, q->meta, &k, &v) == 0)
			refuse(&res[i], AM_EDUP, "already held");
		else if (mdb_get(rtxn, q->tombs, &k, &v) == 0)
			refuse(&res[i], AM_ETOMBSTONE, "deleted, delivered or expired here before");
		am_q_trim_check(q); /* bounds pages mapped by the look-ups */
	}
	mdb_txn_abort(rtxn);
	am_parallel_for(n, prep_verify, &p);
	return 0;
}

int
am_q_prep_items(am_queue *q, const void *in, size_t n, uint64_t now_ms, am_queue_result *res, struct pending *pend)
{
	return am_q_prepare_batch(q, in, n, now_ms, res, pend);
}

int
am_q_prep_own(am_queue *q, const void *in, size_t n, uint64_t now_ms, am_queue_result *res, struct pending *pend)
{
	return am_q_prepare_own(q, in, n, now_ms, res, pend);
}

static int
put_via(am_queue *q, am_q_prepare_fn prep, const void *in, size_t n, uint64_t now_ms, am_queue_result *res)
{
	struct pending *pend;
	int rc;

	if (n == 0)
		return 0;
	if ((pend = calloc(n, sizeof(*pend))) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a batch of %zu", n);
	if ((rc = prep(q, in, n, now_ms, res, pend)) == 0)
		rc = am_q_commit_batch(q, pend, n, res);
	free(pend);
	return rc;
}

int
am_queue_put_own(am_queue *q, const am_envelope *envs, size_t n, uint64_t now_ms, am_queue_result *res)
{
	return put_via(q, am_q_prep_own, envs, n, now_ms, res);
}

int
am_queue_put_batch(am_queue *q, const am_queue_item *items, size_t n, uint64_t now_ms, am_queue_result *res)
{
	return put_via(q, am_q_prep_items, items, n, now_ms, res);
}

int
am_queue_put(am_queue *q, const uint8_t *raw, size_t len, uint64_t now_ms, am_queue_result *res)
{
	am_queue_item it = {raw, len};
	int rc = am_queue_put_batch(q, &it, 1, now_ms, res);

	if (rc != 0)
		return rc;
	if (res->rc != 0)
		return am_error_set(res->rc, "%s", res->detail[0] ? res->detail : am_strerror(res->rc));
	return 0;
}
