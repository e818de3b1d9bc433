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
	MDB_val k = {AM_ID_BYTES, (void *) id}, v;
	uint8_t seq[8], mbuf[META_BYTES];
	am_queue_meta m;
	int mrc, rc = 0;

	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "acking");
	mrc = mdb_get(txn, q->meta, &k, &v);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		goto fail;
	if (mrc == 0 && v.mv_size == META_BYTES)
		am_q_meta_decode(&m, v.mv_data);
	if (mrc == MDB_NOTFOUND || v.mv_size != META_BYTES || m.inbox_seq == 0) {
		rc = am_error_set(AM_ENOTFOUND, "not in the inbox (already acked?)");
		goto out;
	}
	am_q_put_be64(seq, m.inbox_seq);
	k.mv_size = 8;
	k.mv_data = seq;
	if ((mrc = mdb_del(txn, q->inbox, &k, NULL)) != 0 && mrc != MDB_NOTFOUND)
		goto fail;
	k.mv_size = AM_ID_BYTES;
	k.mv_data = (void *) id;
	if (m.dest_kind == AM_DEST_NODE && !(m.flags & AM_QF_OUTBOX)) {
		/* The one final recipient is done with it: drop and tombstone. */
		mrc = am_q_remove(q, txn, id, AM_TOMB_DELIVERED, m.expires_ms, now_ms);
	} else {
		/* Still carried for others; never listed here again. */
		m.inbox_seq = 0;
		am_q_meta_encode(mbuf, &m);
		v.mv_size = META_BYTES;
		v.mv_data = mbuf;
		mrc = mdb_put(txn, q->meta, &k, &v, 0);
	}
	if (mrc != 0)
		goto fail;
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
