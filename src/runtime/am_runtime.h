/*
 * am_runtime.h — the public contract of src/runtime: what the daemons and
 * the CLI run over the store and the protocol engine. So far: the stick
 * (a USB folder is a peer) — its layout, crash-safe bundle writes, and the
 * sync, import and export operations; link sessions (one-shot or live),
 * the hub live sessions share, the TOFU trust store, the HTTP API and the
 * daemon.
 *
 * Stick layout (docs/PROTOCOL.md section 9):
 *   PATH/AGENTMESH/bundles/<created>-<writer16>-<rand>.amb   bundles
 *   PATH/AGENTMESH/custody/<time>-<node16>-<rand>.env        custody records
 *   PATH/AGENTMESH/summaries/<node id>.env                   latest summary per node
 * Every file is written under a temporary name, fsynced and renamed, so a
 * stick pulled out mid-write shows the previous state plus, at worst, a
 * stray "*.tmp.*" file that readers ignore.
 */
#ifndef AM_RUNTIME_H
#define AM_RUNTIME_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"

#include <stdatomic.h>

struct json_t; /* jansson's, for the few calls that take JSON */
typedef struct am_audit am_audit; /* below */

/* Called as work goes on: phase "import" or "export", units done of
 * total, and bytes moved so far. */
typedef void (*am_progress_fn)(void *ctx, const char *phase, uint64_t done,
    uint64_t total, uint64_t bytes);
/* Called for each damaged place found: file, offset, what. */
typedef void (*am_damage_fn)(void *ctx, const char *file, uint64_t off,
    const char *what);

typedef struct am_stick_options {
	uint64_t now_ms;
	uint64_t max_size;        /* bytes this sync may add; 0: free space */
	bool no_export;           /* import only */
	const uint8_t *to;        /* export: only what this node may want */
	uint64_t since_ms;        /* export: created at or after */
	am_progress_fn progress;
	am_damage_fn damage;
	void *ctx;
} am_stick_options;

typedef struct am_stick_report {
	/* import */
	uint64_t files, files_skipped;      /* bundle files; of them nothing new */
	uint64_t seen, imported, inboxed, known, expired, refused;
	uint64_t receipts_made, unknown_writers, damaged;
	uint64_t receipts_foreign;          /* signed by a key other than their envelope's destination */
	uint64_t bytes_read;
	/* export */
	uint64_t exported, export_bytes, left_behind, left_bytes;
	uint64_t pruned;                    /* dead bundle files removed */
	char bundle[160];                   /* file written ("" if none) */
	bool read_only, full;
	char problem[200];                  /* first problem, in words */
} am_stick_report;

/* am_stick_sync: import every bundle on the stick that holds something
 * the store lacks (each envelope verified on its own; known, tombstoned
 * and expired ones skipped; receipts owed are made and stored), then write
 * one new bundle with what the stick and the nodes summarised on it lack,
 * most urgent first, until o->max_size or the stick's free space; then the
 * node's summary and a custody record. Bundles holding nothing but ids this
 * node has tombstoned (delivered, expired or deleted: wanted by nobody) are
 * removed from the stick. path is the stick's mount point or
 * its AGENTMESH folder; the folder is created when missing.
 * Returns 0 when everything went (report filled either way); AM_ENOTFOUND
 * for a missing path, AM_EIO for a read-only stick (after importing),
 * AM_EFULL when not everything fit, AM_EBADSIG/AM_EMALFORMED/AM_ETRUNC
 * when a bundle was damaged (what verified was still imported). */
int am_stick_sync(am_queue *q, const am_identity *me, const char *path,
    const am_stick_options *o, am_stick_report *r);

/* am_bundle_import_file: import one bundle file ("-": standard input,
 * spooled to a temporary file). Same rules and results as a sync's import
 * half. */
int am_bundle_import_file(am_queue *q, const am_identity *me, const char *path,
    const am_stick_options *o, am_stick_report *r);

/* am_bundle_export_file: write one bundle of the outbox (o->since_ms,
 * o->to, o->max_size apply) to path ("-": standard output). A file is
 * written through a temporary name. */
int am_bundle_export_file(am_queue *q, const am_identity *me, const char *path,
    const am_stick_options *o, am_stick_report *r);

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

/* ---------------------------------------------------------------- trust --- */

/* TOFU trust store DATA/trust/trust_store.json (trust.c): the first key a
 * name proves is pinned; a changed key, or a pinned key under another
 * name, is refused with AM_EKEYCHANGED. Thread-safe. */
typedef struct am_trust am_trust;
/* Errors: AM_EIO, AM_EMALFORMED / AM_EFIELD (a damaged file is never
 * overwritten), AM_ENOMEM. */
int am_trust_open(am_trust **out, const char *data_dir) AM_MUST_CHECK;
void am_trust_close(am_trust *t);
const char *am_trust_path(const am_trust *t);
/* am_trust_list: a copy of the pins, {"NAME": {"key", "first_seen_ms",
 * "first_address"}} (the caller's to free) */
struct json_t *am_trust_list(am_trust *t);
/* am_trust_forget: remove the pin of a name, or of a key (64 hex), so the
 * next device to prove that name is pinned; the name forgotten in
 * forgotten. AM_ENOTFOUND when nothing matches. */
int am_trust_forget(am_trust *t, const char *name_or_key, char *forgotten, size_t cap) AM_MUST_CHECK;
int am_trust_check(am_trust *t, const char *name, const uint8_t pk[static AM_PK_BYTES],
    const char *address, uint64_t now_ms, bool *pinned_now) AM_MUST_CHECK;

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

/* ----------------------------------------------------------------- pki --- */

/* Provisioning bundles and certificates (provision.c). */
typedef struct am_provision {
	char name[AM_TAG_MAX + 1];
	uint8_t node_pk[AM_PK_BYTES];
	char *node_key_pem;               /* NULL when the key was made on the device */
	uint8_t gateway_pk[AM_PK_BYTES];
	uint8_t netkey[32];
	char cert[AM_PEER_CERT_MAX + 1];  /* presented on every link */
	uint64_t expires_ms;
} am_provision;
/* am_provision_create: a signed bundle as JSON text (*out malloc'd). */
int am_provision_create(char **out, const am_identity *gateway, const char *name,
    const uint8_t node_pk[static AM_PK_BYTES], const char *node_key_pem, const uint8_t netkey[static 32],
    const char *const *roles, size_t nroles, uint64_t now_ms, uint64_t valid_ms) AM_MUST_CHECK;
/* am_provision_parse / _load: read and check a bundle (the gateway's
 * signature, the certificate's issuer, subject and name). Errors:
 * AM_EMALFORMED, AM_EVERSION, AM_EFIELD, AM_EBADSIG, token errors. */
int am_provision_parse(am_provision *p, const char *text, size_t len) AM_MUST_CHECK;
int am_provision_load(am_provision *p, const char *path) AM_MUST_CHECK;
void am_provision_clear(am_provision *p);
/* am_pki_check_peer: in PKI mode, may the peer that proved pk and calls
 * itself name link with us? A trusted gateway key may; anyone else needs
 * a certificate from a trusted gateway for that key and name, valid now,
 * neither it nor the key revoked (q may be NULL). Errors: AM_EUNTRUSTED,
 * AM_EEXPIRED, AM_EREVOKED, each naming the reason. */
int am_pki_check_peer(const char *cert, const uint8_t pk[static AM_PK_BYTES], const char *name,
    const uint8_t *trusted, size_t ntrusted, am_queue *q, uint64_t now_ms);

/* --------------------------------------------------------------- tools --- */

/* JSON Schema subset check (schema.c); why names the first violation
 * with its path. Errors: AM_EFIELD. */
int am_schema_check(const struct json_t *schema, const struct json_t *value, char *why, size_t cap);
/* am_schema_validate: every "pattern" in schema compiles as ECMA-262;
 * else AM_EFIELD with its path in why ("input_schema.properties.x.pattern: ...") */
int am_schema_validate(const struct json_t *schema, char *why, size_t cap);

/* A node's tools (tools.c): one JSON file each in DATA/tools, see
 * docs/OPERATIONS.md. */
typedef struct am_tool am_tool;
typedef struct am_toolbox am_toolbox;
/* Errors: AM_EMALFORMED, AM_EFIELD (naming the file and field). A missing
 * folder is an empty toolbox. */
int am_toolbox_load(am_toolbox **out, const char *dir) AM_MUST_CHECK;
void am_toolbox_free(am_toolbox *tb);
const am_tool *am_toolbox_find(const am_toolbox *tb, const char *name);
size_t am_toolbox_count(const am_toolbox *tb);
/* [{name, description, input_schema, timeout_ms}] (new reference) */
struct json_t *am_toolbox_catalog(const am_toolbox *tb);
const struct json_t *am_tool_schema(const am_tool *t);

typedef struct am_tool_run {
	char status[24];      /* ok failed timeout output_limit cancelled */
	int exit_code, signal;
	char *out, *err;      /* NUL-terminated, at most max_output bytes */
	size_t out_len, err_len;
	bool out_truncated, err_truncated;
	uint64_t duration_ms;
	bool contained;       /* ran in a PID namespace of its own (descendants end with it) */
	char why[200];
} am_tool_run;
/* am_tool_exec: run t once with args (see tools.c for the sandbox). 0 when
 * it ran (whatever it did: r->status); errors only when it could not be
 * started. Clear r with am_tool_run_clear. */
int am_tool_exec(const am_tool *t, const struct json_t *args, const char *call_id, const char *workflow_id,
    am_tool_run *r, const atomic_int *cancel);
void am_tool_run_clear(am_tool_run *r);

/* A tool_call envelope's payload (calls.c, PROTOCOL.md section 19). */
typedef struct am_tool_call {
	char tool[AM_TAG_MAX + 1];
	struct json_t *args;          /* an object (owned) */
	char *grant;                  /* the call grant that allows it (owned) */
	char workflow_id[AM_TAG_MAX + 1];
	uint64_t deadline_ms;
} am_tool_call;
/* Errors: AM_EMALFORMED, AM_EFIELD (named), AM_ETOOBIG. */
int am_tool_call_parse(am_tool_call *c, const uint8_t *payload, size_t len) AM_MUST_CHECK;
void am_tool_call_clear(am_tool_call *c);
/* the payload (malloc'd JSON text) */
char *am_tool_call_encode(const char *tool, const struct json_t *args, const char *grant, const char *workflow_id,
    uint64_t deadline_ms);

/* Jobs: the tool calls this daemon made, and their results (jobs.c). */
typedef struct am_jobs am_jobs;
/* called once for a waiting request: with the job (NULL if unknown) when
 * it is done, when the wait's deadline passed (job not done), or at stop
 * (stopping true); runs with the jobs lock held: answer, do not call back */
typedef void (*am_job_reply_fn)(void *ctx, struct json_t *job, bool stopping);
int am_jobs_open(am_jobs **out, const char *dir) AM_MUST_CHECK;
void am_jobs_close(am_jobs *j);
/* node: the one node the call went to (only its key's result counts),
 * NULL for a group or an area (target "group:G", "area...") */
int am_jobs_create(am_jobs *j, const char *id, const char *tool, const char *target, const char *workflow_id,
    const uint8_t *node, uint64_t now_ms, uint64_t deadline_ms) AM_MUST_CHECK;
/* result is consumed. AM_EDUP when that node's result is in already,
 * AM_ENOTFOUND for an unknown job. */
int am_jobs_result(am_jobs *j, const char *id, struct json_t *result, uint64_t now_ms);
struct json_t *am_jobs_get(am_jobs *j, const char *id);             /* a copy (new reference) or NULL */
/* the jobs (of workflow_id, NULL: all) in id order after `after` (NULL:
 * from the start), at most limit; next gets the id to continue after, ""
 * at the end (copies, as am_jobs_get: safe to read unlocked) */
struct json_t *am_jobs_list(am_jobs *j, const char *workflow_id, const char *after, size_t limit,
    char next[AM_ID_HEX_LEN + 1]);
int am_jobs_wait(am_jobs *j, const char *id, uint64_t deadline_ms, am_job_reply_fn fn, void *ctx);
void am_jobs_tick(am_jobs *j, uint64_t now_ms);

/* The dispatcher (runner.c): takes tool_call envelopes addressed here out
 * of the inbox and runs them (each at most once, recorded in DATA/calls
 * before it starts; one found running at start is reported interrupted),
 * answering with a signed tool_result; hands tool_result envelopes to the
 * jobs; keeps every node's tool catalog (tool_catalog envelopes) in
 * DATA/catalogs. */
typedef struct am_runner am_runner;
typedef struct am_runner_config {
	am_queue *q;
	const am_identity *me;
	am_hub *hub;
	am_audit *audit;
	am_toolbox *tools;        /* may be empty */
	am_jobs *jobs;
	const uint8_t *trusted;   /* gateway keys whose tokens allow calls */
	size_t ntrusted;
	const char *name;         /* this node's name (tokens may name it) */
	const char *data_dir;
	bool pki;                 /* results count only with a certificate */
	const char *cert;         /* ours (PKI), shown with each result; NULL none */
} am_runner_config;
int am_runner_start(am_runner **out, const am_runner_config *c) AM_MUST_CHECK;
void am_runner_stop(am_runner *r);
/* tool results refused since start (signed by a key that may not give them) */
uint64_t am_runner_results_refused(am_runner *r);
/* the catalogs known here: {node id: {"node_name", "tools": [...]}} (new ref) */
struct json_t *am_catalogs_load(const char *data_dir);

/* --------------------------------------------------------------- audit --- */

/* The hash-chained, signed audit log (audit.c, docs/OPERATIONS.md). */
typedef struct am_audit am_audit;
struct json_t;
/* am_audit_open: append to path (made with its folder, mode 0600),
 * continuing the chain from its last line. Errors: AM_EIO, AM_EMALFORMED
 * (the last line is damaged: verify the log, then move it aside). */
int am_audit_open(am_audit **out, const char *path, const am_identity *me) AM_MUST_CHECK;
void am_audit_close(am_audit *a);
const char *am_audit_path(const am_audit *a);
/* am_audit_set_sync: false skips the fdatasync per line (bulk tests only;
 * the daemons never do). */
void am_audit_set_sync(am_audit *a, bool sync);
/* am_audit_log: one record: event ("link_refused", "token_refused", ...),
 * subject (who or what it is about), workflow_id (may be NULL) and the
 * fields of details (a JSON object, consumed; may be NULL). a may be NULL
 * (nothing is logged). Thread- and process-safe. */
int am_audit_log(am_audit *a, const char *event, const char *subject, const char *workflow_id,
    struct json_t *details);

/* Refusals anyone can cause (a bad token, a wrong network key) at a
 * bounded cost (audit_limit.c): the first of each kind a minute in full,
 * the rest as one "<event>_repeated" record with their count. Takes
 * details. l may be NULL (nothing is written). */
typedef struct am_audit_limiter am_audit_limiter;
int am_audit_limiter_new(am_audit_limiter **out, am_audit *a) AM_MUST_CHECK;
void am_audit_limiter_free(am_audit_limiter *l); /* writes what it still counts */
int am_audit_refusal(am_audit_limiter *l, const char *event, const char *reason, const char *subject,
    struct json_t *details, uint64_t now_ms);

typedef struct am_audit_report {
	uint64_t lines;      /* lines that verified */
	uint64_t bad_line;   /* the first bad line (1-based), 0 if none */
} am_audit_report;
/* am_audit_verify: check every line's chain link and signature (and, when
 * want_node is not NULL, that this node wrote it). Errors: AM_EIO,
 * AM_EBADSIG naming the first bad line and what is wrong with it. */
int am_audit_verify(const char *path, const uint8_t *want_node, am_audit_report *r);

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
	int every_ms;               /* 0: 5 s */
} am_discovery_options;
/* fn runs on the discovery thread for each new, verified beacon from
 * another node, with the URL to dial. */
typedef void (*am_discovered_fn)(void *ctx, const am_beacon *b, const char *url);
int am_discovery_start(am_discovery **out, const am_discovery_options *o,
    am_discovered_fn fn, void *ctx) AM_MUST_CHECK;
void am_discovery_stop(am_discovery *d);
void am_discovery_counts(am_discovery *d, uint64_t *sent, uint64_t *accepted, uint64_t *refused);

/* ----------------------------------------------------------------- api --- */

/* The messages API (api.c) over the daemon's HTTP server (http_server.c). */
typedef struct am_api {
	am_queue *q;
	const am_identity *me;
	char token[65];             /* bearer token; "" = none (loopback only) */
	am_hub *hub;                /* stored messages are noted here (may be NULL) */
	atomic_bool waiting;        /* an inbox long-poll is waiting */
	uint8_t trusted[8 * AM_PK_BYTES]; /* gateway keys whose tokens count */
	size_t ntrusted;
	am_audit *audit;            /* token decisions (may be NULL) */
	am_audit_limiter *refusals; /* unauthenticated refusals, aggregated (may be NULL) */
	am_jobs *jobs;              /* tool calls made from here */
	am_toolbox *tools;          /* this node's own tools */
	const char *data_dir;
	const char *name;
} am_api;

/* http_server.c: the daemons' HTTP servers (libmicrohttpd behind our own
 * acceptor: connection caps with a per-address share, header and body
 * deadlines, refusals on the request head before a body is read).
 * Every limit has an environment variable (docs/OPERATIONS.md). */
#define AM_HTTP_HEADER_TIMEOUT_MS 10000  /* AM_HTTP_HEADER_TIMEOUT (s) */
#define AM_HTTP_BODY_TIMEOUT_MS 30000    /* AM_HTTP_BODY_TIMEOUT (s) */
#define AM_HTTP_IDLE_TIMEOUT_S 30        /* AM_HTTP_IDLE_TIMEOUT (s) */
#define AM_HTTP_MAX_CONNECTIONS 256      /* AM_HTTP_MAX_CONNECTIONS */
#define AM_HTTP_MAX_PER_ADDRESS 32       /* AM_HTTP_MAX_PER_ADDRESS */
#define AM_HTTP_BODY_BUDGET_MIB 64       /* AM_HTTP_BODY_BUDGET_MIB */
#define AM_HTTP_HEAD_MAX (32u << 10)     /* request line and headers */
typedef struct am_http_ex am_http_ex;     /* one request and its answer */
typedef struct am_http_server am_http_server;
typedef void (*am_http_fn)(am_http_ex *ex);
typedef struct {
	int header_timeout_ms; /* the first request head within this of connecting */
	int body_timeout_ms;   /* a whole body within this of its head */
	int idle_timeout_s;    /* no byte moving for this long, or no next request on a kept-alive connection: closed */
	int max_connections;   /* at once (kept under the fd limit) */
	int max_per_address;
	size_t body_budget;    /* bytes of bodies held at once, all requests */
} am_http_limits;
enum {
	AM_HTTP_REFUSED_HEADER_TIMEOUT,
	AM_HTTP_REFUSED_BODY_TIMEOUT,
	AM_HTTP_REFUSED_EVICTED,
	AM_HTTP_REFUSED_FULL,
	AM_HTTP_REFUSED_BUSY,
	AM_HTTP_REFUSED_KINDS
};
const char *am_http_refused_name(int kind);
/* the defaults, then AM_HTTP_* from the environment; an error names the variable */
int am_http_limits_from_env(am_http_limits *l) AM_MUST_CHECK;
/* am_env_long: *v from environment variable name when it is set (a whole
 * number lo..hi, else AM_EINVAL naming it); unset or empty leaves *v */
int am_env_long(const char *name, long lo, long hi, long *v) AM_MUST_CHECK;
/* binds host:port now (errors name it); routes are added, then start */
int am_http_server_new(am_http_server **out, const char *name, const char *host, int port, const am_http_limits *l)
    AM_MUST_CHECK;
/* method "GET"/"POST"/...; tree: path and everything under it; body_max
 * 0: no body taken; pre runs on the head, before any body is read, and
 * may answer (then fn never runs); fn answers now or later, from any
 * thread, exactly once. */
int am_http_route(am_http_server *s, const char *method, const char *path, bool tree, size_t body_max, am_http_fn pre,
    am_http_fn fn, void *data) AM_MUST_CHECK;
int am_http_server_start(am_http_server *s) AM_MUST_CHECK;
void am_http_server_free(am_http_server *s);
void am_http_server_counts(am_http_server *s, uint64_t refused[AM_HTTP_REFUSED_KINDS], size_t *open);
/* am_http_local: one request through srv's router, head checks, token hook
 * and handler, in this thread, with no socket (the fuzz targets' way in).
 * headers: name, value, ..., NULL. A handler that defers its answer gets
 * pending(ctx) called, which must make the answer come (say, by ticking
 * the jobs past their deadlines). The answer's body is the caller's to
 * free. Framing is not exercised: that is libmicrohttpd's. */
int am_http_local(am_http_server *srv, const char *method, const char *uri, const char *const *headers, const void *body,
    size_t len, void (*pending)(void *ctx), void *ctx, unsigned *status, char **reply, size_t *reply_len) AM_MUST_CHECK;
const am_http_limits *am_http_server_limits(const am_http_server *s);
/* http_relay.c: websocket upgrades on path are relayed to a link
 * listener on loopback port (set once it listens; 503 before) */
int am_http_relay(am_http_server *s, const char *path) AM_MUST_CHECK;
void am_http_relay_target(am_http_server *s, int port);
/* the request */
const char *am_http_method(const am_http_ex *ex);
const char *am_http_uri(const am_http_ex *ex); /* path?query, as sent */
const char *am_http_header(const am_http_ex *ex, const char *name);
const void *am_http_body(const am_http_ex *ex, size_t *len);
void *am_http_data(const am_http_ex *ex); /* the route's data */
/* the answer (the first one counts). body NULL: no body; session: an
 * Mcp-Session-Id header; allow: an Allow header. */
void am_http_answer(am_http_ex *ex, unsigned status, const char *type, const char *body, size_t len,
    const char *session, const char *allow);
/* http.c: the answers handlers give. reply_json consumes j (NULL: no
 * body); reply_error sends {"error": msg}. */
void am_http_reply(am_http_ex *ex, uint16_t status, const char *type, const char *body, const char *session);
void am_http_reply_json(am_http_ex *ex, uint16_t status, struct json_t *j);
void am_http_reply_json_session(am_http_ex *ex, uint16_t status, struct json_t *j, const char *session);
void am_http_reply_error(am_http_ex *ex, uint16_t status, const char *msg);
/* am_json_text: msg as a JSON string, invalid UTF-8 bytes as '?' (never NULL but out of memory) */
struct json_t *am_json_text(const char *msg);
bool am_http_query(const char *uri, const char *name, char *out, size_t cap);
struct json_t *am_http_json_body(am_http_ex *ex, char *err, size_t cap);
/* a pre hook for routes that need a token: answers 401 on the head
 * unless the Authorization header carries one that verifies (the data of
 * the route is the am_api) */
void am_api_pre_auth(am_http_ex *ex);
int am_api_register(am_http_server *srv, am_api *api) AM_MUST_CHECK;
/* am_api_check: the request on aio carries the development token or a
 * valid, unrevoked capability token from a trusted gateway that allows
 * action; otherwise it has been answered 401 (no or bad token) or 403
 * (not allowed), with the reason, audited, and AM_EDENIED is returned. */
int am_api_check(am_api *api, am_http_ex *ex, const char *action);
/* The same checks for callers that are not plain HTTP handlers (MCP, tool
 * calls): begin verifies the header value ("Bearer ..."; AM_EUNTRUSTED
 * with the reason: answer 401), allow checks one action (AM_EDENIED: 403);
 * both audit like the API. token is the capability token as presented
 * (NULL for the development token), to pass on with a call. */
typedef struct am_api_auth am_api_auth;
int am_api_auth_begin(am_api *api, const char *authorization, const char *action, am_api_auth **out);
int am_api_auth_allow(am_api *api, am_api_auth *a, const char *action, const char *workflow_id);
/* the caller's verified token (proof and all: it never leaves this
 * process), NULL for the development token */
const am_token *am_api_auth_token(const am_api_auth *a);
const char *am_api_auth_subject(const am_api_auth *a);
void am_api_auth_end(am_api_auth *a);
/* The MCP server (mcp.c) on its own port, over the same api state. */
typedef struct am_mcp am_mcp;
int am_mcp_start(am_mcp **out, am_api *api, const char *host, int port) AM_MUST_CHECK;
/* am_mcp_open: the same, its routes registered but no connection taken
 * (am_http_local serves it) */
int am_mcp_open(am_mcp **out, am_api *api, const char *host, int port) AM_MUST_CHECK;
void am_mcp_stop(am_mcp *m);
am_http_server *am_mcp_http(am_mcp *m); /* its HTTP server, for the metrics */
/* toolapi.c: GET /v1/tools, POST /v1/tools/call, GET /v1/jobs[/{id}] */
int am_toolapi_register(am_http_server *srv, am_api *api) AM_MUST_CHECK;
/* am_tools_call: the one path for a call from the HTTP API and MCP: check
 * the target and the right, make and store the tool_call envelope, open
 * its job. target: {"node": id-or-name} | {"group": g} | {"geo": spec} |
 * {"broadcast": true}. *job_id (65 bytes) gets the job. Errors with a
 * status: 400 (bad request, named), 403 (not allowed), 404 (unknown node),
 * 500. */
int am_tools_call(am_api *api, am_api_auth *a, const struct json_t *req, char job_id[65], int *status);

/* am_env_file_load: set each KEY=VALUE of a .env file that is not already
 * in the environment (envfile.c). A missing file is fine unless required.
 * Errors: AM_EIO, AM_EFIELD (names file and line). */
int am_env_file_load(const char *path, bool required) AM_MUST_CHECK;

/* am_daemon_main: the whole daemon (daemon.c); agent-mesh-node and
 * agent-mesh-gateway are this with their role. Returns the exit status. */
int am_daemon_main(bool gateway, int argc, char **argv);

/* am_file_map / am_file_unmap: a read-only mapping of a whole file. */
int am_file_map(const uint8_t **buf, size_t *len, const char *path) AM_MUST_CHECK;
void am_file_unmap(const uint8_t *buf, size_t len);

/* am_stick_dir: the AGENTMESH folder for a path (mount point or folder). */
void am_stick_dir(char *out, size_t cap, const char *path);

/* am_dir_list: sorted names in dir ending in suffix (no temporaries).
 * Free with am_dir_list_free. Errors: AM_ENOTFOUND, AM_EIO. */
int am_dir_list(char ***names, size_t *n, const char *dir, const char *suffix);
void am_dir_list_free(char **names, size_t n);

/* am_prune_dir: remove the files ending in suffix not changed for
 * older_than_ms. Job files and call records are kept AM_KEEP_RECORDS_MS:
 * a call older than that is refused by the store anyway (expired, or its
 * tombstone), so its record is no longer needed for at-most-once. */
#define AM_KEEP_RECORDS_MS (30ull * 24 * 3600 * 1000)
void am_prune_dir(const char *dir, const char *suffix, uint64_t older_than_ms);

#endif /* AM_RUNTIME_H */
