/*
 * link_push.c — the envelopes of a link session, around the engine: the
 * first sync's push on its own thread (the engine batches and applies the
 * forwarding rule; this reads the store in the engine's order) and its
 * receipt into the store (verify and commit overlapping), then the live
 * phase (what the hub reports as new goes out, what comes in is committed
 * at once, receipts owed are made off the receiving path).
 */
#define _POSIX_C_SOURCE 200809L
#include "link_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- pushing ---- */

/* Offer one stored envelope to the engine and write what closes. Gone
 * since (delivered, expired) is skipped. *flushed counts frames written. */
static int
push_one(struct session *ss, const uint8_t id[AM_ID_BYTES], uint64_t now_ms, uint32_t *flushed)
{
	am_session_step st;
	uint8_t *raw = NULL;
	size_t len = 0;
	am_queue_meta m;
	int rc;

	if (am_queue_get(ss->q, id, &raw, &len, &m) != 0)
		return 0;
	rc = am_session_push(ss->e, id, raw, len, &m, now_ms, &st);
	free(raw);
	if (rc == 0) {
		*flushed += st.sent_n > 0;
		rc = lk_write(ss, &st);
	}
	am_session_step_clear(&st);
	return rc;
}

static void
sender_end(struct session *ss, int rc)
{
	ss->send_rc = rc;
	if (rc != 0)
		snprintf(ss->send_detail, sizeof(ss->send_detail), "%s", am_error_detail());
}

void *
lk_push(void *arg)
{
	struct session *ss = arg;
	am_session_step st = {0};
	size_t n = 0;
	const uint8_t *ids = am_session_lacks(ss->e, &n);
	uint32_t flushed = 0, trimmed = 0;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = push_one(ss, ids + i * AM_ID_BYTES, ss->o->now_ms, &flushed);
		/* reading by id maps each envelope's neighbours too
		 * (fault-around); a long push should not map the store */
		if (flushed / PUSH_TRIM_BATCHES != trimmed) {
			trimmed = flushed / PUSH_TRIM_BATCHES;
			am_queue_trim(ss->q);
		}
	}
	if (rc == 0 && (rc = am_session_push_end(ss->e, ss->o->now_ms, &st)) == 0)
		rc = lk_write(ss, &st);
	am_session_step_clear(&st);
	sender_end(ss, rc);
	ss->sender_done = 1;
	return NULL;
}

/* Account for one committed batch: the engine counts it and notes the
 * receipts owed; live links to others carry what was new at once. */
static int
stored(struct session *ss, const am_session_batch *b, const am_queue_result *res)
{
	uint64_t foreign = 0;
	size_t count = am_session_batch_count(b);
	int rc;

	pthread_mutex_lock(&ss->owed_mu);
	rc = am_session_stored(ss->e, b, res, &foreign);
	pthread_mutex_unlock(&ss->owed_mu);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < count; i++)
		if (res[i].rc == 0)
			am_hub_note(ss->o->hub, res[i].id, 1, ss->tag, res[i].inboxed);
	if (foreign > 0 && ss->o->on_foreign_receipts != NULL) {
		ss->r->receipts_foreign = am_session_counts_get(ss->e)->receipts_foreign; /* the receiver's own count */
		ss->o->on_foreign_receipts(ss->o->ctx, ss->r, foreign);
	}
	return 0;
}

/* Envelopes from the peer, verified by the store as from a stick. Two
 * batches are in hand: while the store's writer commits one, this thread
 * reads and verifies the next, so the socket, the verifying cores and the
 * commit overlap. A batch (and the frame it points into) lives until it
 * has committed. */
int
lk_receive(struct session *ss)
{
	am_queue_result (*res)[AM_SESSION_BATCH]; /* 2 x 64 KiB: too much for a small thread stack */
	am_session_batch *held[2] = {NULL, NULL};
	am_queue_pipe *pipe = NULL;
	int rc, cur = 0;

	if ((res = calloc(2, sizeof(*res))) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for receiving");
	if ((rc = am_queue_pipe_open(&pipe, ss->q)) != 0) {
		free(res);
		return rc;
	}
	for (;;) {
		am_session_step st;
		if ((rc = lk_read_event(ss, &st)) != 0)
			goto out;
		if (st.event == AM_SESSION_PEER_DONE)
			break;
		if (st.event != AM_SESSION_STORE) {
			am_session_step_clear(&st);
			rc = am_error_set(AM_EMALFORMED, "link: an event out of turn while receiving");
			goto out;
		}
		held[cur] = st.batch;
		st.batch = NULL;
		/* returns the previous batch's commit: account for it, free it */
		rc = am_queue_pipe_put_batch(pipe, am_session_batch_items(held[cur]), am_session_batch_count(held[cur]),
		    ss->o->now_ms, res[cur]);
		cur ^= 1;
		if (held[cur] != NULL) {
			int brc = stored(ss, held[cur], res[cur]);
			am_session_batch_free(held[cur]);
			held[cur] = NULL;
			if (rc == 0)
				rc = brc;
		}
		if (rc != 0)
			goto out;
	}
out:
	/* whatever happened, the batch in flight commits (or fails) before we
	 * return, so what we acknowledge with 'C' is really stored. After an
	 * error the session fails and nothing is acknowledged or receipted,
	 * so the last batch is not accounted for (its results may be unset). */
	{
		int frc = am_queue_pipe_close(pipe);
		cur ^= 1;
		if (rc == 0 && frc == 0 && held[cur] != NULL)
			frc = stored(ss, held[cur], res[cur]);
		am_session_batch_free(held[0]);
		am_session_batch_free(held[1]);
		if (rc == 0)
			rc = frc;
	}
	free(res);
	return rc;
}

/* End the sending thread th: close the stream and cancel its send until
 * it returns. Closing alone does not always wake a send in progress (an
 * ipc stream in nng 1.5 lets it run to its timeout, 30 s by default),
 * which held a thread and a socket per ended link. */
void
lk_stop_sender(struct session *ss, pthread_t th)
{
	ss->closing = 1;
	nng_stream_close(ss->s);
	while (!ss->sender_done) {
		struct timespec ts = {0, 1000000L};
		nng_aio_cancel(ss->tx_aio);
		nanosleep(&ts, NULL);
	}
	pthread_join(th, NULL);
}

/* ---- the live phase ---- */

/* Receipts for what arrived are made on the sending thread, off the
 * receiving path: while one is being signed and stored, what arrives
 * next gathers, so a busy link makes one receipt for many envelopes and
 * an idle one answers at once. Stored, they come back from the hub and go
 * out like anything else. */
static int
make_receipts(struct session *ss)
{
	am_envelope *envs = NULL;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&ss->owed_mu);
	rc = am_session_receipts(ss->e, am_now_ms(), &envs, &n);
	pthread_mutex_unlock(&ss->owed_mu);
	if (rc == 0)
		rc = am_owed_store(envs, n, ss->q, am_now_ms(), &ss->r->receipts_made, ss->o->hub);
	return rc;
}

/* Push what the hub reports as new (not what this session brought in),
 * with a keepalive when idle; stop when the receiving side ends, the hub
 * stops, this sender falls behind the ring, or resync time comes. */
static void *
live_push(void *arg)
{
	struct session *ss = arg;
	am_hub *hub = ss->o->hub;
	int ms = ss->o->timeout_ms ? ss->o->timeout_ms : 30000;
	uint64_t until = ss->o->resync_ms ? am_now_ms() + ss->o->resync_ms : UINT64_MAX;
	uint8_t *ids = malloc(AM_SESSION_BATCH * AM_ID_BYTES);
	am_session_step st = {0};
	uint32_t flushed = 0;
	int rc = ids == NULL ? am_error_set(AM_ENOMEM, "out of memory") : 0;

	while (rc == 0 && !ss->live_stop && am_now_ms() < until) {
		size_t n = 0;
		int wait = ms / 3 > 1000 ? 1000 : ms / 3;
		if ((rc = make_receipts(ss)) != 0 ||
		    (rc = am_hub_next(hub, &ss->cursor, ss->tag, ids, AM_SESSION_BATCH, wait, &n)) != 0)
			break;
		if (n == 0) {
			if ((rc = am_session_tick(ss->e, am_now_ms(), &st)) == 0)
				rc = lk_write(ss, &st);
			continue;
		}
		uint64_t now = am_now_ms();
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = push_one(ss, ids + i * AM_ID_BYTES, now, &flushed);
		if (rc == 0 && (rc = am_session_push_flush(ss->e, am_now_ms(), &st)) == 0)
			rc = lk_write(ss, &st);
	}
	am_session_step_clear(&st);
	if (rc == AM_ENOTFOUND) /* the hub is stopping: a clean end */
		rc = 0;
	sender_end(ss, rc);
	/* wakes the receiving side (blocked on the socket): closing alone
	 * does not end a receive already waiting (see lk_stop_sender) */
	ss->closing = 1;
	nng_stream_close(ss->s);
	nng_aio_cancel(ss->rx_aio);
	free(ids);
	ss->sender_done = 1;
	return NULL;
}

/* Receive live batches and commit each at once (no pipelining: latency
 * matters more than throughput here), note them in the hub, and wake the
 * sender for the receipts owed. Returns 0 when the link ended normally. */
static int
live_receive(struct session *ss)
{
	am_queue_result *res = calloc(AM_SESSION_BATCH, sizeof(*res));
	int rc = res == NULL ? am_error_set(AM_ENOMEM, "out of memory") : 0;

	while (rc == 0) {
		am_session_step st;
		if ((rc = lk_read_event(ss, &st)) != 0)
			break;
		if (st.event != AM_SESSION_STORE) {
			am_session_step_clear(&st);
			rc = am_error_set(AM_EMALFORMED, "link: an event out of turn in the live phase");
			break;
		}
		rc = am_queue_put_batch(ss->q, am_session_batch_items(st.batch), am_session_batch_count(st.batch),
		    am_now_ms(), res);
		if (rc == 0)
			rc = stored(ss, st.batch, res);
		am_session_step_clear(&st);
		am_hub_kick(ss->o->hub); /* the sender gathers the receipts owed */
	}
	free(res);
	return rc;
}

int
lk_live(struct session *ss)
{
	pthread_t th;
	bool closed;
	int rc;

	if (pthread_create(&th, NULL, live_push, ss) != 0)
		return am_error_set(AM_ENOMEM, "cannot start the live sending thread");
	rc = live_receive(ss);
	/* a closed stream (by the peer, or by our sender ending on purpose)
	 * is how a live link ends; a silent peer is a failure */
	closed = rc == AM_EIO;
	if (rc == AM_ETIMEDOUT)
		rc = am_error_set(AM_ETIMEDOUT, "live: the peer was silent for %d ms",
		    ss->o->timeout_ms ? ss->o->timeout_ms : 30000);
	else if (rc != 0 && !closed)
		rc = am_error_set(rc, "%s", am_error_detail());
	ss->live_stop = 1;
	am_hub_kick(ss->o->hub);
	lk_stop_sender(ss, th);
	/* receipts still being gathered: stored now, they go out on the
	 * next session */
	(void) make_receipts(ss);
	if (closed) {
		rc = 0;
		/* our sender's reason for ending (falling behind the ring), if
		 * it ended first; its errors after the close are noise */
		if (ss->send_rc == AM_ELIMIT)
			rc = am_error_set(ss->send_rc, "%s", ss->send_detail);
	}
	return rc;
}
