/*
 * am_runtime.h — the public contract of src/runtime: what the daemons and
 * the CLI run over the store and the protocol engine. So far: the stick
 * (a USB folder is a peer) — its layout, crash-safe bundle writes, and the
 * sync, import and export operations.
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

/* ---------------------------------------------------------------- links --- */

typedef struct am_link_options {
	uint64_t now_ms;
	const uint8_t *netkey;      /* 32 bytes, the deployment's network key */
	int timeout_ms;             /* per read or write; 0: 30 s */
	void (*ready)(void *ctx);   /* listen: called once listening */
	void *ctx;
} am_link_options;

typedef struct am_link_report {
	uint8_t peer[AM_PK_BYTES];  /* proven identity of the other side */
	uint64_t sent, received, inboxed, refused;
	uint64_t recon_out, recon_in, recon_rounds;
	uint64_t receipts_made;      /* for what was delivered here */
	char problem[200];
} am_link_report;

/* am_link_sync_dial / _listen: one sync session over nng's byte streams
 * (tcp://host:port, ipc:///path, ws://...): handshake with the network
 * key, reconcile, push both ways at once, close. listen accepts one peer.
 * Trust in the peer's key is not checked yet (that is the trust work).
 * Errors: AM_EBADSIG (wrong network key, bad proof, altered frame),
 * AM_EIO (the connection), AM_ENOTFOUND (nobody listening), store errors. */
int am_link_sync_dial(am_queue *q, const am_identity *me, const char *url,
    const am_link_options *o, am_link_report *r);
int am_link_sync_listen(am_queue *q, const am_identity *me, const char *url,
    const am_link_options *o, am_link_report *r);

/* am_netkey_parse: a network key given as 64 hex characters, or @FILE
 * holding them. Errors: AM_EFIELD, AM_EIO. */
int am_netkey_parse(uint8_t key[static 32], const char *arg) AM_MUST_CHECK;

/* A listening link endpoint that serves one session at a time (the
 * daemons' loop). serve waits up to wait_ms (<= 0: forever) for a peer and
 * runs one session; AM_ENOTFOUND when nobody came in time. */
typedef struct am_link_server am_link_server;
int am_link_server_open(am_link_server **out, const char *url) AM_MUST_CHECK;
int am_link_server_serve(am_link_server *sv, am_queue *q, const am_identity *me,
    const am_link_options *o, am_link_report *r, int wait_ms);
void am_link_server_close(am_link_server *sv);

/* ----------------------------------------------------------------- api --- */

/* The messages API (api.c) over an nng HTTP server the daemon owns. */
typedef struct am_api {
	am_queue *q;
	const am_identity *me;
	char token[65];             /* bearer token; "" = none (loopback only) */
	void (*on_new)(void *ctx);  /* called after a message was stored */
	void *ctx;
} am_api;

struct nng_http_server;
int am_api_register(struct nng_http_server *srv, am_api *api) AM_MUST_CHECK;

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

#endif /* AM_RUNTIME_H */
