/*
 * am_net.h — the public contract of src/net: carrying the session engine
 * over nng. One-shot and live link sessions (the pump around
 * src/sync/session.c), the hub that live sessions share, UDP multicast
 * discovery, and storing the receipts owed for what links deliver.
 */
#ifndef AM_NET_H
#define AM_NET_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"

#include <stdatomic.h>

/* ------------------------------------------------------------------ hub --- */

/* What a daemon's live link sessions share (hub.c): a bounded ring of the
 * ids stored lately, each tagged with the session that brought it (0 for
 * this node's own), an inbox arrival counter for API long-polls, and the
 * open link streams, which am_hub_stop closes. Thread-safe. */
typedef struct am_hub am_hub;
struct nng_stream;
int am_hub_new(am_hub **out, size_t ring) AM_MUST_CHECK;
void am_hub_free(am_hub *h);
/* a fresh session tag (never 0) */
uint64_t am_hub_tag(am_hub *h);
/* the ring's current end: a cursor that sees only what comes later */
uint64_t am_hub_cursor(am_hub *h);
/* n ids stored (source: the session tag, 0 own), inboxed of them went to
 * the inbox; h may be NULL (then nothing happens). */
void am_hub_note(am_hub *h, const uint8_t *ids, size_t n, uint64_t source, size_t inboxed);
/* am_hub_next: up to max ids after *cursor not brought by session self,
 * waiting up to wait_ms for one. Errors: AM_ELIMIT (the cursor fell more
 * than the ring behind: reconcile instead), AM_ENOTFOUND (stopping). */
int am_hub_next(am_hub *h, uint64_t *cursor, uint64_t self, uint8_t *out, size_t max, int wait_ms, size_t *n);
/* am_hub_seen: id was noted lately (a cache: false can mean "forgotten") */
bool am_hub_seen(am_hub *h, const uint8_t id[static AM_ID_BYTES]);
/* make every am_hub_next waiting now return (with what it has) */
void am_hub_kick(am_hub *h);
uint64_t am_hub_inbox_seq(am_hub *h);
/* wait until the inbox counter moves past seen; false on timeout */
bool am_hub_wait_inbox(am_hub *h, uint64_t seen, int wait_ms);
int am_hub_attach(am_hub *h, struct nng_stream *s) AM_MUST_CHECK;
void am_hub_detach(am_hub *h, struct nng_stream *s);
size_t am_hub_links(am_hub *h);
void am_hub_stop(am_hub *h);
bool am_hub_stopping(am_hub *h);

/* ---------------------------------------------------------------- links --- */

typedef struct am_link_report am_link_report;

/* A handle to end a session from another thread (am_link_cancel_fire):
 * the daemon uses it to evict connections that have not finished their
 * handshake when too many wait. */
typedef struct am_link_cancel am_link_cancel;
am_link_cancel *am_link_cancel_new(void);
void am_link_cancel_free(am_link_cancel *c);
void am_link_cancel_fire(am_link_cancel *c);
bool am_link_cancel_fired(am_link_cancel *c);

/* the handshake and the peer's info must be done this soon after the
 * connection (default of am_link_options.handshake_ms) */
#define AM_LINK_HANDSHAKE_MS 5000

typedef struct am_link_options {
	uint64_t now_ms;
	const uint8_t *netkey;      /* 32 bytes, the deployment's network key */
	int timeout_ms;             /* per read or write; 0: 30 s */
	int handshake_ms;           /* handshake + peer info, in all; 0: AM_LINK_HANDSHAKE_MS */
	am_link_cancel *cancel;     /* may be NULL */
	void (*ready)(void *ctx);   /* listen: called once listening */
	void *ctx;
	/* Live: after the first sync the session stays open and pushes what
	 * is noted in the hub as it comes, until either side closes, the
	 * peer is silent for timeout_ms (keepalives go every timeout_ms/3),
	 * or resync_ms passes (then it ends cleanly so the next session
	 * reconciles). NULL: one sync, then close. */
	am_hub *hub;
	uint64_t resync_ms;
	const am_peer_info *info;   /* what this side says; NULL: named by its key */
	/* the peer's info arrived (r->peer and r->info set): return 0 to go
	 * on, or an error (with am_error_set) to refuse the link */
	int (*on_peer)(void *ctx, const am_link_report *r);
	/* the first sync finished: both stores hold what was exchanged */
	void (*on_synced)(void *ctx, const am_link_report *r);
	/* n receipts just stored from this peer were signed by a key other
	 * than their envelope's destination (carried, proving nothing) */
	void (*on_foreign_receipts)(void *ctx, const am_link_report *r, uint64_t n);
} am_link_options;

/* Why a session failed, as a value: the daemon's metrics and audit choose
 * by it, so rewording a message changes nothing (problem has the words). */
typedef enum am_link_cause {
	AM_LINK_OK = 0,
	AM_LINK_NETWORK_KEY,       /* the peer's hello fails the network key's MAC */
	AM_LINK_HANDSHAKE_CLOSED,  /* closed during the handshake: most often another network key */
	AM_LINK_BAD_PROOF,         /* a proof, identity signature or frame that does not verify */
	AM_LINK_MALFORMED,         /* bytes that break the protocol, or another link version */
	AM_LINK_HANDSHAKE_TIMEOUT, /* the handshake or the peer's info past its deadline */
	AM_LINK_EVICTED,           /* closed before its handshake finished, for a newer connection */
	AM_LINK_REFUSED_HERE,      /* this side's trust decision (on_peer) refused the peer */
	AM_LINK_KEY_CHANGED,       /* ... because a pinned name or key changed (AM_EKEYCHANGED) */
	AM_LINK_REFUSED_THERE,     /* the peer refused this side */
	AM_LINK_CONNECTION,        /* the connection failed, or went silent after the handshake */
	AM_LINK_OTHER,             /* the store, memory */
} am_link_cause;

struct am_link_report {
	am_link_cause cause;        /* AM_LINK_OK unless the session failed */
	uint8_t peer[AM_PK_BYTES];  /* proven identity of the other side */
	am_peer_info info;          /* what it said about itself */
	bool synced;                /* the first sync finished */
	uint64_t sent, received, inboxed, refused;
	uint64_t recon_out, recon_in, recon_rounds;
	uint64_t receipts_made;      /* for what was delivered here */
	uint64_t live_sent, live_received;
	uint64_t receipts_foreign;   /* receipts signed by a key that may not give them */
	char problem[200];
};

/* am_link_sync_dial / _listen: one session over nng's byte streams
 * (tcp://host:port, ipc:///path, ws://...): handshake with the network
 * key, peer info both ways (o->on_peer decides trust), reconcile, push
 * both ways at once, then close, or with o->hub stay live. listen accepts
 * one peer. Errors: AM_ENETKEY (another network key), AM_EBADSIG (bad
 * proof, altered frame), AM_EVERSION, AM_EUNTRUSTED or AM_EKEYCHANGED
 * (refused by on_peer here, or by the peer), AM_ETIMEDOUT, AM_EIO (the
 * connection), AM_ENOTFOUND (nobody listening), store errors; r->cause
 * says which, as a value. */
int am_link_sync_dial(am_queue *q, const am_identity *me, const char *url,
    const am_link_options *o, am_link_report *r);
int am_link_sync_listen(am_queue *q, const am_identity *me, const char *url,
    const am_link_options *o, am_link_report *r);

/* am_netkey_parse: a network key given as 64 hex characters, or @FILE
 * holding them. Errors: AM_EFIELD, AM_EIO. */
int am_netkey_parse(uint8_t key[static 32], const char *arg) AM_MUST_CHECK;
/* am_netkey_save: the key as am_netkey_parse's @FILE reads it (64 hex and
 * a newline), written whole, mode 0600; force replaces a file that is
 * there (else AM_EEXIST). */
int am_netkey_save(const char *path, const uint8_t key[static 32], bool force) AM_MUST_CHECK;
/* am_netkey_beside: the path of the deployment's network key that goes
 * with an identity key file: network.key in the same folder (a
 * gateway's DATA/identity.pem has DATA/network.key; the guide's
 * ./gateway_identity.pem has ./network.key). AM_ETOOBIG if it does not fit. */
int am_netkey_beside(char *out, size_t cap, const char *identity_path) AM_MUST_CHECK;
/* am_key_fingerprint: the first 16 hex digits of BLAKE2b-256 of a
 * 32-byte key: what two people compare to know they hold the same one */
void am_key_fingerprint(char out[static 17], const uint8_t key[static 32]);

/* A listening link endpoint (the daemons'): accept waits up to wait_ms
 * (<= 0: forever) for a connection (AM_ENOTFOUND when nobody came);
 * am_link_session runs one session on it and frees it. */
typedef struct am_link_server am_link_server;
int am_link_server_open(am_link_server **out, const char *url) AM_MUST_CHECK;
int am_link_server_port(am_link_server *sv); /* the tcp port it listens on (0: unknown) */
int am_link_server_accept(am_link_server *sv, struct nng_stream **s, int wait_ms);
void am_link_server_close(am_link_server *sv);
/* am_link_stream_bury: close s now, free it two seconds later (nng 1.5's
 * poller may still dispatch an event for it); NULL frees only what is due */
void am_link_stream_bury(struct nng_stream *s);
int am_link_session(struct nng_stream *s, bool initiator, am_queue *q, const am_identity *me,
    const am_link_options *o, am_link_report *r);

/* ----------------------------------------------------------- discovery --- */

/* UDP multicast beacons (discovery.c). */
typedef struct am_discovery am_discovery;
typedef struct am_discovery_options {
	const char *group_ip;       /* MESH_MULTICAST_IP, 239.255.42.99 */
	uint16_t port;              /* MESH_MULTICAST_PORT, 9999 */
	const char *if_ip;          /* MESH_MULTICAST_IF or NULL */
	const am_identity *me;
	const uint8_t *netkey;
	const char *name;
	uint16_t link_port;         /* 0: listen only, send no beacons */
	bool link_ws;               /* links on ws://.../mesh at link_port (the HTTP port), not tcp */
	int every_ms;               /* 0: 5 s */
} am_discovery_options;
/* fn runs on the discovery thread for each new, verified beacon from
 * another node, with the URL to dial. */
typedef void (*am_discovered_fn)(void *ctx, const am_beacon *b, const char *url);
int am_discovery_start(am_discovery **out, const am_discovery_options *o,
    am_discovered_fn fn, void *ctx) AM_MUST_CHECK;
void am_discovery_stop(am_discovery *d);
void am_discovery_counts(am_discovery *d, uint64_t *sent, uint64_t *accepted, uint64_t *refused);

/* ---------------------------------------------------------- receipts --- */

/* Receipts owed for envelopes delivered here (owed.c; the list and the
 * receipts themselves are src/sync's am_owed_*). */
/* am_owed_send: make one receipt per sender (am_owed_make), store them
 * in one transaction, empty the list; *made counts them; each stored
 * receipt is noted in hub (may be NULL) for live links. */
int am_owed_send(am_owed_list *l, am_queue *q, const am_identity *me,
    uint64_t now_ms, uint64_t *made, am_hub *hub);
/* am_owed_store: store receipts already made (envs[0..n), cleared and
 * freed here); as am_owed_send. */
int am_owed_store(am_envelope *envs, size_t n, am_queue *q, uint64_t now_ms, uint64_t *made, am_hub *hub);
/* am_owed_recover: receipts owed but never made (the process was killed
 * between storing an envelope and making its receipt): every unacked
 * inbox envelope addressed to this node alone without our receipt gets
 * one now. Run once at start, before any session. */
int am_owed_recover(am_queue *q, const am_identity *me, uint64_t now_ms, am_hub *hub, uint64_t *made);

#endif /* AM_NET_H */
