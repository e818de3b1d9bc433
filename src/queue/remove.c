/*
 * remove.c — deletion with tombstones, and garbage collection of expired
 * envelopes and old tombstones in bounded transactions (so a gc never
 * holds the writer lock for long, and a kill mid-gc loses nothing but
 * progress).
 */
#include "queue_private.h"

#include <string.h>

#define GC_BATCH 512

static int
put_tomb(am_queue *q, MDB_txn *txn, const uint8_t id[AM_ID_BYTES], enum am_tomb_reason why,
    uint64_t expires_ms, uint64_t now_ms)
{
	uint8_t rec[TOMB_BYTES], tkey[TIME_KEY];
	uint64_t until = expires_ms + AM_QUEUE_TOMB_GRACE_MS;
	MDB_val k = {AM_ID_BYTES, (void *) id}, v = {TOMB_BYTES, rec}, empty = {0, ""};
	int mrc;

	if (until < expires_ms)
		until = UINT64_MAX;
	rec[0] = (uint8_t) why;
	am_q_put_be64(rec + 1, now_ms);
	am_q_put_be64(rec + 9, until);
	if ((mrc = mdb_put(txn, q->tombs, &k, &v, 0)) != 0)
		return mrc;
	am_q_time_key(tkey, until, id);
	k.mv_size = TIME_KEY;
	k.mv_data = tkey;
	return mdb_put(txn, q->tombexp, &k, &empty, 0);
}

static int
del_ok(int mrc)
{
	return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* The record of whom an envelope was pushed to goes with it. */
static int
drop_forwarded(am_queue *q, MDB_txn *txn, const uint8_t id[AM_ID_BYTES])
{
	uint8_t key[2 * AM_ID_BYTES] = {0};
	MDB_cursor *c = NULL;
	MDB_val k = {sizeof(key), key}, v;
	int mrc;

	memcpy(key, id, AM_ID_BYTES);
	if ((mrc = mdb_cursor_open(txn, q->fwd, &c)) != 0)
		return mrc;
	/* a few entries (one per peer): seek afresh for each */
	for (;;) {
		k.mv_size = sizeof(key);
		k.mv_data = key;
		if ((mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) != 0)
			break;
		if (k.mv_size != sizeof(key) || memcmp(k.mv_data, id, AM_ID_BYTES) != 0)
			break;
		if ((mrc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return mrc == MDB_NOTFOUND || mrc == 0 ? 0 : mrc;
}

int
am_q_remove(am_queue *q, MDB_txn *txn, const uint8_t id[AM_ID_BYTES], enum am_tomb_reason why,
    uint64_t expires_ms, uint64_t now_ms)
{
	uint8_t okey[OUTBOX_KEY], tkey[TIME_KEY];
	MDB_val k = {AM_ID_BYTES, (void *) id}, v;
	am_queue_meta m;
	int mrc;

	mrc = mdb_get(txn, q->meta, &k, &v);
	if (mrc == 0 && v.mv_size == META_BYTES) {
		am_q_meta_decode(&m, v.mv_data);
		expires_ms = m.expires_ms;
		am_q_outbox_key(okey, &m, id);
		k.mv_size = OUTBOX_KEY;
		k.mv_data = okey;
		if ((mrc = del_ok(mdb_del(txn, q->outbox, &k, NULL))) != 0)
			return mrc;
		am_q_time_key(tkey, m.created_ms, id);
		k.mv_size = TIME_KEY;
		k.mv_data = tkey;
		if ((mrc = del_ok(mdb_del(txn, q->bytime, &k, NULL))) != 0)
			return mrc;
		if ((mrc = del_ok(mdb_del(txn, q->envs, &k, NULL))) != 0)
			return mrc;
		am_q_time_key(tkey, m.expires_ms, id);
		if ((mrc = del_ok(mdb_del(txn, q->expiry, &k, NULL))) != 0)
			return mrc;
		k.mv_size = AM_ID_BYTES;
		k.mv_data = (void *) id;
		if ((mrc = del_ok(mdb_del(txn, q->meta, &k, NULL))) != 0)
			return mrc;
		if (m.inbox_seq != 0) {
			uint8_t seq[8];
			am_q_put_be64(seq, m.inbox_seq);
			k.mv_size = 8;
			k.mv_data = seq;
			if ((mrc = del_ok(mdb_del(txn, q->inbox, &k, NULL))) != 0)
				return mrc;
			k.mv_size = AM_ID_BYTES;
			k.mv_data = (void *) id;
		}
	} else if (mrc != 0 && mrc != MDB_NOTFOUND) {
		return mrc;
	}
	if ((mrc = drop_forwarded(q, txn, id)) != 0)
		return mrc;
	return put_tomb(q, txn, id, why, expires_ms, now_ms);
}

int
am_queue_delete(am_queue *q, const uint8_t id[static AM_ID_BYTES], enum am_tomb_reason why,
    uint64_t expires_ms, uint64_t now_ms)
{
	MDB_txn *txn = NULL;
	int mrc;

	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "deleting");
	if ((mrc = am_q_remove(q, txn, id, why, expires_ms, now_ms)) != 0) {
		mdb_txn_abort(txn);
		return am_q_err(mrc, "deleting");
	}
	return am_q_err(mdb_txn_commit(txn), "committing a delete");
}

/* One bounded pass over an index keyed (time, id) whose time <= now.
 * Returns an LMDB code; *done counts entries handled; *more says the batch
 * limit stopped it. */
static int
gc_pass(am_queue *q, bool tombs, uint64_t now_ms, uint64_t *done, bool *more)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint8_t ids[GC_BATCH][AM_ID_BYTES];
	size_t n = 0;
	int mrc;

	*more = false;
	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return mrc;
	if ((mrc = mdb_cursor_open(txn, tombs ? q->tombexp : q->expiry, &cur)) != 0)
		goto fail;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && n < GC_BATCH;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != TIME_KEY || am_q_get_be64(k.mv_data) > now_ms)
			break;
		memcpy(ids[n++], (uint8_t *) k.mv_data + 8, AM_ID_BYTES);
		if ((mrc = mdb_cursor_del(cur, 0)) != 0)
			goto fail;
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		goto fail;
	mdb_cursor_close(cur);
	cur = NULL;
	*more = n == GC_BATCH;
	for (size_t i = 0; i < n; i++) {
		MDB_val id = {AM_ID_BYTES, ids[i]};
		if (tombs)
			mrc = del_ok(mdb_del(txn, q->tombs, &id, NULL));
		else
			mrc = am_q_remove(q, txn, ids[i], AM_TOMB_EXPIRED, 0, now_ms);
		if (mrc != 0 && mrc != MDB_NOTFOUND)
			goto fail;
	}
	if ((mrc = mdb_txn_commit(txn)) != 0)
		return mrc;
	*done += n;
	return 0;
fail:
	if (cur != NULL)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return mrc;
}

int
am_queue_gc(am_queue *q, uint64_t now_ms, am_queue_gc_stats *st)
{
	am_queue_gc_stats local;
	bool more = true;
	int mrc;

	if (st == NULL)
		st = &local;
	memset(st, 0, sizeof(*st));
	while (more)
		if ((mrc = gc_pass(q, false, now_ms, &st->expired, &more)) != 0)
			return am_q_err(mrc, "collecting expired envelopes");
	more = true;
	while (more)
		if ((mrc = gc_pass(q, true, now_ms, &st->tombs_freed, &more)) != 0)
			return am_q_err(mrc, "collecting old tombstones");
	return 0;
}
