/*
 * am_queue.h — the public contract of src/queue: one LMDB environment per
 * node holding envelope bytes plus the metadata that indexes them.
 *
 * What it owns: envelopes by id; the outbox (what this node carries on),
 * ordered by (priority desc, created asc); the (created, id) index that
 * reconciliation walks; the inbox with explicit ack; tombstones; the
 * expiry index and garbage collection; the peer table; the node's own
 * key, position, zone tags and groups.
 *
 * What it must not do: network or file I/O other than LMDB's, reading the
 * clock (callers pass now_ms), or exposing LMDB types (no MDB_val leaves
 * this module).
 *
 * Receipts: an envelope of type "receipt" whose ref names another
 * envelope, signed by that envelope's one destination node, proves
 * delivery. Storing it drops this store's copy of the original and
 * tombstones it (AM_TOMB_DELIVERED); an original that arrives after its
 * receipt is refused as delivered. A receipt from anyone else changes
 * nothing but is still carried (kept per signer, so it cannot shadow the
 * real one). Receipts are never put in an inbox.
 *
 * Durability: every put/ack/delete returns only after its transaction has
 * committed with LMDB's default (synchronous) durability, so anything a
 * caller acknowledges onwards survives kill -9 and power loss.
 *
 * Threads and processes: an am_queue may be shared by threads (the
 * environment is opened with MDB_NOTLS); several processes may open the
 * same store, LMDB serialises their writers.
 *
 * Errors: every function returns 0 or a negative AM_E* code from am_core.h
 * with a detail in am_error_detail(): AM_EFULL when the map is full (the
 * failed transaction is aborted, nothing already stored changes),
 * AM_ENOSTORE for a missing store, AM_EVERSION for a store written by an
 * incompatible version, AM_ESTORE for any other LMDB failure.
 */
#ifndef AM_QUEUE_H
#define AM_QUEUE_H

#include "am_core.h"

#define AM_QUEUE_VERSION        1
#define AM_QUEUE_MAX_GROUPS     32
#define AM_QUEUE_TOMB_GRACE_MS  (24ull * 3600 * 1000) /* clock skew margin */
#define AM_QUEUE_TRIM_BYTES     (8u << 20) /* see am_queue_trim */

typedef struct am_queue am_queue;

typedef struct am_queue_options {
	uint64_t map_size; /* bytes; 0: AM_STORE_MAP_SIZE env or 1 GiB */
	bool create;       /* create the folder and store when missing */
	bool read_only;
} am_queue_options;

/* am_queue_open: open (or with create, make) the store in folder dir.
 * Errors: AM_ENOSTORE, AM_EVERSION, AM_EIO, AM_ESTORE, AM_ENOMEM. */
int am_queue_open(am_queue **out, const char *dir,
    const am_queue_options *opt) AM_MUST_CHECK;
void am_queue_close(am_queue *q);

/* ---- who this node is (used to decide what enters the inbox) ---- */

int am_queue_set_self(am_queue *q, const uint8_t pk[static AM_PK_BYTES]);
/* Errors: AM_ENOTFOUND when the store has no owner yet. */
int am_queue_get_self(am_queue *q, uint8_t pk[static AM_PK_BYTES]);
int am_queue_set_position(am_queue *q, const am_position *pos);
int am_queue_get_position(am_queue *q, am_position *pos);
/* groups: up to AM_QUEUE_MAX_GROUPS names, each checked with am_tag_check */
int am_queue_set_groups(am_queue *q, char groups[][AM_TAG_MAX + 1], size_t n);
int am_queue_get_groups(am_queue *q, char groups[][AM_TAG_MAX + 1],
    size_t *n);

/* ---- putting envelopes in ---- */

typedef struct am_queue_item {
	const uint8_t *raw; /* borrowed for the call */
	size_t len;
} am_queue_item;

typedef struct am_queue_result {
	int rc;                   /* 0 stored, or why not (AM_EDUP ...) */
	uint8_t id[AM_ID_BYTES];  /* valid when the outer layer parsed */
	bool inboxed;             /* entered the local inbox */
	/* Stored, and addressed to this node alone or to a group it is in
	 * (not a receipt): the caller, who holds the node's key, owes the
	 * sender a receipt
	 * (am_sync_receipt_spec). src and expires_ms are the original's. */
	bool receipt_due;
	uint8_t src[AM_PK_BYTES];
	uint64_t expires_ms;
	/* a receipt for an envelope held here, to one node, signed by a key
	 * that is not that node's: stored (it is carried) but it proves
	 * nothing; the caller counts and audits it */
	bool receipt_foreign;
	char detail[160];         /* why not, in words, when rc != 0 */
} am_queue_result;

/* am_queue_put_batch: verify and store n envelopes in one transaction
 * (group commit). Order of checks per item: outer parse, then the dedup
 * and tombstone look-up (before any signature check, so replays cost a
 * hash and a B-tree probe), then full decode + signature, then expiry.
 * res[i].rc says per item: 0, AM_EDUP, AM_ETOMBSTONE, AM_EEXPIRED or a
 * decode error. Returns 0 when the transaction committed (some items may
 * still have been refused), or AM_EFULL / AM_ESTORE when it could not:
 * on AM_EFULL the prefix that fits is committed and the rest get AM_EFULL.
 * `now_ms` decides expiry. */
int am_queue_put_batch(am_queue *q, const am_queue_item *items, size_t n,
    uint64_t now_ms, am_queue_result *res) AM_MUST_CHECK;

/* am_queue_put_own: store envelopes this process just made and decoded
 * (am_envelope_create_decoded): no parse, no signature check, one
 * transaction. res[i].rc is 0 or AM_EDUP / AM_ETOMBSTONE. Returns as
 * am_queue_put_batch. The envelopes stay the caller's. */
int am_queue_put_own(am_queue *q, const am_envelope *envs, size_t n,
    uint64_t now_ms, am_queue_result *res) AM_MUST_CHECK;

/* ---- pipelined puts ---- */

/* A write pipe overlaps the caller's work (verifying received envelopes,
 * or signing its own) with the commit of the previous batch, which runs
 * on one writer thread. Results are the same as the plain calls'.
 *
 * am_queue_pipe_put_batch / _put_own: prepare this batch on the calling
 * thread (parse, dedup, verify), wait for the previous batch to commit,
 * hand this one to the writer, and return. The return value is the
 * commit result of the *previous* batch (0 if none), or this batch's
 * preparation error. items/envs and res must stay untouched until the next
 * put, flush or close on the pipe returns: res is filled by the writer.
 * Only one thread may use a pipe; the store may be used by others.
 *
 * am_queue_pipe_flush: wait for the batch in flight; returns its result.
 * am_queue_pipe_close: flush, stop the thread, free; returns the last
 * result. Errors: as am_queue_put_batch, and AM_ENOMEM when the thread
 * cannot start. */
typedef struct am_queue_pipe am_queue_pipe;
int am_queue_pipe_open(am_queue_pipe **out, am_queue *q) AM_MUST_CHECK;
int am_queue_pipe_put_batch(am_queue_pipe *p, const am_queue_item *items,
    size_t n, uint64_t now_ms, am_queue_result *res);
int am_queue_pipe_put_own(am_queue_pipe *p, const am_envelope *envs, size_t n,
    uint64_t now_ms, am_queue_result *res);
int am_queue_pipe_flush(am_queue_pipe *p);
int am_queue_pipe_close(am_queue_pipe *p);

/* am_queue_put: one envelope; returns res.rc (0 when stored). */
int am_queue_put(am_queue *q, const uint8_t *raw, size_t len,
    uint64_t now_ms, am_queue_result *res) AM_MUST_CHECK;

/* ---- looking envelopes up ---- */

/* What the store keeps beside each envelope. */
typedef struct am_queue_meta {
	uint64_t created_ms, expires_ms, received_ms;
	uint32_t size;
	uint8_t priority;
	uint8_t hops_left;
	uint8_t dest_kind;           /* enum am_dest_kind */
	uint8_t flags;               /* AM_QF_* */
	uint64_t inbox_seq;          /* its unacked inbox entry, 0 if none */
} am_queue_meta;

#define AM_QF_OUTBOX   0x01 /* carried onward */
#define AM_QF_INBOX    0x02 /* entered the local inbox (maybe acked since) */
#define AM_QF_LOCAL    0x04 /* created on this node */

/* am_queue_has: 0 when held, AM_ETOMBSTONE when refused for good,
 * AM_ENOTFOUND otherwise. */
int am_queue_has(am_queue *q, const uint8_t id[static AM_ID_BYTES]);

/* am_queue_get: a malloc'd copy of the envelope bytes (caller frees) and,
 * when meta is not NULL, its metadata. Errors: AM_ENOTFOUND. */
int am_queue_get(am_queue *q, const uint8_t id[static AM_ID_BYTES],
    uint8_t **raw, size_t *len, am_queue_meta *meta) AM_MUST_CHECK;

/* Iterators call fn inside one read transaction, in index order, until it
 * returns non-zero (that value is returned). fn must not call back into
 * the store's write functions. */
typedef int (*am_queue_visit_fn)(void *ctx, const uint8_t id[AM_ID_BYTES],
    const am_queue_meta *meta);

/* outbox order: priority 3..0, then created ascending, then id */
int am_queue_outbox_each(am_queue *q, am_queue_visit_fn fn, void *ctx);
/* reconciliation order: (created, id) ascending over every held envelope */
int am_queue_each(am_queue *q, am_queue_visit_fn fn, void *ctx);

/* am_queue_each_after: like am_queue_each, from just after (created, id)
 * (all zeros: from the start), without trimming the mapping: for a
 * watcher that follows what is added. */
int am_queue_each_after(am_queue *q, uint64_t created_ms, const uint8_t id[static AM_ID_BYTES],
    am_queue_visit_fn fn, void *ctx);
/* am_queue_generation: a number that changes whenever any process
 * commits to the store (LMDB's last transaction id). */
uint64_t am_queue_generation(am_queue *q);

/* am_queue_known_each: every id this store holds or refuses for good
 * (held envelopes, then tombstones), in no useful order, in one read
 * transaction: what a summary for a stick needs. */
typedef int (*am_queue_id_fn)(void *ctx, const uint8_t id[AM_ID_BYTES]);
int am_queue_known_each(am_queue *q, am_queue_id_fn fn, void *ctx);

/* ---- the inbox ---- */

typedef struct am_queue_inbox_entry {
	uint64_t seq;               /* arrival order, never reused */
	uint8_t id[AM_ID_BYTES];
} am_queue_inbox_entry;

/* am_queue_inbox_list: up to max unacked entries with seq > after, oldest
 * first, into out; *n is how many. At-least-once: an entry is listed again
 * until it is acked. */
int am_queue_inbox_list(am_queue *q, uint64_t after, am_queue_inbox_entry *out,
    size_t max, size_t *n);

/* am_queue_inbox_ack: the consumer is done with id. It never appears in
 * the inbox again. An envelope addressed to this node alone is then
 * deleted and tombstoned (delivered); a group or broadcast one stays for
 * carrying until it expires. Errors: AM_ENOTFOUND (not in the inbox). */
int am_queue_inbox_ack(am_queue *q, const uint8_t id[static AM_ID_BYTES],
    uint64_t now_ms);

/* ---- removal ---- */

enum am_tomb_reason {
	AM_TOMB_DELETED = 1,
	AM_TOMB_DELIVERED = 2,
	AM_TOMB_EXPIRED = 3,
};

/* am_queue_delete: drop a held envelope and tombstone it so it is not
 * accepted again (until its expiry plus AM_QUEUE_TOMB_GRACE_MS). A
 * tombstone can also be set for an id never held (a receipt seen first).
 * expires_ms is used only when the envelope is not held. */
int am_queue_delete(am_queue *q, const uint8_t id[static AM_ID_BYTES],
    enum am_tomb_reason why, uint64_t expires_ms, uint64_t now_ms);

typedef struct am_queue_gc_stats {
	uint64_t expired;      /* envelopes removed */
	uint64_t tombs_freed;  /* tombstones past their keep time */
} am_queue_gc_stats;

/* am_queue_gc: remove expired envelopes (tombstoning them) and forget
 * tombstones whose keep time has passed, in bounded transactions. */
int am_queue_gc(am_queue *q, uint64_t now_ms, am_queue_gc_stats *st);

/* am_queue_trim: release this process's mapping of store pages it has
 * touched (they remain in the page cache). Called by the store itself
 * after every AM_QUEUE_TRIM_BYTES written; long readers (walks over the
 * whole outbox) may call it too. Linux only; a no-op elsewhere. The MDB
 * map must not be in use by a write through MDB_WRITEMAP (it never is). */
void am_queue_trim(am_queue *q);

/* am_queue_delivered: 0 when a receipt for id signed by `by` has been
 * seen here, AM_ENOTFOUND otherwise. Whether `by` may give it (the
 * envelope's destination, or a member for a group) is the caller's
 * question: receipts are kept per signer, so nobody's stands in for
 * anybody else's. */
int am_queue_delivered(am_queue *q, const uint8_t id[static AM_ID_BYTES],
    const uint8_t by[static AM_PK_BYTES]);
/* am_queue_receipts: the signers of the receipts seen for id, up to cap
 * (*n the count); checked[i] is true when the receipt was checked here
 * against the original (signed by its destination, or for a group or an
 * area by anyone answering for itself). */
int am_queue_receipts(am_queue *q, const uint8_t id[static AM_ID_BYTES], uint8_t (*signers)[AM_PK_BYTES],
    bool *checked, size_t cap, size_t *n);

/* ---- statistics ---- */

typedef struct am_queue_stats {
	uint64_t envelopes, bytes, outbox, inbox_unacked, tombstones, peers;
	uint64_t map_size, map_used;
	uint64_t by_priority[4];
	uint64_t oldest_created_ms, newest_created_ms;
} am_queue_stats;

/* am_queue_get_counts: the table sizes and map figures only (envelopes,
 * outbox, inbox_unacked, tombstones, peers, map_*), in constant time; the
 * rest is zero. For health checks and metrics, which are polled.
 * am_queue_get_stats: everything, walking every envelope's metadata for
 * bytes, by_priority and the oldest/newest times: O(envelopes). */
int am_queue_get_counts(am_queue *q, am_queue_stats *st);
int am_queue_get_stats(am_queue *q, am_queue_stats *st);

/* ---- peers ---- */

typedef struct am_queue_peer {
	uint8_t pk[AM_PK_BYTES];
	char name[AM_TAG_MAX + 1];   /* empty when unknown */
	char address[128];           /* last address reached, empty if none */
	uint64_t first_seen_ms, last_seen_ms;
	uint64_t contacts;
} am_queue_peer;

/* am_queue_peer_seen: create or update a peer: last_seen = now, contacts+1,
 * name and address replaced when non-empty. */
int am_queue_peer_seen(am_queue *q, const am_queue_peer *p, uint64_t now_ms);
int am_queue_peer_get(am_queue *q, const uint8_t pk[static AM_PK_BYTES],
    am_queue_peer *out);
typedef int (*am_queue_peer_fn)(void *ctx, const am_queue_peer *p);
int am_queue_peer_each(am_queue *q, am_queue_peer_fn fn, void *ctx);

/* ---- whom an envelope was pushed to (GET /v1/messages/{id}) ---- */

typedef struct am_queue_forward {
	uint8_t peer[AM_PK_BYTES];
	uint64_t at_ms;               /* the last push to that peer */
} am_queue_forward;

/* am_queue_forwarded_add: record, in one transaction, that the held ones
 * of ids[0..n) went to peer. The record is dropped with the envelope. */
int am_queue_forwarded_add(am_queue *q, const uint8_t *ids, size_t n,
    const uint8_t peer[static AM_PK_BYTES], uint64_t now_ms);
/* am_queue_forwarded_get: up to max peers id was pushed to. */
int am_queue_forwarded_get(am_queue *q, const uint8_t id[static AM_ID_BYTES],
    am_queue_forward *out, size_t max, size_t *n);

/* ---- revocations ---- */

/* An envelope of type "revocation" carries AM_REVOCATION_RECORD-byte
 * records: kind (AM_REVOKE_TOKEN: a token id, zero-padded to 32 bytes;
 * AM_REVOKE_KEY: a node key) then 32 bytes. Storing one records each
 * (what, signer) pair, whoever signed it; the caller decides whose
 * revocations count (its trusted gateway keys). */
#define AM_REVOCATION_RECORD 33
#define AM_REVOKE_TOKEN 1
#define AM_REVOKE_KEY   2
/* am_queue_revoked: 0 when what (32 bytes) was revoked by one of the n
 * signers (n x 32 bytes); AM_ENOTFOUND otherwise. */
int am_queue_revoked(am_queue *q, const uint8_t what[static AM_PK_BYTES], const uint8_t *signers, size_t n);

#endif /* AM_QUEUE_H */
