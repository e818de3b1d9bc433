/*
 * parallel.c — am_parallel_for: the one place threads are started for
 * CPU-bound work (hashing, signing, verifying batches).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"

#include <pthread.h>
#include <unistd.h>

#define MAX_WORKERS 8

struct slice_job {
	void (*fn)(void *ctx, size_t i0, size_t i1);
	void *ctx;
	size_t i0, i1;
};

static void *
slice_run(void *arg)
{
	struct slice_job *j = arg;

	j->fn(j->ctx, j->i0, j->i1);
	return NULL;
}

void
am_parallel_for(size_t n, void (*fn)(void *ctx, size_t i0, size_t i1), void *ctx)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t workers = cores < 1 ? 1 : cores > MAX_WORKERS ? MAX_WORKERS : (size_t) cores;
	struct slice_job jobs[MAX_WORKERS];
	pthread_t th[MAX_WORKERS];
	bool started[MAX_WORKERS] = {false};

	if (n == 0)
		return;
	if (workers > n / 8)
		workers = n / 8 > 0 ? n / 8 : 1; /* not worth a thread for a few */
	for (size_t w = 0; w < workers; w++) {
		jobs[w].fn = fn;
		jobs[w].ctx = ctx;
		jobs[w].i0 = n * w / workers;
		jobs[w].i1 = n * (w + 1) / workers;
	}
	for (size_t w = 1; w < workers; w++)
		started[w] = pthread_create(&th[w], NULL, slice_run, &jobs[w]) == 0;
	fn(ctx, jobs[0].i0, jobs[0].i1);
	for (size_t w = 1; w < workers; w++) {
		if (started[w])
			pthread_join(th[w], NULL);
		else
			fn(ctx, jobs[w].i0, jobs[w].i1);
	}
}
