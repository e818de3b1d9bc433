/*
 * peers.c — the peer table: who this node has met, under what name, at
 * which address, when first and last.
 *
 * Record: first_seen(8) last_seen(8) contacts(8) name_len(1) name
 *         addr_len(1) addr
 */
#include "queue_private.h"

#include <string.h>

#define PEER_MAX (24 + 1 + AM_TAG_MAX + 1 + 127)

static size_t
peer_encode(uint8_t *out, const am_queue_peer *p)
{
	size_t nl = strnlen(p->name, AM_TAG_MAX), al = strnlen(p->address, sizeof(p->address) - 1);
	size_t off = 24;

	am_q_put_be64(out, p->first_seen_ms);
	am_q_put_be64(out + 8, p->last_seen_ms);
	am_q_put_be64(out + 16, p->contacts);
	out[off++] = (uint8_t) nl;
	memcpy(out + off, p->name, nl);
	off += nl;
	out[off++] = (uint8_t) al;
	memcpy(out + off, p->address, al);
	return off + al;
}

static int
peer_decode(am_queue_peer *p, const uint8_t pk[AM_PK_BYTES], const uint8_t *in, size_t len)
{
	size_t off = 24, nl, al;

	memset(p, 0, sizeof(*p));
	memcpy(p->pk, pk, AM_PK_BYTES);
	if (len < 26)
		return am_error_set(AM_ESTORE, "peer record too short");
	p->first_seen_ms = am_q_get_be64(in);
	p->last_seen_ms = am_q_get_be64(in + 8);
	p->contacts = am_q_get_be64(in + 16);
	nl = in[off++];
	if (nl > AM_TAG_MAX || off + nl + 1 > len)
		return am_error_set(AM_ESTORE, "peer record damaged");
	memcpy(p->name, in + off, nl);
	off += nl;
	al = in[off++];
	if (al >= sizeof(p->address) || off + al > len)
		return am_error_set(AM_ESTORE, "peer record damaged");
	memcpy(p->address, in + off, al);
	return 0;
}

int
am_queue_peer_seen(am_queue *q, const am_queue_peer *p, uint64_t now_ms)
{
	MDB_txn *txn = NULL;
	MDB_val k = {AM_PK_BYTES, (void *) p->pk}, v;
	am_queue_peer cur;
	uint8_t buf[PEER_MAX];
	int mrc;

	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "updating a peer");
	mrc = mdb_get(txn, q->peers, &k, &v);
	if (mrc == 0 && peer_decode(&cur, p->pk, v.mv_data, v.mv_size) == 0) {
		if (p->name[0] != '\0')
			memcpy(cur.name, p->name, sizeof(cur.name));
		if (p->address[0] != '\0')
			memcpy(cur.address, p->address, sizeof(cur.address));
	} else {
		cur = *p;
		cur.first_seen_ms = now_ms;
		cur.contacts = 0;
	}
	cur.last_seen_ms = now_ms;
	cur.contacts++;
	v.mv_size = peer_encode(buf, &cur);
	v.mv_data = buf;
	if ((mrc = mdb_put(txn, q->peers, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return am_q_err(mrc, "updating a peer");
	}
	return am_q_err(mdb_txn_commit(txn), "committing a peer");
}

int
am_queue_peer_get(am_queue *q, const uint8_t pk[static AM_PK_BYTES], am_queue_peer *out)
{
	MDB_txn *txn = NULL;
	MDB_val k = {AM_PK_BYTES, (void *) pk}, v;
	int mrc, rc;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading a peer");
	mrc = mdb_get(txn, q->peers, &k, &v);
	if (mrc == MDB_NOTFOUND)
		rc = am_error_set(AM_ENOTFOUND, "unknown peer");
	else if (mrc != 0)
		rc = am_q_err(mrc, "reading a peer");
	else
		rc = peer_decode(out, pk, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return rc;
}

int
am_queue_peer_each(am_queue *q, am_queue_peer_fn fn, void *ctx)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	am_queue_peer p;
	int mrc, rc = 0;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "listing peers");
	if ((mrc = mdb_cursor_open(txn, q->peers, &cur)) != 0) {
		rc = am_q_err(mrc, "listing peers");
		goto out;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != AM_PK_BYTES || peer_decode(&p, k.mv_data, v.mv_data, v.mv_size) != 0)
			continue;
		if ((rc = fn(ctx, &p)) != 0)
			goto out;
	}
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int
am_queue_forwarded_add(am_queue *q, const uint8_t *ids, size_t n, const uint8_t peer[static AM_PK_BYTES],
    uint64_t now_ms)
{
	MDB_txn *txn = NULL;
	uint8_t key[AM_ID_BYTES + AM_PK_BYTES], at[8];
	MDB_val k = {sizeof(key), key}, v = {sizeof(at), at};
	int mrc;

	if (n == 0)
		return 0;
	am_q_put_be64(at, now_ms);
	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "recording forwards");
	for (size_t i = 0; i < n; i++) {
		MDB_val mk = {AM_ID_BYTES, (void *) (ids + i * AM_ID_BYTES)}, mv;
		/* only for what is still held (a receipt may have dropped it) */
		if (mdb_get(txn, q->meta, &mk, &mv) != 0)
			continue;
		memcpy(key, ids + i * AM_ID_BYTES, AM_ID_BYTES);
		memcpy(key + AM_ID_BYTES, peer, AM_PK_BYTES);
		if ((mrc = mdb_put(txn, q->fwd, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			return am_q_err(mrc, "recording forwards");
		}
	}
	return am_q_err(mdb_txn_commit(txn), "committing forwards");
}

int
am_queue_forwarded_get(am_queue *q, const uint8_t id[static AM_ID_BYTES], am_queue_forward *out, size_t max,
    size_t *n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	uint8_t key[AM_ID_BYTES + AM_PK_BYTES] = {0};
	MDB_val k = {sizeof(key), key}, v;
	int mrc;

	*n = 0;
	memcpy(key, id, AM_ID_BYTES);
	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading forwards");
	if ((mrc = mdb_cursor_open(txn, q->fwd, &c)) == 0) {
		for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); mrc == 0 && *n < max;
		     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size != sizeof(key) || memcmp(k.mv_data, id, AM_ID_BYTES) != 0 || v.mv_size != 8)
				break;
			memcpy(out[*n].peer, (const uint8_t *) k.mv_data + AM_ID_BYTES, AM_PK_BYTES);
			out[*n].at_ms = am_q_get_be64(v.mv_data);
			(*n)++;
		}
		mdb_cursor_close(c);
		mrc = 0;
	}
	mdb_txn_abort(txn);
	return am_q_err(mrc, "reading forwards");
}

int
am_queue_revoked(am_queue *q, const uint8_t what[static AM_PK_BYTES], const uint8_t *signers, size_t n)
{
	MDB_txn *txn = NULL;
	int mrc, rc = AM_ENOTFOUND;

	if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn)) != 0)
		return am_q_err(mrc, "reading revocations");
	for (size_t i = 0; i < n && rc == AM_ENOTFOUND; i++) {
		uint8_t key[2 * AM_PK_BYTES];
		MDB_val k = {sizeof(key), key}, v;
		memcpy(key, what, AM_PK_BYTES);
		memcpy(key + AM_PK_BYTES, signers + i * AM_PK_BYTES, AM_PK_BYTES);
		if (mdb_get(txn, q->revoked, &k, &v) == 0)
			rc = 0;
	}
	mdb_txn_abort(txn);
	return rc;
}
