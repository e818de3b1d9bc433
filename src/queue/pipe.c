/*
 * pipe.c — a two-stage put: the caller's thread parses, dedups and
 * verifies (or, for its own envelopes, only signs), while one writer
 * thread commits the previous batch. LMDB allows one writer at a time
 * anyway; this keeps the signing or verifying core busy instead of idle
 * through every fdatasync.
 *
 * One batch is in flight at most. Lock order: only p->mu, never held
 * across LMDB calls by the caller's side.
 */
#include "queue_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct am_queue_pipe {
	am_queue *q;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pending *pend;   /* batch in flight (owned), NULL when idle */
	size_t n;
	am_queue_result *res;   /* the caller's, until the batch commits */
	int last_rc;            /* commit result of the batch before */
	char last_detail[200];  /* its am_error_detail(), from the writer thread */
	bool stop;
};

static void *
writer(void *arg)
{
	am_queue_pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->pend == NULL && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->pend == NULL && p->stop)
			break;
		struct pending *pend = p->pend;
		size_t n = p->n;
		am_queue_result *res = p->res;
		pthread_mutex_unlock(&p->mu);
		int rc = am_q_commit_batch(p->q, pend, n, res);
		free(pend);
		pthread_mutex_lock(&p->mu);
		p->last_rc = rc;
		if (rc != 0) /* error details are per thread: carry it over */
			snprintf(p->last_detail, sizeof(p->last_detail), "%s", am_error_detail());
		p->pend = NULL;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
am_queue_pipe_open(am_queue_pipe **out, am_queue *q)
{
	am_queue_pipe *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a write pipe");
	p->q = q;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, writer, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return am_error_set(AM_ENOMEM, "cannot start the writer thread");
	}
	*out = p;
	return 0;
}

/* Wait until nothing is in flight; return that batch's commit result. */
static int
drain(am_queue_pipe *p)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	while (p->pend != NULL)
		pthread_cond_wait(&p->cv, &p->mu);
	rc = p->last_rc;
	p->last_rc = 0;
	if (rc != 0)
		am_error_set(rc, "%s", p->last_detail);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int
hand_over(am_queue_pipe *p, struct pending *pend, size_t n, am_queue_result *res)
{
	int rc = drain(p);

	pthread_mutex_lock(&p->mu);
	p->pend = pend;
	p->n = n;
	p->res = res;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Prepare on the calling thread (verification overlaps the previous
 * batch's commit), then hand over. */
static int
pipe_put(am_queue_pipe *p, am_q_prepare_fn prep, const void *in, size_t n, uint64_t now_ms, am_queue_result *res)
{
	struct pending *pend;
	int rc;

	if (n == 0)
		return drain(p);
	if ((pend = calloc(n, sizeof(*pend))) == NULL) {
		/* callers may free the previous batch's input once we return */
		(void) drain(p);
		return am_error_set(AM_ENOMEM, "out of memory for a batch of %zu", n);
	}
	if ((rc = prep(p->q, in, n, now_ms, res, pend)) != 0) {
		free(pend);
		int prev = drain(p);
		return prev ? prev : rc;
	}
	return hand_over(p, pend, n, res);
}

int
am_queue_pipe_put_batch(am_queue_pipe *p, const am_queue_item *items, size_t n, uint64_t now_ms,
    am_queue_result *res)
{
	return pipe_put(p, am_q_prep_items, items, n, now_ms, res);
}

int
am_queue_pipe_put_own(am_queue_pipe *p, const am_envelope *envs, size_t n, uint64_t now_ms, am_queue_result *res)
{
	return pipe_put(p, am_q_prep_own, envs, n, now_ms, res);
}

int
am_queue_pipe_flush(am_queue_pipe *p)
{
	return drain(p);
}

int
am_queue_pipe_close(am_queue_pipe *p)
{
	int rc;

	if (p == NULL)
		return 0;
	rc = drain(p);
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	return rc;
}
