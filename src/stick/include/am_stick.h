/*
 * am_stick.h — the public contract of src/stick: a USB folder is a peer.
 * Its layout, crash-safe bundle writes, and the sync, import and export
 * operations.
 *
 * Stick layout (docs/PROTOCOL.md section 9):
 *   PATH/AGENTMESH/bundles/<created>-<writer16>-<rand>.amb   bundles
 *   PATH/AGENTMESH/custody/<time>-<node16>-<rand>.env        custody records
 *   PATH/AGENTMESH/summaries/<node id>.env                   latest summary per node
 * Every file is written under a temporary name, fsynced and renamed, so a
 * stick pulled out mid-write shows the previous state plus, at worst, a
 * stray "*.tmp.*" file that readers ignore.
 */
#ifndef AM_STICK_H
#define AM_STICK_H

#include "am_core.h"
#include "am_queue.h"
#include "am_net.h"

#include <stdbool.h>

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

/* am_stick_dir: the AGENTMESH folder for a path (mount point or folder). */
void am_stick_dir(char *out, size_t cap, const char *path);

#endif /* AM_STICK_H */
