/*
 * queue_private.h — shared by src/queue's files only: the handle, the
 * LMDB databases, key layouts and the metadata record's byte layout.
 *
 * Key layouts (all integers big-endian so LMDB's byte order is numeric):
 *   meta     id(32)                          -> meta record (META_BYTES)
 *   envs     created(8) id(32)               -> envelope bytes
 *
 * Envelope bytes are keyed by time, not by id: live traffic then appends
 * at the right edge of the B-tree instead of touching a random leaf per
 * insert, which keeps the mapped pages a writer touches (its RSS) close to
 * the size of the small id-keyed tables, not of the whole store. meta is
 * the id index (dedup, look-ups) and holds created, so an id finds its
 * bytes in two probes. It is the one table written at a random place per
 * envelope, so it is kept small (40-byte records) and also carries the
 * inbox sequence number, instead of a second id-keyed table for acks.
 *   outbox   (3-prio)(1) created(8) id(32)   -> ""
 *   bytime   created(8) id(32)               -> ""
 *   expiry   expires(8) id(32)               -> ""
 *   inbox    seq(8)                          -> id(32)
 *   tombs    id(32)                          -> reason(1) at(8) until(8)
 *   tombexp  until(8) id(32)                 -> ""
 *   rcpts    original id(32)                 -> receipt src(32) expires(8)
 *   peers    pk(32)                          -> peer record
 *   config   name                            -> value
 *   fwd      id(32) peer(32)                 -> at(8): pushed to that peer
 *   revoked  what(32) signer(32)             -> revocation envelope id(32)
 */
#ifndef AM_QUEUE_PRIVATE_H
#define AM_QUEUE_PRIVATE_H

#include "am_queue.h"

#include <lmdb.h>
#include <stdatomic.h>

struct am_queue {
	MDB_env *env;
	MDB_dbi envs, meta, outbox, bytime, expiry, inbox, tombs,
	    tombexp, rcpts, peers, config, fwd, revoked;
	char *dir;
	/* counters any thread may move (the writer commits while readers and
	 * preparers check): atomics, relaxed, since a stale view only moves a
	 * trim by a batch */
	atomic_uint_fast64_t written_since_trim; /* bytes committed since the last trim */
	atomic_uint_fast64_t trim_steps;         /* calls to am_q_trim_check */
	uintptr_t map_start;         /* LMDB's map, found by am_q_find_map */
	size_t map_len;
};

void am_q_find_map(am_queue *q);

/* What the write phase needs of one envelope (put.c). */
struct pending {
	const uint8_t *raw; /* borrowed from the caller until committed */
	size_t len;
	uint8_t id[AM_ID_BYTES];
	am_queue_meta m;    /* inbox_seq is assigned in the transaction */
	bool inbox;
	bool receipt;       /* type "receipt": applies to rids[0..nrids) */
	const uint8_t *revs; /* type "revocation": 33-byte records (kind, what) */
	size_t nrevs;
	bool for_me;        /* addressed to this node alone: receipt due */
	const uint8_t *rids; /* the ids a receipt covers: its payload, or ref */
	size_t nrids;
	uint8_t ref[AM_ID_BYTES];
	uint8_t src[AM_PK_BYTES];
	uint8_t dest_node[AM_PK_BYTES]; /* when m.dest_kind is a node */
};

/* The two phases of a put, so pipe.c can run them on two threads:
 * prepare (parse, dedup, verify; no write lock) fills pend[] and res[];
 * commit writes the pendings whose res rc is 0 in one transaction. */
int am_q_prepare_batch(am_queue *q, const am_queue_item *items, size_t n,
    uint64_t now_ms, am_queue_result *res, struct pending *pend);
int am_q_prepare_own(am_queue *q, const am_envelope *envs, size_t n,
    uint64_t now_ms, am_queue_result *res, struct pending *pend);
int am_q_commit_batch(am_queue *q, struct pending *pend, size_t n,
    am_queue_result *res);

/* The two prepares behind one signature (in: items or envelopes). */
typedef int (*am_q_prepare_fn)(am_queue *q, const void *in, size_t n,
    uint64_t now_ms, am_queue_result *res, struct pending *pend);
int am_q_prep_items(am_queue *q, const void *in, size_t n, uint64_t now_ms,
    am_queue_result *res, struct pending *pend);
int am_q_prep_own(am_queue *q, const void *in, size_t n, uint64_t now_ms,
    am_queue_result *res, struct pending *pend);

/* am_q_maybe_trim: after a batch of at least AM_QUEUE_TRIM_BATCH, or once
 * enough has been written, drop this process's mapping of store pages
 * (they stay in the page cache); see trim.c. */
#define AM_QUEUE_TRIM_BATCH 256
#define AM_QUEUE_MAP_BUDGET (16u << 20) /* mapped store pages we tolerate */
void am_q_maybe_trim(am_queue *q, size_t batch);
/* am_q_trim_check: call per envelope in long loops; trims when the mapped
 * resident pages pass AM_QUEUE_MAP_BUDGET (checked every 256 calls). */
void am_q_trim_check(am_queue *q);

#define META_BYTES   (8 * 4 + 4 + 4)
#define TOMB_BYTES   17
#define OUTBOX_KEY   (1 + 8 + AM_ID_BYTES)
#define TIME_KEY     (8 + AM_ID_BYTES)

/* qerr: map an LMDB code to AM_E* with a detail naming the operation. */
int am_q_err(int mdb_rc, const char *what);

void am_q_put_be64(uint8_t *p, uint64_t v);
uint64_t am_q_get_be64(const uint8_t *p);
void am_q_meta_encode(uint8_t out[META_BYTES], const am_queue_meta *m);
void am_q_meta_decode(am_queue_meta *m, const uint8_t in[META_BYTES]);
void am_q_outbox_key(uint8_t k[OUTBOX_KEY], const am_queue_meta *m,
    const uint8_t id[AM_ID_BYTES]);
void am_q_time_key(uint8_t k[TIME_KEY], uint64_t t,
    const uint8_t id[AM_ID_BYTES]);

/* am_q_remove: inside txn, delete an envelope and every index entry and
 * write its tombstone. MDB_NOTFOUND when not held. */
int am_q_remove(am_queue *q, MDB_txn *txn, const uint8_t id[AM_ID_BYTES],
    enum am_tomb_reason why, uint64_t expires_ms, uint64_t now_ms);

/* am_q_config_get / put: small named values in the config database. */
int am_q_config_get(am_queue *q, MDB_txn *txn, const char *name, void *out,
    size_t cap, size_t *len);
int am_q_config_put(am_queue *q, const char *name, const void *val,
    size_t len);

#endif
