/*
 * am_sync.h — the public contract of src/sync: the protocol engine. It
 * does NO I/O: bytes in, bytes out, the caller passes `now`. What it owns:
 *   - the bundle file format (the sneakernet carrier): a streaming writer
 *     that emits bytes through a callback, and a damage-tolerant reader
 *     over a buffer the caller provides (a mapped file);
 *   - receipts: the envelope a final recipient owes the sender;
 *   - stick records: custody records and reconciliation summaries, both
 *     carried as ordinary signed envelopes;
 *   - reconciliation, the link handshake and frames, peer info, beacons,
 *     capability tokens, the push scheduler, and the link session engine
 *     (a whole session's state machine; the runtime pumps its bytes).
 * It must not open files, sockets or clocks; runtime does that.
 *
 * Errors are AM_E* codes from am_core.h with am_error_detail().
 */
#ifndef AM_SYNC_H
#define AM_SYNC_H

#include "am_core.h"
#include "am_queue.h"

/* ------------------------------------------------------------ receipts --- */

/* am_sync_receipts_create: one receipt covering n delivered envelopes
 * that came from the same sender (`to`): type "receipt", ref = the first
 * id, payload = the n ids (32 bytes each, n <= AM_RECEIPT_MAX_IDS),
 * priority high, expiring no earlier than expires_ms and at least an hour
 * from now. One signature acknowledges a whole stick's worth. */
#define AM_RECEIPT_MAX_IDS (AM_MAX_PAYLOAD / AM_ID_BYTES)
int am_sync_receipts_create(am_envelope *env, const uint8_t to[static AM_PK_BYTES],
    const uint8_t *ids, size_t n, uint64_t expires_ms, const am_identity *me,
    uint64_t now_ms) AM_MUST_CHECK;

/* am_sync_receipt_spec: fill spec with the receipt owed for a delivered
 * envelope (a put result with receipt_due): type "receipt", to the
 * original's sender, ref = its id, priority high, kept as long as the
 * original. The spec points into `delivered`, which must outlive its use. */
void am_sync_receipt_spec(am_envelope_spec *spec,
    const am_queue_result *delivered, uint64_t now_ms);

/* ------------------------------------------------------------ bundles --- */

#define AM_BUNDLE_VERSION     1
#define AM_BUNDLE_HDR_LEN     202
#define AM_BUNDLE_BLOCK_MAX   (4u << 20)   /* uncompressed bytes in a block */
#define AM_BUNDLE_BLOCK_FILL  (64u << 10)  /* a writer closes a block past this */
#define AM_BUNDLE_MAX_COUNT   10000000u

typedef struct am_bundle_info {
	uint8_t version;
	bool has_to;
	uint8_t writer[AM_PK_BYTES];
	uint8_t to[AM_PK_BYTES];
	uint64_t created_ms;
	uint32_t count;        /* envelopes the writer says it holds */
	uint32_t nblocks;
	uint64_t index_off;    /* offset of the id index block */
	uint64_t total_len;    /* file length the writer wrote */
	uint8_t hash[AM_ID_BYTES];
	/* what the reader found */
	bool header_ok;        /* magic, version and fields parse */
	bool sig_ok;           /* header signature verifies under writer */
	bool hash_ok;          /* contents hash matches */
	uint32_t found;        /* envelopes handed to the callback */
	uint32_t damaged;      /* damage reports made */
} am_bundle_info;

/* Writer. Bytes go out through fn in order; the first AM_BUNDLE_HDR_LEN
 * are a placeholder the caller must overwrite with the header that
 * am_bundle_writer_finish returns (the writer needs the contents hash
 * before it can sign). fn returns 0 or an AM_E* code, which aborts. */
typedef int (*am_sync_write_fn)(void *ctx, const void *buf, size_t len);
typedef struct am_bundle_writer am_bundle_writer;

/* to: NULL, or the one node this export is meant for (recorded only). */
int am_bundle_writer_new(am_bundle_writer **out, const am_identity *writer,
    uint64_t created_ms, const uint8_t *to, am_sync_write_fn fn, void *ctx)
    AM_MUST_CHECK;
/* am_bundle_writer_add: append one encoded envelope (id from peek/decode).
 * Blocks are compressed when that shrinks them. */
int am_bundle_writer_add(am_bundle_writer *w, const uint8_t *env, size_t len,
    const uint8_t id[static AM_ID_BYTES]) AM_MUST_CHECK;
/* am_bundle_writer_set_block: close blocks past `bytes` (1 KiB .. 4 MiB;
 * default AM_BUNDLE_BLOCK_FILL). Smaller blocks lose less to one bad
 * sector and compress a little worse. */
void am_bundle_writer_set_block(am_bundle_writer *w, size_t bytes);

/* am_bundle_writer_size: bytes the finished file would have if finished
 * now (emitted so far + the open block's worst case + the index). */
uint64_t am_bundle_writer_size(const am_bundle_writer *w, size_t extra_env);
uint32_t am_bundle_writer_count(const am_bundle_writer *w);
/* am_bundle_writer_finish: flush the last block and the index; write the
 * signed header into hdr. The file is then complete once hdr has been
 * written at offset 0. */
int am_bundle_writer_finish(am_bundle_writer *w,
    uint8_t hdr[static AM_BUNDLE_HDR_LEN]) AM_MUST_CHECK;
void am_bundle_writer_free(am_bundle_writer *w);

/* Reader. on_env gets every envelope record found, with its file offset
 * (the envelope itself is not verified here: the store does that). The
 * reader resynchronises after damage on the next block marker, so a bad
 * block loses only its own envelopes; on_damage gets each problem with
 * its offset. on_env may return non-zero to stop (that value is
 * returned). Returns 0 when the file is whole and its signature and hash
 * verify; otherwise AM_ETRUNC, AM_EMALFORMED or AM_EBADSIG (the first
 * problem) after reading all it could. */
typedef int (*am_bundle_env_fn)(void *ctx, const uint8_t *env, size_t len,
    uint64_t off);
typedef void (*am_bundle_damage_fn)(void *ctx, uint64_t off, const char *what);

int am_bundle_read(am_bundle_info *info, const uint8_t *buf, size_t len,
    am_bundle_env_fn on_env, am_bundle_damage_fn on_damage, void *ctx);

/* am_bundle_read_index: the header and the id index only (no blocks are
 * decompressed, nothing is hashed): what a stick holds, cheaply. *ids
 * points into buf (count * 32 bytes). The header signature is checked.
 * Errors: AM_ETRUNC, AM_EMALFORMED, AM_EBADSIG, AM_EVERSION. */
int am_bundle_read_index(am_bundle_info *info, const uint8_t *buf, size_t len,
    const uint8_t **ids, size_t *n);

/* ------------------------------------------------------- reconciliation --- */

/* Range-based set reconciliation (after A. Meyer's "Range-Based Set
 * Reconciliation" and the Negentropy protocol; our own encoding, see
 * docs/PROTOCOL.md section 10). Each side holds items (created ms, id)
 * sorted ascending; messages carry ranges of that order with a mode:
 * SKIP (same here), FINGERPRINT (16-byte digest of the range), IDLIST (all
 * ids the sender holds in the range) or NEEDS (reply to an IDLIST: the ids
 * of it the sender lacks). Traffic grows with the difference, not with the
 * sets. When both sides are done, each knows which of its ids the other
 * lacks (to push) and which ids it lacks (to expect). */

#define AM_RECON_VERSION    1
#define AM_RECON_BRANCH     16    /* sub-ranges per mismatching range */
#define AM_RECON_IDLIST_MAX 32    /* below this a range is sent as its ids */
#define AM_RECON_MAX_MSG    (16u << 20)
#define AM_RECON_MAX_RANGES 65536

typedef struct am_recon_item {
	uint64_t created_ms;
	uint8_t id[AM_ID_BYTES];
} am_recon_item;

typedef struct am_recon am_recon;

/* am_recon_new: a reconciliation over items (borrowed until freed; sorted
 * by (created, id), no duplicates). Errors: AM_EINVAL (unsorted), AM_ENOMEM. */
int am_recon_new(am_recon **out, const am_recon_item *items, size_t n) AM_MUST_CHECK;
void am_recon_free(am_recon *r);

/* am_recon_initiate: the first message (*out malloc'd, caller frees). */
int am_recon_initiate(am_recon *r, uint8_t **out, size_t *out_len) AM_MUST_CHECK;

/* am_recon_reply: process the peer's message and produce the answer.
 * *out_len 0 (and *out NULL) means there is nothing more to send; *done
 * says this side needs no further message. Errors: AM_EVERSION,
 * AM_EMALFORMED, AM_ETRUNC, AM_ELIMIT (a message over the limits),
 * AM_ENOMEM. A malformed message leaves the results untouched. */
int am_recon_reply(am_recon *r, const uint8_t *in, size_t in_len, uint8_t **out,
    size_t *out_len, bool *done) AM_MUST_CHECK;

/* Results: ids this side holds that the peer lacks (push them), and ids
 * the peer holds that this side lacks. Pointers valid until the next
 * reply or free; n * 32 bytes each. */
const uint8_t *am_recon_peer_lacks(const am_recon *r, size_t *n);
const uint8_t *am_recon_we_lack(const am_recon *r, size_t *n);

/* ------------------------------------------------------------- links --- */

/* The link's handshake and frames (see link.c and docs/PROTOCOL.md
 * section 12): both ends prove their Ed25519 identity, a per-deployment
 * network key must be held by both, fresh X25519 keys give the session
 * keys, and every frame after it is XChaCha20-Poly1305 with a counter
 * nonce. Trust in the peer's key (TOFU, PKI) is decided by the caller
 * once the link is open. */

#define AM_LINK_MAX_FRAME (AM_MAX_ENVELOPE + 65536)
#define AM_LINK_VERSION 1      /* in the hello; a peer on another version is refused by name */
#define AM_LINK_HELLO_LEN 68   /* handshake messages 1 and 2 */
#define AM_LINK_PROOF_LEN 112  /* handshake messages 3 and 4 */

typedef struct am_link am_link;

/* am_link_new: a link end; `me` and netkey are borrowed/copied. */
int am_link_new(am_link **out, const am_identity *me, const uint8_t netkey[static 32],
    bool initiator) AM_MUST_CHECK;
/* am_link_new_with_ephemeral: am_link_new with the given X25519 secret in
 * place of a random one, for the link transcript vector only
 * (tests/vectors/link.json): a fixed ephemeral key gives up forward
 * secrecy and makes links linkable, so no daemon or CLI path calls it. */
int am_link_new_with_ephemeral(am_link **out, const am_identity *me, const uint8_t netkey[static 32],
    bool initiator, const uint8_t eph_sk[static 32]) AM_MUST_CHECK;
void am_link_free(am_link *l);
/* am_link_start: the initiator's first message (*out malloc'd). */
int am_link_start(am_link *l, uint8_t **out, size_t *out_len) AM_MUST_CHECK;
/* am_link_on_handshake: feed the peer's handshake message; *out (maybe
 * NULL) is what to send next. Errors: AM_ENETKEY (another network key),
 * AM_EBADSIG (a bad proof), AM_EVERSION, AM_EMALFORMED (wrong length), AM_EINVAL (out of turn). A
 * failed link stays failed. */
int am_link_on_handshake(am_link *l, const uint8_t *in, size_t len, uint8_t **out,
    size_t *out_len) AM_MUST_CHECK;
bool am_link_open_p(const am_link *l);
/* am_link_peer: the peer's proven public key once open, else NULL. */
const uint8_t *am_link_peer(const am_link *l);
/* am_link_seal / am_link_open: one frame each way; *out malloc'd.
 * open errors: AM_ETRUNC, AM_ETRAILING, AM_ETOOBIG, AM_EBADSIG (altered,
 * replayed or reordered: the expected counter did not authenticate). */
int am_link_seal(am_link *l, uint8_t **out, size_t *out_len, const uint8_t *plain,
    size_t len) AM_MUST_CHECK;
int am_link_open(am_link *l, uint8_t **plain, size_t *plen, const uint8_t *frame,
    size_t len) AM_MUST_CHECK;

/* -------------------------------------------------------- stick records --- */

/* A custody record says which node touched a stick, when, and what it
 * added and took. It is an envelope of type "custody" (broadcast, not
 * stored by nodes) whose payload is a msgpack map:
 *   {"bundle": str (file added, or ""), "added": uint, "taken": uint,
 *    "taken_ids": bin (8-byte id prefixes, sorted), "store": uint}     */
typedef struct am_custody {
	char bundle[160];
	uint64_t added, taken, store_count;
	const uint8_t *taken_prefixes; /* taken * 8 bytes */
} am_custody;

int am_custody_create(am_envelope *env, const am_custody *c,
    const am_identity *node, uint64_t now_ms) AM_MUST_CHECK;
/* am_custody_decode: verify env (already decoded) is a custody record and
 * read it; taken_prefixes points into env. Errors: AM_EFIELD, AM_EMALFORMED. */
int am_custody_decode(am_custody *c, const am_envelope *env) AM_MUST_CHECK;

/* A summary says what a node holds or has refused for good, so the next
 * export to a stick can leave out what that node already has. Type
 * "summary", payload = sorted 8-byte id prefixes. A false "has" costs a
 * missed copy with probability ~ n / 2^64. */
int am_summary_create(am_envelope *env, const uint8_t *prefixes, size_t n,
    const am_identity *node, uint64_t now_ms) AM_MUST_CHECK;
/* am_summary_has: binary search of a decoded summary's prefixes. */
bool am_summary_has(const am_envelope *summary, const uint8_t id[static AM_ID_BYTES]);

/* ------------------------------------------------------ push scheduler --- */

/* am_push_order: reorder ids[0..k) (what the peer lacks, each one of
 * items[0..n), whose priorities are prio[0..n)) into push order: priority
 * 3 first, then oldest, then by id. Errors: AM_EINVAL (an id not among
 * the items), AM_ENOMEM. */
int am_push_order(uint8_t *ids, size_t k, const am_recon_item *items, const uint8_t *prio, size_t n) AM_MUST_CHECK;

/* ---------------------------------------------------------- peer info --- */

/* What each side says about itself in the first frame of an open link
 * ('N', docs/PROTOCOL.md section 13). Only the key is proven by the
 * handshake; the name is what TOFU pins to it. */
#define AM_PEER_INFO_MAX 8192
#define AM_PEER_CERT_MAX 4096
typedef struct am_peer_info {
	char name[AM_TAG_MAX + 1];    /* required */
	char role[16];                /* "node", "gateway" */
	char listen[128];             /* where it accepts links; "" none */
	am_position pos;              /* fix and zone tags */
	uint8_t ngroups;
	char groups[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
	uint64_t outbox;              /* envelopes it carries */
	char cert[AM_PEER_CERT_MAX + 1]; /* PKI: its provisioning certificate (a token), "" none */
	char instance[17];            /* this run of the daemon (16 hex), "" none: tells the
	                               * two gateways of a pair, which share one key, apart */
} am_peer_info;

/* am_peer_info_encode: *out malloc'd (caller frees). */
int am_peer_info_encode(uint8_t **out, size_t *out_len, const am_peer_info *pi) AM_MUST_CHECK;
/* am_peer_info_decode: strict types and tag syntax; unknown keys ignored.
 * Errors: AM_ETOOBIG, AM_ETRUNC, AM_ETRAILING, AM_EMALFORMED, AM_ELIMIT,
 * AM_EFIELD (named). On error *pi is zeroed. */
int am_peer_info_decode(am_peer_info *pi, const uint8_t *buf, size_t len) AM_MUST_CHECK;

/* ------------------------------------------------------- link sessions --- */

/* The link session as a state machine without I/O (session.c,
 * docs/PROTOCOL.md section 12): the caller moves bytes, reads and stores
 * envelopes and decides trust; the engine says what to send, what to
 * store and when a phase ends. Frames after the handshake (plaintext,
 * inside the link's AEAD), first byte the type:
 *   'N' peer info (the first frame each way)  'X' refused: why, in words
 *   'R' reconciliation message   'F' reconciliation finished
 *   'E' envelopes: u32 count, then count x (u32 length, bytes), big-endian
 *   'D' done sending   'C' everything received is committed
 *   'K' keepalive (the live phase)
 * A typical session, the dialer first: >N <N >R <R >F >E >D <E <D >C <C,
 * then (live) E and K both ways until a side closes.
 *
 * Threads: during the push and live phases the send calls
 * (am_session_push*, am_session_keepalive, am_session_tick) and the
 * receive calls (am_session_want, am_session_received,
 * am_session_stored) may run on two threads at once; every other call
 * runs alone. am_session_stored and am_session_receipts share the list of
 * receipts owed: a caller on two threads serializes those two. */

#define AM_SESSION_BATCH 256   /* envelopes per 'E' frame, at most */
#define AM_SESSION_ROUNDS 256  /* reconciliation rounds, at most */

typedef struct am_session am_session;
typedef struct am_session_batch am_session_batch;

enum am_session_event {
	AM_SESSION_NOTHING = 0,
	AM_SESSION_PEER,       /* the peer proved its key and said who it is: am_session_accept or _refuse */
	AM_SESSION_RECONCILED, /* each knows what the other lacks: push am_session_lacks() */
	AM_SESSION_STORE,      /* envelopes arrived: store step.batch, then am_session_stored */
	AM_SESSION_PEER_DONE,  /* the peer sent all it had for the first sync ('D') */
	AM_SESSION_SYNCED,     /* both sides committed what the first sync exchanged ('C' both ways) */
};

/* What one call produced: bytes to write (one or more sealed frames or a
 * handshake message, in order; malloc'd, the caller frees), then an event. */
typedef struct am_session_step {
	uint8_t *send;
	size_t send_len;
	enum am_session_event event;
	am_session_batch *batch;      /* AM_SESSION_STORE: owned by the caller (am_session_batch_free) */
	const uint8_t *sent_ids;      /* envelopes in the 'E' frames of send (sent_n x 32 bytes), */
	size_t sent_n;                /* valid until the next send call */
} am_session_step;

typedef struct am_session_config {
	const am_identity *me;        /* borrowed for the session's life */
	const uint8_t *netkey;        /* 32 bytes */
	bool initiator;               /* the dialer: it starts the handshake and reconciliation */
	bool live;                    /* stay open after the first sync */
	const am_peer_info *info;     /* what this side says; NULL: named by its key */
	uint64_t handshake_ms;        /* handshake + peer info within this of am_session_new's now */
	uint64_t keepalive_ms;        /* live: a 'K' after this long with nothing sent (0: never) */
	const uint8_t *ephemeral;     /* NULL (always, but for the session transcript vector): a random
	                               * X25519 secret; else these 32 bytes (am_link_new_with_ephemeral) */
} am_session_config;

/* What the session counted (the caller's report). */
typedef struct am_session_counts {
	uint64_t sent, received, inboxed, refused;
	uint64_t recon_out, recon_in, recon_rounds;
	uint64_t live_sent, live_received, receipts_foreign;
} am_session_counts;

int am_session_new(am_session **out, const am_session_config *c, uint64_t now_ms) AM_MUST_CHECK;
void am_session_free(am_session *s);
/* am_session_start: the initiator's hello (the responder's step is empty). */
int am_session_start(am_session *s, am_session_step *st) AM_MUST_CHECK;
void am_session_step_clear(am_session_step *st);
/* Receiving: am_session_want gives where the next *want bytes go (a
 * handshake message, a frame's length, a frame's body); after writing n
 * (1..*want) of them there, am_session_received takes them. Errors name
 * the problem: AM_ENETKEY (another network key), AM_EBADSIG (a bad
 * proof, an altered frame), AM_EVERSION (the peer's link version), AM_EMALFORMED (a frame
 * out of turn or badly formed), AM_ETOOBIG, AM_EUNTRUSTED (the peer
 * refused us: its reason), AM_ETIMEDOUT (the handshake and peer info took
 * longer than handshake_ms), AM_ELIMIT (reconciliation did not settle). */
uint8_t *am_session_want(am_session *s, size_t *want);
int am_session_received(am_session *s, size_t n, uint64_t now_ms, am_session_step *st) AM_MUST_CHECK;
/* when the handshake and peer info must be done (ms since the epoch); 0 after */
uint64_t am_session_deadline(const am_session *s);
/* the peer's proven key (NULL before) and what it said (after AM_SESSION_PEER) */
const uint8_t *am_session_peer(const am_session *s);
const am_peer_info *am_session_peer_info(const am_session *s);
/* After AM_SESSION_PEER: accept with what this side holds (items and
 * their priorities, borrowed until am_session_lacks has been read; the
 * initiator then sends the first reconciliation message), or refuse: an
 * 'X' naming why goes out and the session is over. */
int am_session_accept(am_session *s, const am_recon_item *items, const uint8_t *prio, size_t n,
    am_session_step *st) AM_MUST_CHECK;
void am_session_refuse(am_session *s, const char *why, am_session_step *st);
/* After AM_SESSION_RECONCILED: what the peer lacks, most urgent first,
 * then oldest (am_push_order); n x 32 bytes, valid until am_session_free. */
const uint8_t *am_session_lacks(const am_session *s, size_t *n);
/* Pushing: offer one envelope (its id) as the store holds it. It goes out if it
 * is carried on (in the outbox, a hop left, not expired at now_ms): its
 * copy spends a hop. Batches close at AM_SESSION_BATCH envelopes or
 * 1 MiB and never pass the frame limit; st gets the frames that closed.
 * The push calls belong to the push and live phases (else AM_EINVAL). */
int am_session_push(am_session *s, const uint8_t id[AM_ID_BYTES], const uint8_t *raw, size_t len,
    const am_queue_meta *m, uint64_t now_ms, am_session_step *st) AM_MUST_CHECK;
/* the batch so far goes out now (live: after each round of news) */
int am_session_push_flush(am_session *s, uint64_t now_ms, am_session_step *st) AM_MUST_CHECK;
/* the first sync's push is over: what is batched, then 'D' */
int am_session_push_end(am_session *s, uint64_t now_ms, am_session_step *st) AM_MUST_CHECK;
/* live: a keepalive if nothing went out for keepalive_ms (before the live phase: nothing) */
int am_session_tick(am_session *s, uint64_t now_ms, am_session_step *st) AM_MUST_CHECK;
/* am_session_stored: the store's results for a batch (res[i] for item i):
 * counted, and the receipts they owe noted. *foreign: how many were
 * receipts signed by a key that may not give them. */
int am_session_stored(am_session *s, const am_session_batch *b, const am_queue_result *res,
    uint64_t *foreign) AM_MUST_CHECK;
/* am_session_commit: everything received is stored and this side's push
 * ended ('D'): 'C' goes out; the step says SYNCED when the peer's 'C'
 * came first. Errors: AM_EINVAL when called too soon. */
int am_session_commit(am_session *s, am_session_step *st) AM_MUST_CHECK;
bool am_session_synced(const am_session *s);
/* am_session_receipts: the receipts owed so far, one per sender (up to
 * AM_RECEIPT_MAX_IDS ids each), signed by me at now_ms; the list empties.
 * *envs malloc'd (*n of them; am_envelope_clear each, then free). */
int am_session_receipts(am_session *s, uint64_t now_ms, am_envelope **envs, size_t *n) AM_MUST_CHECK;
const am_session_counts *am_session_counts_get(const am_session *s);

/* A received batch: its envelopes, pointing into the frame it owns. */
size_t am_session_batch_count(const am_session_batch *b);
const am_queue_item *am_session_batch_items(const am_session_batch *b);
void am_session_batch_free(am_session_batch *b);

/* am_ebatch_parse: an 'E' frame's payload (after the type byte) into
 * items pointing into it. Errors: AM_EMALFORMED (a count of 0 or over
 * AM_SESSION_BATCH, an envelope cut short, bytes after the last). */
int am_ebatch_parse(const uint8_t *p, size_t len, am_queue_item items[static AM_SESSION_BATCH],
    uint32_t *count) AM_MUST_CHECK;

/* Receipts owed (a session's, or an import's): noted from store results,
 * made one receipt per sender. */
typedef struct am_owed_list {
	struct am_owed {
		uint8_t src[AM_PK_BYTES];
		uint8_t id[AM_ID_BYTES];
		uint64_t expires_ms;
	} *v;
	size_t n, cap;
} am_owed_list;
/* am_owed_note: remember what a put result owes (when receipt_due). */
int am_owed_note(am_owed_list *l, const am_queue_result *res) AM_MUST_CHECK;
/* am_owed_make: the receipts for the list (*envs malloc'd, *n of them);
 * the list empties. */
int am_owed_make(am_owed_list *l, const am_identity *me, uint64_t now_ms, am_envelope **envs,
    size_t *n) AM_MUST_CHECK;
void am_owed_free(am_owed_list *l);

/* ------------------------------------------------------ capability tokens --- */

/* Offline-verifiable, attenuable capability tokens (token.c, PROTOCOL.md
 * section 15). Rights are strings of ':'-separated segments ("send:group:
 * cranes", "call:crane-1:read_sensor", "read:inbox"); "*" in a held right
 * matches one segment, or the rest when last. */
#define AM_TOKEN_MAX_BLOCKS 8
#define AM_TOKEN_MAX_RIGHTS 32
#define AM_RIGHT_MAX        127
#define AM_TOKEN_ID_BYTES   16
#define AM_TOKEN_MAX_TEXT   16384

typedef struct am_token_block {
	uint64_t nbf_ms, exp_ms;
	uint8_t nrights;
	char rights[AM_TOKEN_MAX_RIGHTS][AM_RIGHT_MAX + 1];
	uint8_t next_pk[AM_PK_BYTES];
	bool bound;                       /* a call grant's last block ... */
	uint8_t call[AM_TOKEN_ID_BYTES];  /* ... naming its one call */
} am_token_block;

typedef struct am_token {
	uint8_t id[AM_TOKEN_ID_BYTES];
	uint8_t issuer[AM_PK_BYTES];
	char subject[AM_NODE_ID_LEN + 1];  /* "bearer", a node id, or a name */
	size_t nblocks;
	am_token_block blocks[AM_TOKEN_MAX_BLOCKS];
	uint8_t *body[AM_TOKEN_MAX_BLOCKS]; /* signed bytes of each block */
	size_t body_len[AM_TOKEN_MAX_BLOCKS];
	uint8_t sig[AM_TOKEN_MAX_BLOCKS][AM_SIG_BYTES];
	uint8_t proof[AM_SEED_BYTES];       /* lets the holder attenuate; none in a grant */
	bool grant;                         /* a call grant (am_grant_parse) */
} am_token;

bool am_right_covers(const char *have, const char *want);
/* am_token_issue: a new token as text (*out malloc'd); copy (may be NULL)
 * receives the decoded token (am_token_clear it). */
int am_token_issue(char **out, const am_identity *issuer, const char *subject, const char *const *rights,
    size_t n, uint64_t nbf_ms, uint64_t exp_ms, am_token *copy) AM_MUST_CHECK;
/* am_token_attenuate: the token with one more block: rights each covered
 * by the current ones, exp no later (0: the same). No gateway needed.
 * Errors: AM_EDENIED (a right or time wider than allowed), AM_ELIMIT. */
int am_token_attenuate(char **out, const am_token *t, const char *const *rights, size_t n,
    uint64_t exp_ms) AM_MUST_CHECK;
/* am_token_parse: decode and check every signature and the chain's
 * narrowing. Not whether the issuer is trusted, not the time: that is
 * am_token_check. Errors: AM_EVERSION, AM_ETOOBIG, AM_EMALFORMED,
 * AM_EFIELD, AM_EBADSIG (forged or altered), AM_EDENIED (a widening block). */
int am_token_parse(am_token *t, const char *text) AM_MUST_CHECK;
/* am_token_check: issuer among trusted (n keys), every block valid at now,
 * and (when action is not NULL) the last block allows action.
 * Errors: AM_EUNTRUSTED, AM_EEXPIRED, AM_EDENIED (named). */
int am_token_check(const am_token *t, const uint8_t *trusted, size_t ntrusted, uint64_t now_ms,
    const char *action) AM_MUST_CHECK;
void am_token_clear(am_token *t);

/* Call grants (PROTOCOL.md section 19): what travels in a tool_call
 * instead of the caller's token. am_token_bind appends to t (a bearer
 * token the caller presented, proof and all) one last block that allows
 * only action, ends at exp_ms (or the token's end, if sooner), names a
 * fresh random call id and hands the chain on to signer_pk, the key that
 * signs the call envelope. The text ("amg1." + base64url) carries no
 * proof: nobody can extend it, no API accepts it as a bearer token, and a
 * node takes it only inside an envelope signed by signer_pk. */
int am_token_bind(char **out, const am_token *t, const char *action, uint64_t exp_ms,
    const uint8_t signer_pk[static AM_PK_BYTES]) AM_MUST_CHECK;
/* am_grant_parse: decode a grant and check every signature and the
 * narrowing, as am_token_parse does; the last block (only) is bound.
 * Check it with am_token_check, and that the envelope's signer is
 * t->blocks[t->nblocks - 1].next_pk. Errors as am_token_parse. */
int am_grant_parse(am_token *t, const char *text) AM_MUST_CHECK;
/* am_token_revocation_id: block i's revocation id, BLAKE2b-128 of its
 * signature. Revoking it refuses the token whose last block it is and
 * every token attenuated from that one, but not the one it came from;
 * revoking the token id (block 0's "id") refuses the whole family. */
void am_token_revocation_id(uint8_t out[static AM_TOKEN_ID_BYTES], const am_token *t, size_t block);
/* am_token_revoked: q holds a revocation, by one of the trusted keys, of
 * the token's id or of any of its blocks' revocation ids. */
bool am_token_revoked(const am_token *t, am_queue *q, const uint8_t *trusted, size_t ntrusted);
void am_token_id_hex(char out[static 2 * AM_TOKEN_ID_BYTES + 1], const am_token *t);

/* am_revocation_create: a broadcast, urgent envelope of type "revocation"
 * signed by issuer (a gateway key) naming n records of
 * AM_REVOCATION_RECORD bytes (am_queue.h); it lives at least a year, or
 * until expires_ms if later. Every store that takes it records it; the
 * daemons then refuse what it names when its signer is one they trust. */
int am_revocation_create(am_envelope *env, const uint8_t *records, size_t n, uint64_t expires_ms,
    const am_identity *issuer, uint64_t now_ms) AM_MUST_CHECK;

/* ------------------------------------------------------------- beacons --- */

/* A discovery beacon (beacon.c, docs/PROTOCOL.md section 14): a node's key,
 * link port, time and name, signed with its key and MAC'd with a key
 * derived from the network key. At most AM_BEACON_MAX bytes. */
#define AM_BEACON_MAX 256
typedef struct am_beacon {
	uint8_t pk[AM_PK_BYTES];
	uint16_t port;             /* its link port (1..65535) */
	bool ws;                   /* links are ws://ADDR:port/mesh ("AMB2"), else tcp://ADDR:port ("AMB1") */
	uint64_t ts_ms;            /* sender's clock; receivers keep it rising */
	char name[AM_TAG_MAX + 1];
} am_beacon;

int am_beacon_encode(uint8_t *out, size_t cap, size_t *len, const am_beacon *b,
    const am_identity *me, const uint8_t netkey[static 32]) AM_MUST_CHECK;
/* Errors: AM_ETRUNC, AM_EVERSION (not a beacon), AM_EMALFORMED,
 * AM_ENETKEY (another network key), AM_EBADSIG (a forged signature),
 * AM_EFIELD. */
int am_beacon_decode(am_beacon *b, const uint8_t *buf, size_t len,
    const uint8_t netkey[static 32]) AM_MUST_CHECK;

#endif /* AM_SYNC_H */
