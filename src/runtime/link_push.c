/*
 * link_push.c — the envelopes of a link session: the first sync's push
 * (most urgent first, in batches that close before the frame limit) and
 * its receipt into the store (verify and commit overlapping), then the
 * live phase (what the hub reports as new goes out, what comes in is
 * committed at once, receipts owed are made off the receiving path).
 */
#define _POSIX_C_SOURCE 200809L
#include "link_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- pushing ---- */

struct batch {
	uint8_t *buf; /* 5 bytes of frame header room, then (u32 len, bytes)... */
	size_t len;
	uint32_t count;
	uint8_t ids[PUSH_BATCH * AM_ID_BYTES]; /* what it holds, for the forward record */
};

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static int
batch_flush(struct session *ss, struct batch *b, uint64_t *counter)
{
	int rc = 0;

	if (b->count > 0) {
		put32(b->buf, b->count);
		rc = lk_send_frame(ss, 'E', b->buf, b->len);
		*counter += b->count;
		/* for GET /v1/messages/{id}: whom it went to (a record, not a
		 * delivery proof: receipts are that) */
		if (rc == 0)
			(void) am_queue_forwarded_add(ss->q, b->ids, b->count, ss->r->peer, am_now_ms());
	}
	b->len = 4;
	b->count = 0;
	return rc;
}

/* Whether len more bytes of envelope still fit in the batch's frame:
 * type byte, count, then (u32 length, bytes) each. Every envelope the
 * decoder accepts fits alone (AM_LINK_MAX_FRAME leaves room). */
static bool
batch_fits(const struct batch *b, size_t len)
{
	return b->count < PUSH_BATCH && 1 + b->len + 4 + len <= PUSH_FRAME;
}

static bool
batch_full(const struct batch *b)
{
	return b->count == PUSH_BATCH || b->len >= PUSH_BYTES;
}

/* Add one envelope to the batch if it is carried on: in the outbox, a
 * hop left (spent here) and not expired. Gone since (delivered, expired)
 * is skipped. A batch that it would take past the frame limit is sent
 * first (counted in *counter). */
static int
batch_add(struct session *ss, struct batch *b, const uint8_t id[AM_ID_BYTES], uint64_t now_ms, uint64_t *counter)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	am_queue_meta m;
	int rc = 0;

	if (am_queue_get(ss->q, id, &raw, &len, &m) != 0)
		return 0;
	if ((m.flags & AM_QF_OUTBOX) && m.hops_left > 0 && m.expires_ms > now_ms && len <= AM_MAX_ENVELOPE &&
	    am_envelope_set_hops(raw, len, (uint8_t) (m.hops_left - 1)) == 0) {
		if (!batch_fits(b, len))
			rc = batch_flush(ss, b, counter);
		if (rc == 0) {
			put32(b->buf + b->len, (uint32_t) len);
			memcpy(b->buf + b->len + 4, raw, len);
			memcpy(b->ids + b->count * AM_ID_BYTES, id, AM_ID_BYTES);
			b->len += 4 + len;
			b->count++;
		}
	}
	free(raw);
	return rc;
}

static int
batch_init(struct batch *b)
{
	b->len = 4;
	b->count = 0;
	if ((b->buf = malloc(PUSH_FRAME)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	return 0;
}


void *
lk_push(void *arg)
{
	struct lk_pusher *p = arg;
	struct session *ss = p->ss;
	struct batch b;
	uint32_t batches = 0;
	int rc = batch_init(&b);

	for (size_t i = 0; rc == 0 && i < p->n; i++) {
		rc = batch_add(ss, &b, p->ids + i * AM_ID_BYTES, ss->o->now_ms, &ss->r->sent);
		if (rc == 0 && (batch_full(&b) || (i + 1 == p->n && b.count > 0))) {
			rc = batch_flush(ss, &b, &ss->r->sent);
			/* reading by id maps each envelope's neighbours too
			 * (fault-around); a long push should not map the store */
			if (++batches % PUSH_TRIM_BATCHES == 0)
				am_queue_trim(ss->q);
		}
	}
	if (rc == 0)
		rc = lk_send_frame(ss, 'D', NULL, 0);
	free(b.buf);
	ss->send_rc = rc;
	if (rc != 0)
		snprintf(ss->send_detail, sizeof(ss->send_detail), "%s", am_error_detail());
	ss->sender_done = 1;
	return NULL;
}

/* Count what one committed batch did and note the receipts it owes. */
static int
received_batch(struct session *ss, const am_queue_result *res, uint32_t count)
{
	pthread_mutex_lock(&ss->owed_mu);
	for (uint32_t i = 0; i < count; i++)
		if (am_owed_note(&ss->owed, &res[i]) != 0) {
			pthread_mutex_unlock(&ss->owed_mu);
			return AM_ENOMEM;
		}
	pthread_mutex_unlock(&ss->owed_mu);
	uint64_t foreign = 0;
	for (uint32_t i = 0; i < count; i++) {
		ss->r->received += res[i].rc == 0;
		ss->r->inboxed += res[i].inboxed;
		foreign += res[i].rc == 0 && res[i].receipt_foreign;
		if (res[i].rc == 0) /* live links to others carry it on at once */
			am_hub_note(ss->o->hub, res[i].id, 1, ss->tag, res[i].inboxed);
		ss->r->refused += res[i].rc != 0 && res[i].rc != AM_EDUP && res[i].rc != AM_ETOMBSTONE &&
		    res[i].rc != AM_EEXPIRED;
	}
	ss->r->receipts_foreign += foreign;
	if (foreign > 0 && ss->o->on_foreign_receipts != NULL)
		ss->o->on_foreign_receipts(ss->o->ctx, ss->r, foreign);
	return 0;
}

/* Envelopes from the peer, verified by the store as from a stick. Two
 * batches are in hand: while the store's writer commits one, this thread
 * reads and verifies the next, so the socket, the verifying cores and the
 * commit overlap. A frame's buffer lives until its batch has committed. */
int
lk_receive(struct session *ss)
{
	am_queue_item items[2][PUSH_BATCH];
	am_queue_result (*res)[PUSH_BATCH]; /* 2 x 64 KiB: too much for a small thread stack */
	uint8_t *held[2] = {NULL, NULL};    /* the frames the two batches point into */
	uint32_t counts[2] = {0, 0};
	am_queue_pipe *pipe = NULL;
	uint8_t *in = NULL;
	size_t ilen;
	int rc, cur = 0;

	if ((res = calloc(2, sizeof(*res))) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for receiving");
	if ((rc = am_queue_pipe_open(&pipe, ss->q)) != 0) {
		free(res);
		return rc;
	}
	for (;;) {
		uint32_t count;
		size_t off = 5;
		if ((rc = lk_recv_frame(ss, &in, &ilen)) != 0)
			goto out;
		if (in[0] == 'D')
			break;
		if (in[0] != 'E' || ilen < 5) {
			rc = am_error_set(AM_EMALFORMED, "link: expected envelopes, got frame '%c'", in[0]);
			goto out;
		}
		count = (uint32_t) in[1] << 24 | (uint32_t) in[2] << 16 | (uint32_t) in[3] << 8 | in[4];
		if (count == 0 || count > PUSH_BATCH) {
			rc = am_error_set(AM_EMALFORMED, "link: a batch of %u envelopes", count);
			goto out;
		}
		for (uint32_t i = 0; i < count; i++) {
			uint32_t n;
			if (ilen - off < 4 || (n = (uint32_t) in[off] << 24 | (uint32_t) in[off + 1] << 16 |
			                              (uint32_t) in[off + 2] << 8 | in[off + 3]) > ilen - off - 4) {
				rc = am_error_set(AM_EMALFORMED, "link: envelope %u of a batch is cut", i + 1);
				goto out;
			}
			items[cur][i].raw = in + off + 4;
			items[cur][i].len = n;
			off += 4 + n;
		}
		held[cur] = in;
		counts[cur] = count;
		in = NULL;
		/* returns the previous batch's commit: account for it, free it */
		rc = am_queue_pipe_put_batch(pipe, items[cur], count, ss->o->now_ms, res[cur]);
		cur ^= 1;
		if (held[cur] != NULL) {
			int brc = received_batch(ss, res[cur], counts[cur]);
			free(held[cur]);
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
			frc = received_batch(ss, res[cur], counts[cur]);
		free(held[0]);
		free(held[1]);
		if (rc == 0)
			rc = frc;
	}
	free(res);
	free(in);
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
	uint64_t idle_since = am_now_ms();
	uint8_t *ids = malloc(PUSH_BATCH * AM_ID_BYTES);
	struct batch b = {0};
	int rc = ids == NULL ? am_error_set(AM_ENOMEM, "out of memory") : batch_init(&b);

	while (rc == 0 && !ss->live_stop && am_now_ms() < until) {
		size_t n = 0;
		int wait = ms / 3 > 1000 ? 1000 : ms / 3;
		/* receipts for what arrived are made here, off the receiving
		 * path: while one is being signed and stored, what arrives next
		 * gathers, so a busy link makes one receipt for many envelopes
		 * and an idle one answers at once. Stored, they come back from
		 * the hub and go out like anything else. */
		{
			struct am_owed_list mine = {0};
			pthread_mutex_lock(&ss->owed_mu);
			if (ss->owed.n > 0) { /* take the list; the receiver starts a new one */
				mine = ss->owed;
				memset(&ss->owed, 0, sizeof(ss->owed));
			}
			pthread_mutex_unlock(&ss->owed_mu);
			if (mine.n > 0)
				rc = am_owed_send(&mine, ss->q, ss->me, am_now_ms(), &ss->r->receipts_made, hub);
			am_owed_free(&mine);
		}
		if (rc != 0 || (rc = am_hub_next(hub, &ss->cursor, ss->tag, ids, PUSH_BATCH, wait, &n)) != 0)
			break;
		if (n == 0) {
			if (am_now_ms() - idle_since >= (uint64_t) ms / 3) {
				rc = lk_send_frame(ss, 'K', NULL, 0);
				idle_since = am_now_ms();
			}
			continue;
		}
		uint64_t now = am_now_ms();
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = batch_add(ss, &b, ids + i * AM_ID_BYTES, now, &ss->r->live_sent);
		if (rc == 0 && b.count > 0) {
			rc = batch_flush(ss, &b, &ss->r->live_sent);
			idle_since = am_now_ms();
		}
	}
	if (rc == AM_ENOTFOUND) /* the hub is stopping: a clean end */
		rc = 0;
	ss->send_rc = rc;
	if (rc != 0)
		snprintf(ss->send_detail, sizeof(ss->send_detail), "%s", am_error_detail());
	/* wakes the receiving side (blocked on the socket): closing alone
	 * does not end a receive already waiting (see stop_sender) */
	ss->closing = 1;
	nng_stream_close(ss->s);
	nng_aio_cancel(ss->rx_aio);
	free(ids);
	free(b.buf);
	ss->sender_done = 1;
	return NULL;
}

/* Receive live batches and commit each at once (no pipelining: latency
 * matters more than throughput here), note them in the hub, and send the
 * receipts owed. Returns 0 when the link ended normally. */
static int
live_receive(struct session *ss)
{
	am_queue_item items[PUSH_BATCH];
	am_queue_result *res = calloc(PUSH_BATCH, sizeof(*res));
	uint8_t *in = NULL;
	size_t ilen;
	int rc = res == NULL ? am_error_set(AM_ENOMEM, "out of memory") : 0;

	while (rc == 0) {
		uint32_t count;
		size_t off = 5;
		free(in);
		in = NULL;
		if ((rc = lk_recv_frame(ss, &in, &ilen)) != 0)
			break;
		if (in[0] == 'K')
			continue;
		if (in[0] != 'E' || ilen < 5) {
			rc = am_error_set(AM_EMALFORMED, "link: expected envelopes, got frame '%c'", in[0]);
			break;
		}
		count = (uint32_t) in[1] << 24 | (uint32_t) in[2] << 16 | (uint32_t) in[3] << 8 | in[4];
		if (count == 0 || count > PUSH_BATCH) {
			rc = am_error_set(AM_EMALFORMED, "link: a batch of %u envelopes", count);
			break;
		}
		for (uint32_t i = 0; i < count && rc == 0; i++) {
			uint32_t n;
			if (ilen - off < 4 || (n = (uint32_t) in[off] << 24 | (uint32_t) in[off + 1] << 16 |
			                              (uint32_t) in[off + 2] << 8 | in[off + 3]) > ilen - off - 4)
				rc = am_error_set(AM_EMALFORMED, "link: envelope %u of a batch is cut", i + 1);
			else {
				items[i].raw = in + off + 4;
				items[i].len = n;
				off += 4 + n;
			}
		}
		if (rc != 0 || (rc = am_queue_put_batch(ss->q, items, count, am_now_ms(), res)) != 0)
			break;
		uint64_t before = ss->r->received;
		if ((rc = received_batch(ss, res, count)) != 0)
			break;
		ss->r->live_received += ss->r->received - before;
		am_hub_kick(ss->o->hub); /* the sender gathers the receipts owed */
	}
	free(in);
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
	if (ss->owed.n > 0)
		(void) am_owed_send(&ss->owed, ss->q, ss->me, am_now_ms(), &ss->r->receipts_made, ss->o->hub);
	if (closed) {
		rc = 0;
		/* our sender's reason for ending (falling behind the ring), if
		 * it ended first; its errors after the close are noise */
		if (ss->send_rc == AM_ELIMIT)
			rc = am_error_set(ss->send_rc, "%s", ss->send_detail);
	}
	return rc;
}

