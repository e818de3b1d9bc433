/*
 * read.c — look-ups, the two iteration orders, and statistics.
 */
#include "queue_private.h"

#include <stdlib.h>
#include <string.h>

int
am_queue_has(am_queue *q, const uint8_t id[static AM_ID_BYTES])
{
	MDB_txn *txn = NULL;
	MDB_val k = {AM_ID_BYTES, (void *) id}, v;
	int mrc, rc;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "looking up an envelope");
	if (mdb_get(txn, q->meta, &k, &v) == 0)
		rc = 0;
	else if (mdb_get(txn, q->tombs, &k, &v) == 0)
		rc = am_error_set(AM_ETOMBSTONE, "deleted, delivered or expired here before");
	else
		rc = am_error_set(AM_ENOTFOUND, "envelope not held");
	mdb_txn_abort(txn);
	return rc;
}

int
am_queue_get(am_queue *q, const uint8_t id[static AM_ID_BYTES], uint8_t **raw, size_t *len, am_queue_meta *meta)
{
	MDB_txn *txn = NULL;
	MDB_val k = {AM_ID_BYTES, (void *) id}, v, mv;
	uint8_t tkey[TIME_KEY];
	am_queue_meta m;
	int mrc, rc = 0;

	*raw = NULL;
	*len = 0;
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading an envelope");
	mrc = mdb_get(txn, q->meta, &k, &mv);
	if (mrc == MDB_NOTFOUND) {
		rc = am_error_set(AM_ENOTFOUND, "envelope not held");
		goto out;
	}
	if (mrc != 0 || mv.mv_size != META_BYTES) {
		rc = mrc ? am_q_err(mrc, "reading an envelope") : am_error_set(AM_ESTORE, "metadata record damaged");
		goto out;
	}
	am_q_meta_decode(&m, mv.mv_data);
	if (meta != NULL)
		*meta = m;
	am_q_time_key(tkey, m.created_ms, id);
	k.mv_size = TIME_KEY;
	k.mv_data = tkey;
	if ((mrc = mdb_get(txn, q->envs, &k, &v)) != 0) {
		rc = mrc == MDB_NOTFOUND ? am_error_set(AM_ESTORE, "envelope bytes missing for a held id (store damaged?)")
		                         : am_q_err(mrc, "reading an envelope");
		goto out;
	}
	*raw = malloc(v.mv_size ? v.mv_size : 1);
	if (*raw == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory reading an envelope");
		goto out;
	}
	memcpy(*raw, v.mv_data, v.mv_size);
	*len = v.mv_size;
out:
	mdb_txn_abort(txn);
	return rc;
}

/* Walk an index whose keys end in the 32-byte id, loading each meta. */
/* Walk dbi from its first key, or from just after `after` (a key of its
 * own layout) when not NULL; `trim` drops the mapping afterwards. */
static int
walk_from(am_queue *q, MDB_dbi dbi, const uint8_t *after, size_t after_len, bool trim, am_queue_visit_fn fn,
    void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v, mk, mv;
	int mrc, rc = 0;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "walking the store");
	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
		rc = am_q_err(mrc, "walking the store");
		goto out;
	}
	if (after != NULL) {
		k.mv_size = after_len;
		k.mv_data = (void *) after;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == 0 && k.mv_size == after_len && memcmp(k.mv_data, after, after_len) == 0)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *id;
		am_queue_meta m;
		if (k.mv_size < AM_ID_BYTES)
			continue;
		id = (const uint8_t *) k.mv_data + k.mv_size - AM_ID_BYTES;
		mk.mv_size = AM_ID_BYTES;
		mk.mv_data = (void *) id;
		if (mdb_get(txn, q->meta, &mk, &mv) != 0 || mv.mv_size != META_BYTES)
			continue; /* index entry without envelope: skip, gc repairs */
		am_q_meta_decode(&m, mv.mv_data);
		if ((rc = fn(ctx, id, &m)) != 0)
			goto out;
		am_q_trim_check(q); /* a walk of a large store maps it all otherwise */
	}
	if (mrc != MDB_NOTFOUND)
		rc = am_q_err(mrc, "walking the store");
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	/* fault-around maps the neighbours of every index page read (the
	 * envelopes written beside them); an idle daemon answering /metrics
	 * should not keep the store mapped */
	if (trim)
		am_queue_trim(q);
	return rc;
}

static int
walk(am_queue *q, MDB_dbi dbi, am_queue_visit_fn fn, void *ctx)
{
	return walk_from(q, dbi, NULL, 0, true, fn, ctx);
}

int
am_queue_each_after(am_queue *q, uint64_t created_ms, const uint8_t id[static AM_ID_BYTES], am_queue_visit_fn fn,
    void *ctx)
{
	uint8_t key[TIME_KEY];

	am_q_time_key(key, created_ms, id);
	return walk_from(q, q->bytime, key, sizeof(key), false, fn, ctx);
}

uint64_t
am_queue_generation(am_queue *q)
{
	MDB_envinfo info;

	if (mdb_env_info(q->env, &info) != 0)
		return 0;
	return (uint64_t) info.me_last_txnid;
}

int
am_queue_outbox_each(am_queue *q, am_queue_visit_fn fn, void *ctx)
{
	return walk(q, q->outbox, fn, ctx);
}

int
am_queue_each(am_queue *q, am_queue_visit_fn fn, void *ctx)
{
	return walk(q, q->bytime, fn, ctx);
}

static int
count_prio(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	am_queue_stats *st = ctx;

	(void) id;
	if (m->priority <= AM_PRIO_URGENT)
		st->by_priority[m->priority]++;
	st->bytes += m->size;
	if (st->oldest_created_ms == 0 || m->created_ms < st->oldest_created_ms)
		st->oldest_created_ms = m->created_ms;
	if (m->created_ms > st->newest_created_ms)
		st->newest_created_ms = m->created_ms;
	return 0;
}

int
am_queue_get_counts(am_queue *q, am_queue_stats *st)
{
	MDB_txn *txn = NULL;
	MDB_stat s;
	MDB_envinfo info;
	int mrc;

	memset(st, 0, sizeof(*st));
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading statistics");
	if (mdb_stat(txn, q->envs, &s) == 0)
		st->envelopes = s.ms_entries;
	if (mdb_stat(txn, q->outbox, &s) == 0)
		st->outbox = s.ms_entries;
	if (mdb_stat(txn, q->inbox, &s) == 0)
		st->inbox_unacked = s.ms_entries;
	if (mdb_stat(txn, q->tombs, &s) == 0)
		st->tombstones = s.ms_entries;
	if (mdb_stat(txn, q->peers, &s) == 0)
		st->peers = s.ms_entries;
	mdb_env_stat(q->env, &s);
	mdb_env_info(q->env, &info);
	st->map_size = info.me_mapsize;
	st->map_used = (uint64_t) (info.me_last_pgno + 1) * s.ms_psize;
	mdb_txn_abort(txn);
	return 0;
}

int
am_queue_get_stats(am_queue *q, am_queue_stats *st)
{
	int rc = am_queue_get_counts(q, st);

	return rc != 0 ? rc : walk(q, q->bytime, count_prio, st);
}

int
am_queue_delivered(am_queue *q, const uint8_t id[static AM_ID_BYTES], const uint8_t by[static AM_PK_BYTES])
{
	uint8_t signers[64][AM_PK_BYTES];
	bool checked[64];
	size_t n = 0;
	int rc;

	if ((rc = am_queue_receipts(q, id, signers, checked, 64, &n)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (memcmp(signers[i], by, AM_PK_BYTES) == 0)
			return 0;
	return am_error_set(AM_ENOTFOUND, "no receipt seen for this envelope from that node");
}

int
am_queue_receipts(am_queue *q, const uint8_t id[static AM_ID_BYTES], uint8_t (*signers)[AM_PK_BYTES], bool *checked,
    size_t cap, size_t *n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k = {AM_ID_BYTES, (void *) id}, v;
	int mrc;

	*n = 0;
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "looking up receipts");
	if ((mrc = mdb_cursor_open(txn, q->rcpts, &cur)) != 0) {
		mdb_txn_abort(txn);
		return am_q_err(mrc, "looking up receipts");
	}
	/* (id) alone: an entry from before 0.2, signer in the value; then
	 * (id, signer) for each signer */
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && *n < cap;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < AM_ID_BYTES || memcmp(k.mv_data, id, AM_ID_BYTES) != 0)
			break;
		if (k.mv_size == AM_ID_BYTES && v.mv_size >= AM_PK_BYTES) {
			memcpy(signers[*n], v.mv_data, AM_PK_BYTES);
			checked[(*n)++] = false;
		} else if (k.mv_size == AM_ID_BYTES + AM_PK_BYTES) {
			memcpy(signers[*n], (const uint8_t *) k.mv_data + AM_ID_BYTES, AM_PK_BYTES);
			checked[(*n)++] = v.mv_size >= 9 && ((const uint8_t *) v.mv_data)[8] == 1;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

int
am_queue_known_each(am_queue *q, am_queue_id_fn fn, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_dbi dbis[2] = {q->meta, q->tombs};
	int mrc = 0, rc = 0;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "listing ids");
	for (int d = 0; d < 2 && rc == 0; d++) {
		if ((mrc = mdb_cursor_open(txn, dbis[d], &cur)) != 0)
			break;
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (k.mv_size == AM_ID_BYTES)
				rc = fn(ctx, k.mv_data);
		mdb_cursor_close(cur);
		cur = NULL;
		if (mrc == MDB_NOTFOUND)
			mrc = 0;
		if (mrc != 0)
			break;
	}
	mdb_txn_abort(txn);
	if (rc == 0 && mrc != 0)
		rc = am_q_err(mrc, "listing ids");
	return rc;
}
