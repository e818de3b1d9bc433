/*
 * inbox.c — the consumer side: list unacked entries in arrival order and
 * ack them. An ack is a committed transaction, so an acked envelope never
 * shows up again, even after a crash.
 */
#include "queue_private.h"

#include <string.h>

int
am_queue_inbox_list(am_queue *q, uint64_t after, am_queue_inbox_entry *out, size_t max, size_t *n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint8_t start[8];
	MDB_val k = {8, start}, v;
	int mrc, rc = 0;

	*n = 0;
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading the inbox");
	if ((mrc = mdb_cursor_open(txn, q->inbox, &cur)) != 0) {
		rc = am_q_err(mrc, "reading the inbox");
		goto out;
	}
	am_q_put_be64(start, after + 1);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && *n < max;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || v.mv_size != AM_ID_BYTES)
			continue;
		out[*n].seq = am_q_get_be64(k.mv_data);
		memcpy(out[*n].id, v.mv_data, AM_ID_BYTES);
		(*n)++;
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		rc = am_q_err(mrc, "reading the inbox");
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int
am_queue_inbox_ack(am_queue *q, const uint8_t id[static AM_ID_BYTES], uint64_t now_ms)
{
	MDB_txn *txn = NULL;
	MDB_val k = {AM_ID_BYTES, (void *) id}, v, mv;
	uint8_t seq[8];
	am_queue_meta m;
	int mrc, rc = 0;

	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "acking");
	mrc = mdb_get(txn, q->inbox_id, &k, &v);
	if (mrc == MDB_NOTFOUND) {
		rc = am_error_set(AM_ENOTFOUND, "not in the inbox (already acked?)");
		goto out;
	}
	if (mrc != 0 || v.mv_size != 8) {
		rc = mrc ? am_q_err(mrc, "acking") : am_error_set(AM_ESTORE, "inbox index damaged");
		goto out;
	}
	memcpy(seq, v.mv_data, 8);
	if ((mrc = mdb_del(txn, q->inbox_id, &k, NULL)) != 0)
		goto fail;
	k.mv_size = 8;
	k.mv_data = seq;
	if ((mrc = mdb_del(txn, q->inbox, &k, NULL)) != 0 && mrc != MDB_NOTFOUND)
		goto fail;
	/* The one final recipient is done with it: drop and tombstone. */
	k.mv_size = AM_ID_BYTES;
	k.mv_data = (void *) id;
	if (mdb_get(txn, q->meta, &k, &mv) == 0 && mv.mv_size == META_BYTES) {
		am_q_meta_decode(&m, mv.mv_data);
		if (m.dest_kind == AM_DEST_NODE && !(m.flags & AM_QF_OUTBOX)) {
			mrc = am_q_remove(q, txn, id, AM_TOMB_DELIVERED, m.expires_ms, now_ms);
			if (mrc != 0 && mrc != MDB_NOTFOUND)
				goto fail;
		}
	}
	mrc = mdb_txn_commit(txn);
	txn = NULL;
	if (mrc != 0)
		rc = am_q_err(mrc, "committing an ack");
	goto out;
fail:
	rc = am_q_err(mrc, "acking");
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}
