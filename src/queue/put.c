/*
 * put.c — accepting envelopes: dedup before verification, verification
 * outside the write lock, one write transaction per batch (group commit),
 * and the inbox admission rule.
 */
#include "queue_private.h"

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

	if (!s->has_self || strcmp(b->type, "receipt") == 0)
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

/* Pre-check: outer parse, then dedup against held and tombstoned ids. */
static void
precheck(am_queue *q, MDB_txn *rtxn, const am_queue_item *it, am_queue_result *r)
{
	MDB_val k, v;

	r->rc = am_envelope_peek(r->id, NULL, it->raw, it->len);
	if (r->rc != 0)
		return;
	k.mv_size = AM_ID_BYTES;
	k.mv_data = r->id;
	if (mdb_get(rtxn, q->meta, &k, &v) == 0)
		r->rc = am_error_set(AM_EDUP, "already held");
	else if (mdb_get(rtxn, q->tombs, &k, &v) == 0)
		r->rc = am_error_set(AM_ETOMBSTONE, "deleted, delivered or expired here before");
}

static int
store_one(am_queue *q, MDB_txn *txn, const am_envelope *e, uint64_t now_ms, uint64_t inbox_seq, bool outbox,
    bool local)
{
	uint8_t mbuf[META_BYTES], okey[OUTBOX_KEY], tkey[TIME_KEY], seqb[8];
	am_queue_meta m = {0};
	MDB_val k = {AM_ID_BYTES, (void *) e->id}, v, empty = {0, ""};
	int mrc;

	m.created_ms = e->body.created_ms;
	m.expires_ms = e->body.expires_ms;
	m.received_ms = now_ms;
	m.size = (uint32_t) e->raw_len;
	m.priority = e->body.priority;
	m.hops_left = e->hops_left;
	m.dest_kind = (uint8_t) e->body.dest_kind;
	m.flags = (outbox ? AM_QF_OUTBOX : 0) | (inbox_seq ? AM_QF_INBOX : 0) | (local ? AM_QF_LOCAL : 0);
	m.inbox_seq = inbox_seq;
	am_q_meta_encode(mbuf, &m);
	v.mv_size = META_BYTES;
	v.mv_data = mbuf;
	/* meta is the id index: NOOVERWRITE makes it the dedup point */
	if ((mrc = mdb_put(txn, q->meta, &k, &v, MDB_NOOVERWRITE)) != 0)
		return mrc;
	am_q_time_key(tkey, m.created_ms, e->id);
	k.mv_size = TIME_KEY;
	k.mv_data = tkey;
	v.mv_size = e->raw_len;
	v.mv_data = e->raw;
	if ((mrc = mdb_put(txn, q->envs, &k, &v, 0)) != 0)
		return mrc;
	if ((mrc = mdb_put(txn, q->bytime, &k, &empty, 0)) != 0)
		return mrc;
	am_q_time_key(tkey, m.expires_ms, e->id);
	if ((mrc = mdb_put(txn, q->expiry, &k, &empty, 0)) != 0)
		return mrc;
	if (outbox) {
		am_q_outbox_key(okey, &m, e->id);
		k.mv_size = OUTBOX_KEY;
		k.mv_data = okey;
		if ((mrc = mdb_put(txn, q->outbox, &k, &empty, 0)) != 0)
			return mrc;
	}
	if (inbox_seq) {
		am_q_put_be64(seqb, inbox_seq);
		k.mv_size = 8;
		k.mv_data = seqb;
		v.mv_size = AM_ID_BYTES;
		v.mv_data = (void *) e->id;
		if ((mrc = mdb_put(txn, q->inbox, &k, &v, MDB_APPEND)) != 0)
			return mrc;
	}
	return 0;
}

/* Write decoded envelopes [0, n) whose res rc is 0; returns an LMDB code.
 * *stored_upto tells how many items were processed before a failure. */
static int
write_batch(am_queue *q, const struct self_view *s, const am_envelope *envs, size_t n, uint64_t now_ms,
    am_queue_result *res, size_t *stored_upto)
{
	MDB_txn *txn = NULL;
	uint64_t seq = 0, seq0;
	uint8_t seqb[8];
	size_t len = 0;
	int mrc;

	*stored_upto = 0;
	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return mrc;
	/* the inbox counter is read and written once per transaction */
	if (am_q_config_get(q, txn, "inbox_seq", seqb, 8, &len) == 0 && len == 8)
		seq = am_q_get_be64(seqb);
	seq0 = seq;
	for (size_t i = 0; i < n; i++) {
		bool in, out, local;
		if (res[i].rc != 0)
			continue;
		in = admits(s, &envs[i].body);
		out = carries(s, &envs[i]);
		local = s->has_self && memcmp(envs[i].body.src, s->pk, AM_PK_BYTES) == 0;
		mrc = store_one(q, txn, &envs[i], now_ms, in ? seq + 1 : 0, out, local);
		if (mrc == MDB_KEYEXIST) {
			/* the same envelope twice in one batch */
			res[i].rc = AM_EDUP;
			snprintf(res[i].detail, sizeof(res[i].detail), "already held");
			continue;
		}
		if (mrc != 0) {
			*stored_upto = i;
			mdb_txn_abort(txn);
			return mrc;
		}
		res[i].inboxed = in;
		seq += in;
	}
	if (seq != seq0) {
		MDB_val k = {9, "inbox_seq"}, v = {8, seqb};
		am_q_put_be64(seqb, seq);
		if ((mrc = mdb_put(txn, q->config, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			return mrc;
		}
	}
	mrc = mdb_txn_commit(txn);
	if (mrc == 0)
		*stored_upto = n;
	return mrc;
}

/* Write, and on a full map keep the prefix that fits. */
static int
commit_batch(am_queue *q, const struct self_view *self, const am_envelope *envs, size_t n, uint64_t now_ms,
    am_queue_result *res)
{
	size_t upto = 0, fit = n;
	int mrc = write_batch(q, self, envs, n, now_ms, res, &upto);

	if (mrc == MDB_MAP_FULL && upto > 0) {
		fit = upto;
		mrc = write_batch(q, self, envs, fit, now_ms, res, &upto);
	}
	if (mrc != 0)
		fit = 0;
	for (size_t i = fit; i < n; i++)
		if (res[i].rc == 0) {
			res[i].rc = mrc == 0 ? AM_EFULL : am_q_err(mrc, "storing envelopes");
			res[i].inboxed = false;
		}
	if (mrc != 0)
		return am_q_err(mrc, "storing envelopes");
	if (fit < n)
		return am_error_set(AM_EFULL, "store full: only the first %zu of %zu envelopes fit", fit, n);
	return 0;
}

int
am_queue_put_own(am_queue *q, const am_envelope *envs, size_t n, uint64_t now_ms, am_queue_result *res)
{
	struct self_view self;
	MDB_txn *rtxn = NULL;
	int mrc, rc;

	if (n == 0)
		return 0;
	memset(res, 0, n * sizeof(*res));
	if ((rc = load_self(q, &self)) != 0)
		return rc;
	/* tombstones still win: an id deleted here is not stored again */
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &rtxn)) != 0)
		return am_q_err(mrc, "checking tombstones");
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {AM_ID_BYTES, (void *) envs[i].id}, v;
		memcpy(res[i].id, envs[i].id, AM_ID_BYTES);
		if (mdb_get(rtxn, q->tombs, &k, &v) == 0) {
			res[i].rc = AM_ETOMBSTONE;
			snprintf(res[i].detail, sizeof(res[i].detail), "deleted, delivered or expired here before");
		}
	}
	mdb_txn_abort(rtxn);
	return commit_batch(q, &self, envs, n, now_ms, res);
}

int
am_queue_put_batch(am_queue *q, const am_queue_item *items, size_t n, uint64_t now_ms, am_queue_result *res)
{
	struct self_view self;
	am_envelope *envs = NULL;
	MDB_txn *rtxn = NULL;
	int mrc, rc = 0;

	if (n == 0)
		return 0;
	memset(res, 0, n * sizeof(*res));
	envs = calloc(n, sizeof(*envs));
	if (envs == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a batch of %zu", n);
	if ((rc = load_self(q, &self)) != 0)
		goto out;
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &rtxn)) != 0) {
		rc = am_q_err(mrc, "checking for duplicates");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		precheck(q, rtxn, &items[i], &res[i]);
		if (res[i].rc != 0)
			snprintf(res[i].detail, sizeof(res[i].detail), "%s", am_error_detail());
	}
	mdb_txn_abort(rtxn);
	rtxn = NULL;

	/* Signatures are checked with no lock held. */
	for (size_t i = 0; i < n; i++) {
		if (res[i].rc != 0)
			continue;
		res[i].rc = am_envelope_decode(&envs[i], items[i].raw, items[i].len);
		if (res[i].rc == 0 && envs[i].body.expires_ms <= now_ms) {
			res[i].rc = am_error_set(AM_EEXPIRED, "expired %llu ms ago",
			    (unsigned long long) (now_ms - envs[i].body.expires_ms));
			am_envelope_clear(&envs[i]);
		}
		if (res[i].rc != 0)
			snprintf(res[i].detail, sizeof(res[i].detail), "%s", am_error_detail());
	}

	rc = commit_batch(q, &self, envs, n, now_ms, res);
out:
	if (rtxn != NULL)
		mdb_txn_abort(rtxn);
	for (size_t i = 0; i < n; i++)
		am_envelope_clear(&envs[i]);
	free(envs);
	return rc;
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
