/*
 * trim.c — keeping a long-running writer's resident set small.
 *
 * LMDB reads through a shared read-only mapping of the whole file. Every
 * page a writer touches (the right edge of the time-keyed tables as it
 * moves, the id index's leaves) stays mapped in this process, so after a
 * large import its RSS approaches the store's size, though those pages are
 * only clean page cache. Reads add to it too: Linux maps up to 16 cached
 * neighbours on every page fault ("fault-around", which MADV_RANDOM does
 * not switch off), so a batch of random id look-ups maps far more than the
 * id index itself. On a phone or a Pi that RSS is what the OOM killer
 * reads. So every AM_QUEUE_TRIM_BATCH envelopes of a batch (look-ups and
 * writes alike), and every AM_QUEUE_TRIM_BYTES written, we tell the kernel
 * we no longer need the mapped pages: the data stays cached, the next
 * touch is a minor fault. Pointers LMDB holds into the map stay valid;
 * the mapping itself is untouched.
 *
 * Linux (and Android) only: the map's address comes from /proc/self/maps
 * (LMDB reports it only for MDB_FIXEDMAP), and MADV_DONTNEED on a shared
 * read-only file mapping drops page-table entries and nothing else.
 * Elsewhere this is a no-op (posix_madvise's DONTNEED is only advice).
 */
#include "queue_private.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Find the mapping that contains a pointer LMDB gave us into its map. */
void
am_q_find_map(am_queue *q)
{
#if defined(__linux__) && defined(MADV_DONTNEED)
	MDB_txn *txn = NULL;
	MDB_val k = {7, "version"}, v;
	FILE *f;
	char line[512];

	q->map_start = q->map_len = 0;
	if (mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if (mdb_get(txn, q->config, &k, &v) == 0 && (f = fopen("/proc/self/maps", "r")) != NULL) {
		uintptr_t p = (uintptr_t) v.mv_data;
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned long lo, hi;
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && p >= lo && p < hi) {
				q->map_start = lo;
				q->map_len = hi - lo;
				break;
			}
		}
		fclose(f);
	}
	mdb_txn_abort(txn);
#else
	(void) q;
#endif
}

/* Resident file-backed pages of this process, in bytes (Linux: the
 * "shared" field of /proc/self/statm), or 0 when unknown. */
static uint64_t
mapped_resident(void)
{
#if defined(__linux__)
	unsigned long size, resident, shared;
	FILE *f = fopen("/proc/self/statm", "r");
	int n = f ? fscanf(f, "%lu %lu %lu", &size, &resident, &shared) : 0;

	if (f)
		fclose(f);
	return n == 3 ? (uint64_t) shared * 4096 : 0;
#else
	return 0;
#endif
}

void
am_q_trim_check(am_queue *q)
{
	/* look every AM_QUEUE_TRIM_BATCH steps; drop the mapping only when
	 * it has actually grown past the budget (a trim costs re-faults) */
	if ((atomic_fetch_add_explicit(&q->trim_steps, 1, memory_order_relaxed) + 1) % AM_QUEUE_TRIM_BATCH != 0)
		return;
	if (atomic_load_explicit(&q->written_since_trim, memory_order_relaxed) >= AM_QUEUE_TRIM_BYTES || mapped_resident() > AM_QUEUE_MAP_BUDGET)
		am_queue_trim(q);
}

void
am_q_maybe_trim(am_queue *q, size_t batch)
{
	(void) batch;
	if (atomic_load_explicit(&q->written_since_trim, memory_order_relaxed) >= AM_QUEUE_TRIM_BYTES || mapped_resident() > AM_QUEUE_MAP_BUDGET)
		am_queue_trim(q);
}

void
am_queue_trim(am_queue *q)
{
#if defined(__linux__) && defined(MADV_DONTNEED)
	/* Safe without MDB_WRITEMAP: the mapping is read-only and shared, so
	 * only page-table entries are discarded, and readers in other threads
	 * fault the pages back in from the page cache. */
	if (q->map_len > 0)
		(void) madvise((void *) q->map_start, q->map_len, MADV_DONTNEED);
#endif
	atomic_store_explicit(&q->written_since_trim, 0, memory_order_relaxed);
}
