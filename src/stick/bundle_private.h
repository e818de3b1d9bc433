/*
 * bundle_private.h — private to src/stick: the importer
 * that bundle_import.c runs and bundle_io.c's stick sync drives.
 */
#ifndef AM_STICK_BUNDLE_PRIVATE_H
#define AM_STICK_BUNDLE_PRIVATE_H

#include "am_stick.h"
#include "am_net.h"

#define BATCH        1024
#define ARENA_LIMIT  (8u << 20)
#define RELEASE_STEP (8u << 20)
#define MARGIN       (64u << 10)  /* room for summary and custody, plus 8 bytes an id */

/* One batch being filled, or committing on the pipe's writer thread. Its
 * records are copied here because a block is decompressed into a scratch
 * buffer the next block reuses. */
struct batch {
	uint8_t *arena;
	size_t arena_len, arena_cap;
	am_queue_item items[BATCH];
	uint64_t offs[BATCH];
	am_queue_result res[BATCH];
	size_t n;
	const char *file;
};

struct importer {
	am_queue *q;
	am_queue_pipe *pipe;     /* verify on the cores while the last batch commits */
	const am_identity *me;
	const am_stick_options *o;
	am_stick_report *r;
	const char *file;
	struct batch b[2];
	int cur;                 /* the batch being filled; the other may be in flight */
	bool in_flight;
	uint8_t *taken;          /* 8-byte prefixes of what was imported */
	size_t ntaken, taken_cap;
	struct am_owed_list owed; /* receipts owed, sent once at the end */
	const uint8_t *map;
	size_t released;
	uint64_t total, base;
	int fatal;
};

/* the first problem, in words, into r->problem */
void bk_problem(am_stick_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int importer_init(struct importer *im, am_queue *q, const am_identity *me, const am_stick_options *o, am_stick_report *r);
int import_mapped(struct importer *im, const char *label, const uint8_t *buf, size_t len);
int importer_finish(struct importer *im);
void importer_free(struct importer *im);

#endif
