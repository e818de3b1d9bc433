/*
 * link_io.c — one sync session over a byte stream (nng: tcp://, ipc://,
 * ws://): the link handshake, range-based reconciliation of what each
 * side holds, then each side pushes what the other lacks, concurrently.
 *
 * Frames after the handshake (plaintext inside the link's AEAD):
 *   'N' peer info (first frame each way: name, role, position ...)
 *   'X' refused: a reason in words, then the sender closes
 *   'R' reconciliation message   'F' reconciliation finished
 *   'E' envelopes: u32 count, then count x (u32 length, bytes)
 *   'D' done sending
 *   'C' everything received is committed (the end of the first sync: it
 *       is complete only when both sides have stored what they got)
 *   'K' keepalive (live phase, when there was nothing to push for a while)
 * A live session (the daemons') then goes on pushing 'E' frames with what
 * the hub reports as newly stored, until a side closes. `agent-mesh link
 * sync` runs one sync and closes.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"
#include "owed.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUSH_BATCH     256
#define PUSH_TRIM_BATCHES 8    /* ~2 MiB of 1 KiB envelopes between trims */
#define PUSH_BYTES     (1u << 20) /* a batch closes past this ... */
#define PUSH_FRAME     AM_LINK_MAX_FRAME /* ... and never passes this (plaintext) */

struct session {
	am_queue *q;
	const am_identity *me;
	const am_link_options *o;
	am_link_report *r;
	nng_stream *s;
	am_link *link;
	nng_aio *tx_aio, *rx_aio;
	int send_rc;
	char send_detail[200]; /* the sending thread's error, in words */
	struct am_owed_list owed; /* receipts owed for what arrived */
	pthread_mutex_t owed_mu;  /* live: the receiver notes, the sender makes */
	uint64_t tag;          /* this session's tag in the hub */
	uint64_t cursor;       /* the hub position the live push starts from */
	volatile int live_stop; /* the receiving side ended the live phase */
	_Atomic int closing;     /* the stream is being closed: send nothing more */
	_Atomic int sender_done; /* the sending thread has returned */
	uint64_t deadline_ms;    /* the handshake and peer info must be done by then; 0 after */
};

static int
handshake_ms(const struct session *ss)
{
	return ss->o->handshake_ms > 0 ? ss->o->handshake_ms : AM_LINK_HANDSHAKE_MS;
}

static int
nng_fail(int rv, const char *what)
{
	return am_error_set(rv == NNG_ETIMEDOUT ? AM_EIO : rv == NNG_ECONNREFUSED ? AM_ENOTFOUND : AM_EIO, "%s: %s",
	    what, nng_strerror(rv));
}

/* All of buf, or an error. With a deadline (ms since the epoch, 0 none)
 * each operation waits only for what is left of it, so a peer trickling
 * a byte at a time cannot stretch a phase past it. */
static int
xfer(struct session *ss, nng_aio *aio, uint8_t *buf, size_t n, bool sending)
{
	while (n > 0) {
		nng_iov iov = {buf, n};
		int rv;
		if (ss->closing || (ss->o->cancel != NULL && am_link_cancel_fired(ss->o->cancel)))
			return am_error_set(AM_EIO, "link closed");
		if (ss->deadline_ms != 0) {
			uint64_t now = am_now_ms();
			if (now >= ss->deadline_ms)
				return am_error_set(AM_ETIMEDOUT, "link %s: deadline passed", sending ? "send" : "receive");
			nng_aio_set_timeout(aio, (nng_duration) (ss->deadline_ms - now));
		}
		nng_aio_set_iov(aio, 1, &iov);
		if (sending)
			nng_stream_send(ss->s, aio);
		else
			nng_stream_recv(ss->s, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0)
			return rv == NNG_ETIMEDOUT ? am_error_set(AM_ETIMEDOUT, "link %s: timed out", sending ? "send" : "receive")
			                           : nng_fail(rv, sending ? "link send" : "link receive");
		size_t got = nng_aio_count(aio);
		if (got == 0)
			return am_error_set(AM_EIO, "link closed by the peer");
		buf += got;
		n -= got;
	}
	return 0;
}

static int
send_frame(struct session *ss, char type, const uint8_t *payload, size_t len)
{
	uint8_t *plain = NULL, *frame = NULL;
	size_t flen = 0;
	int rc;

	if (ss->closing)
		return am_error_set(AM_EIO, "link closed");
	if ((plain = malloc(len + 1)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	plain[0] = (uint8_t) type;
	if (len > 0)
		memcpy(plain + 1, payload, len);
	rc = am_link_seal(ss->link, &frame, &flen, plain, len + 1);
	free(plain);
	if (rc == 0)
		rc = xfer(ss, ss->tx_aio, frame, flen, true);
	free(frame);
	return rc;
}

static int
recv_frame(struct session *ss, uint8_t **plain, size_t *plen)
{
	uint8_t hdr[4], *frame;
	uint32_t n;
	int rc;

	*plain = NULL;
	if (ss->closing)
		return am_error_set(AM_EIO, "link closed");
	if ((rc = xfer(ss, ss->rx_aio, hdr, 4, false)) != 0)
		return rc;
	n = (uint32_t) hdr[0] << 24 | (uint32_t) hdr[1] << 16 | (uint32_t) hdr[2] << 8 | hdr[3];
	if (n > AM_LINK_MAX_FRAME + 64)
		return am_error_set(AM_ETOOBIG, "link: peer sent a frame of %u bytes (limit %u)", n, AM_LINK_MAX_FRAME);
	if ((frame = malloc(4 + (size_t) n)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	memcpy(frame, hdr, 4);
	rc = xfer(ss, ss->rx_aio, frame + 4, n, false);
	if (rc == 0)
		rc = am_link_open(ss->link, plain, plen, frame, 4 + n);
	free(frame);
	if (rc == 0 && *plen == 0) {
		free(*plain);
		*plain = NULL;
		rc = am_error_set(AM_EMALFORMED, "link: empty frame");
	}
	/* the peer refused us, whatever we were waiting for: say why */
	if (rc == 0 && (*plain)[0] == 'X') {
		rc = am_error_set(AM_EUNTRUSTED, "the peer refused the link: %.*s", (int) (*plen > 180 ? 180 : *plen - 1),
		    (const char *) *plain + 1);
		free(*plain);
		*plain = NULL;
	}
	return rc;
}

static int
handshake(struct session *ss, bool initiator)
{
	uint8_t in[AM_LINK_PROOF_LEN], *out = NULL;
	size_t out_len = 0;
	int rc;

	if ((rc = am_link_new(&ss->link, ss->me, ss->o->netkey, initiator)) != 0)
		return rc;
	if (initiator) {
		if ((rc = am_link_start(ss->link, &out, &out_len)) != 0 ||
		    (rc = xfer(ss, ss->tx_aio, out, out_len, true)) != 0)
			goto out;
	}
	/* each side reads a hello, then a proof: fixed lengths */
	for (int step = 0; !am_link_open_p(ss->link); step++) {
		size_t want = step == 0 ? AM_LINK_HELLO_LEN : AM_LINK_PROOF_LEN;
		free(out);
		out = NULL;
		if ((rc = xfer(ss, ss->rx_aio, in, want, false)) != 0) {
			char why[160];
			snprintf(why, sizeof(why), "%s", am_error_detail());
			if (rc == AM_ETIMEDOUT)
				rc = am_error_set(rc, "the handshake did not finish within %d ms (a silent or slow peer)",
				    handshake_ms(ss));
			else if (ss->o->cancel != NULL && am_link_cancel_fired(ss->o->cancel))
				rc = am_error_set(AM_EIO, "closed before its handshake finished, to make room for a newer connection");
			else
				rc = am_error_set(rc, "%s during the handshake (does the peer use another network key?)", why);
			goto out;
		}
		if ((rc = am_link_on_handshake(ss->link, in, want, &out, &out_len)) != 0)
			goto out;
		if (out != NULL && (rc = xfer(ss, ss->tx_aio, out, out_len, true)) != 0)
			goto out;
		if (step > 2) {
			rc = am_error_set(AM_EMALFORMED, "link: handshake did not finish");
			goto out;
		}
	}
	memcpy(ss->r->peer, am_link_peer(ss->link), AM_PK_BYTES);
out:
	free(out);
	return rc;
}

/* ---- reconciliation ---- */

struct items {
	am_recon_item *v;
	uint8_t *prio; /* per item, for the push order */
	size_t n, cap;
};

static int
collect(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct items *it = ctx;

	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 1024;
		am_recon_item *nv = realloc(it->v, cap * sizeof(*nv));
		if (nv == NULL)
			return am_error_set(AM_ENOMEM, "out of memory");
		it->v = nv;
		uint8_t *np = realloc(it->prio, cap);
		if (np == NULL)
			return am_error_set(AM_ENOMEM, "out of memory");
		it->prio = np;
		it->cap = cap;
	}
	it->prio[it->n] = m->priority;
	it->v[it->n].created_ms = m->created_ms;
	memcpy(it->v[it->n].id, id, AM_ID_BYTES);
	it->n++;
	return 0;
}

static int
reconcile(struct session *ss, bool initiator, am_recon *rec)
{
	uint8_t *msg = NULL, *in = NULL;
	size_t len = 0, ilen = 0;
	bool done;
	int rc = 0;

	if (initiator) {
		if ((rc = am_recon_initiate(rec, &msg, &len)) != 0)
			return rc;
		rc = send_frame(ss, 'R', msg, len);
		ss->r->recon_out += len;
		free(msg);
		msg = NULL;
	}
	for (int rounds = 0; rc == 0 && rounds < 256; rounds++) {
		if ((rc = recv_frame(ss, &in, &ilen)) != 0)
			break;
		if (in[0] == 'F') {
			free(in);
			return 0;
		}
		if (in[0] != 'R') {
			char got = (char) in[0];
			free(in);
			return am_error_set(AM_EMALFORMED, "link: expected reconciliation, got frame '%c'", got);
		}
		ss->r->recon_in += ilen - 1;
		ss->r->recon_rounds++;
		rc = am_recon_reply(rec, in + 1, ilen - 1, &msg, &len, &done);
		free(in);
		if (rc != 0)
			break;
		if (msg == NULL)
			return send_frame(ss, 'F', NULL, 0);
		rc = send_frame(ss, 'R', msg, len);
		ss->r->recon_out += len;
		free(msg);
		msg = NULL;
	}
	return rc != 0 ? rc : am_error_set(AM_ELIMIT, "link: reconciliation did not settle in 256 rounds");
}

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
		rc = send_frame(ss, 'E', b->buf, b->len);
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

struct pusher {
	struct session *ss;
	const uint8_t *ids;
	size_t n;
};

static void *
push(void *arg)
{
	struct pusher *p = arg;
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
		rc = send_frame(ss, 'D', NULL, 0);
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
static int
receive(struct session *ss)
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
		if ((rc = recv_frame(ss, &in, &ilen)) != 0)
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

/* ---- peer info and trust ---- */

static int
exchange_info(struct session *ss)
{
	am_peer_info mine;
	uint8_t *buf = NULL, *in = NULL;
	size_t len = 0, ilen = 0;
	int rc;

	if (ss->o->info != NULL)
		mine = *ss->o->info;
	else {
		char id[AM_NODE_ID_LEN + 1];
		memset(&mine, 0, sizeof(mine));
		am_node_id_format(id, am_identity_pk(ss->me));
		snprintf(mine.name, sizeof(mine.name), "node-%.16s", id);
		snprintf(mine.role, sizeof(mine.role), "node");
	}
	if ((rc = am_peer_info_encode(&buf, &len, &mine)) != 0 || (rc = send_frame(ss, 'N', buf, len)) != 0)
		goto out;
	if ((rc = recv_frame(ss, &in, &ilen)) != 0)
		goto out;
	if (in[0] != 'N') {
		rc = am_error_set(AM_EMALFORMED, "link: expected the peer's info, got frame '%c'", in[0]);
		goto out;
	}
	if ((rc = am_peer_info_decode(&ss->r->info, in + 1, ilen - 1)) != 0)
		goto out;
	if (ss->o->on_peer != NULL && (rc = ss->o->on_peer(ss->o->ctx, ss->r)) != 0) {
		/* say why before closing, so the other side's log names it */
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		(void) send_frame(ss, 'X', (const uint8_t *) why, strlen(why));
		rc = am_error_set(rc, "%s", why);
	}
out:
	free(buf);
	free(in);
	return rc;
}

/* End the sending thread th: close the stream and cancel its send until
 * it returns. Closing alone does not always wake a send in progress (an
 * ipc stream in nng 1.5 lets it run to its timeout, 30 s by default),
 * which held a thread and a socket per ended link. */
static void
stop_sender(struct session *ss, pthread_t th)
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
				rc = send_frame(ss, 'K', NULL, 0);
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
		if ((rc = recv_frame(ss, &in, &ilen)) != 0)
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

static int
live(struct session *ss)
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
	stop_sender(ss, th);
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

static int
session_run(struct session *ss, bool initiator)
{
	struct items it = {0};
	am_recon *rec = NULL;
	pthread_t th;
	struct pusher p = {ss, NULL, 0};
	uint8_t *order = NULL;
	int rc;

	pthread_mutex_init(&ss->owed_mu, NULL);
	/* the handshake and the peer info, as a whole, within a few seconds:
	 * until then the peer has proven nothing and holds a thread */
	ss->deadline_ms = am_now_ms() + (uint64_t) handshake_ms(ss);
	rc = handshake(ss, initiator);
	if (rc == 0 && (rc = exchange_info(ss)) == AM_ETIMEDOUT)
		rc = am_error_set(rc, "the peer's info did not come within %d ms of the connection", handshake_ms(ss));
	ss->deadline_ms = 0;
	{
		int ms = ss->o->timeout_ms ? ss->o->timeout_ms : 30000;
		nng_aio_set_timeout(ss->tx_aio, ms);
		nng_aio_set_timeout(ss->rx_aio, ms);
	}
	if (rc != 0)
		goto out;
	/* what is stored from here on goes out live; what is stored now is
	 * reconciled (both: the peer drops the duplicate) */
	if (ss->o->hub != NULL) {
		ss->tag = am_hub_tag(ss->o->hub);
		ss->cursor = am_hub_cursor(ss->o->hub);
	}
	if ((rc = am_queue_each(ss->q, collect, &it)) != 0 || (rc = am_recon_new(&rec, it.v, it.n)) != 0)
		goto out;
	if ((rc = reconcile(ss, initiator, rec)) != 0)
		goto out;
	{
		/* most urgent first, then oldest (the push scheduler) */
		size_t k = 0;
		const uint8_t *lacks = am_recon_peer_lacks(rec, &k);
		if ((order = malloc(k ? k * AM_ID_BYTES : 1)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		if (k > 0) /* lacks is NULL when the peer lacks nothing */
			memcpy(order, lacks, k * AM_ID_BYTES);
		if ((rc = am_push_order(order, k, it.v, it.prio, it.n)) != 0)
			goto out;
		p.ids = order;
		p.n = k;
	}
	/* push on a thread while receiving here: both directions at once */
	if (pthread_create(&th, NULL, push, &p) != 0) {
		rc = am_error_set(AM_ENOMEM, "cannot start the sending thread");
		goto out;
	}
	rc = receive(ss);
	if (rc != 0)
		stop_sender(ss, th); /* unblock the sender */
	else
		pthread_join(th, NULL);
	ss->sender_done = 0; /* the live phase has a sender of its own */
	if (rc == 0 && (rc = ss->send_rc) != 0)
		am_error_set(rc, "%s", ss->send_detail);
	/* both sides: all we received is committed; wait for the peer to say
	 * the same, so a session that returns 0 means both stores hold it */
	if (rc == 0 && (rc = send_frame(ss, 'C', NULL, 0)) == 0) {
		uint8_t *in = NULL;
		size_t ilen = 0;
		if ((rc = recv_frame(ss, &in, &ilen)) == 0 && in[0] != 'C')
			rc = am_error_set(AM_EMALFORMED, "link: expected the peer's commit, got frame '%c'", in[0]);
		free(in);
	}
	/* receipts for what was delivered here; they ride the live link or
	 * the next session */
	if (rc == 0)
		rc = am_owed_send(&ss->owed, ss->q, ss->me, am_now_ms(), &ss->r->receipts_made, ss->o->hub);
	if (rc != 0)
		goto out;
	/* the live phase may last hours: let go of the sync's memory */
	am_recon_free(rec);
	rec = NULL;
	free(it.v);
	free(it.prio);
	free(order);
	it.v = NULL;
	it.prio = NULL;
	order = NULL;
	ss->r->synced = true;
	if (ss->o->on_synced != NULL)
		ss->o->on_synced(ss->o->ctx, ss->r);
	if (ss->o->hub != NULL)
		rc = live(ss);
out:
	am_owed_free(&ss->owed);
	pthread_mutex_destroy(&ss->owed_mu);
	am_recon_free(rec);
	free(it.v);
	free(it.prio);
	free(order);
	return rc;
}

/* ---- freeing streams late ---- */

/* nng 1.5's poller can still be dispatching an event for a connection
 * just closed; freeing it at once under load (hundreds of sessions ending
 * together, a flood on the link port) made it lock a freed mutex and
 * panic. A closed stream is freed two seconds later instead (or when more
 * than STREAM_GRAVES wait). */
#define STREAM_GRAVES 1024
#define STREAM_GRAVE_MS 2000

static pthread_mutex_t graves_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	nng_stream *s;
	uint64_t at_ms;
} graves[STREAM_GRAVES];
static size_t graves_head, graves_n;

void
am_link_stream_bury(nng_stream *s)
{
	nng_stream *now[STREAM_GRAVES];
	size_t n = 0;
	uint64_t t = am_now_ms();

	if (s != NULL)
		nng_stream_close(s);
	pthread_mutex_lock(&graves_mu);
	/* free what has waited long enough, and the oldest if full */
	while (graves_n > 0 && (t - graves[graves_head].at_ms >= STREAM_GRAVE_MS || (s != NULL && graves_n == STREAM_GRAVES))) {
		now[n++] = graves[graves_head].s;
		graves_head = (graves_head + 1) % STREAM_GRAVES;
		graves_n--;
	}
	if (s != NULL) {
		size_t at = (graves_head + graves_n) % STREAM_GRAVES;
		graves[at].s = s;
		graves[at].at_ms = t;
		graves_n++;
	}
	pthread_mutex_unlock(&graves_mu);
	for (size_t i = 0; i < n; i++)
		nng_stream_free(now[i]);
}

/* ---- cancelling a session from another thread ---- */

struct am_link_cancel {
	pthread_mutex_t mu;
	_Atomic int fired;
	nng_stream *s;
	nng_aio *rx, *tx;
};

am_link_cancel *
am_link_cancel_new(void)
{
	am_link_cancel *c = calloc(1, sizeof(*c));
	if (c != NULL)
		pthread_mutex_init(&c->mu, NULL);
	return c;
}

void
am_link_cancel_free(am_link_cancel *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

bool
am_link_cancel_fired(am_link_cancel *c)
{
	return c->fired != 0;
}

void
am_link_cancel_fire(am_link_cancel *c)
{
	pthread_mutex_lock(&c->mu);
	c->fired = 1;
	/* only cancels, which nng allows from any thread: the session sees
	 * the failure (or the flag, before its next operation) and closes
	 * its own stream; a stream closed under a running operation from
	 * another thread once made nng panic on a freed lock */
	if (c->rx != NULL)
		nng_aio_cancel(c->rx);
	if (c->tx != NULL)
		nng_aio_cancel(c->tx);
	pthread_mutex_unlock(&c->mu);
}

static void
cancel_attach(struct session *ss, bool on)
{
	am_link_cancel *c = ss->o->cancel;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->s = on ? ss->s : NULL;
	c->rx = on ? ss->rx_aio : NULL;
	c->tx = on ? ss->tx_aio : NULL;
	pthread_mutex_unlock(&c->mu);
}

/* Both ends of a session (one-shot run or a long-lived server) share these. */
static int
session_open_aios(struct session *ss)
{
	int rv, ms = ss->o->timeout_ms ? ss->o->timeout_ms : 30000;

	if ((rv = nng_aio_alloc(&ss->tx_aio, NULL, NULL)) != 0 || (rv = nng_aio_alloc(&ss->rx_aio, NULL, NULL)) != 0)
		return nng_fail(rv, "link");
	nng_aio_set_timeout(ss->tx_aio, ms);
	nng_aio_set_timeout(ss->rx_aio, ms);
	cancel_attach(ss, true);
	return 0;
}

static void
session_close(struct session *ss, int rc)
{
	cancel_attach(ss, false);
	if (rc != 0)
		snprintf(ss->r->problem, sizeof(ss->r->problem), "%s", am_error_detail());
	if (ss->s != NULL) {
		if (ss->o->hub != NULL)
			am_hub_detach(ss->o->hub, ss->s);
		am_link_stream_bury(ss->s);
	}
	am_link_free(ss->link);
	if (ss->tx_aio)
		nng_aio_free(ss->tx_aio);
	if (ss->rx_aio)
		nng_aio_free(ss->rx_aio);
}

/* Options every link stream gets. Frames are small and go one way at a
 * time: Nagle plus a delayed ack would hold each for 40 ms. A websocket
 * takes one link frame as one message, and nng drops messages over 1 MiB
 * by default: room for the largest frame (errors: not that transport). */
#define WS_MAX_MESSAGE ((size_t) AM_LINK_MAX_FRAME + 4 + 64)

static void
dialer_options(nng_stream_dialer *d)
{
	(void) nng_stream_dialer_set_bool(d, NNG_OPT_TCP_NODELAY, true);
	(void) nng_stream_dialer_set_size(d, NNG_OPT_RECVMAXSZ, WS_MAX_MESSAGE);
	(void) nng_stream_dialer_set_size(d, NNG_OPT_WS_RECVMAXFRAME, WS_MAX_MESSAGE);
}

static void
listener_options(nng_stream_listener *l)
{
	(void) nng_stream_listener_set_bool(l, NNG_OPT_TCP_NODELAY, true);
	(void) nng_stream_listener_set_size(l, NNG_OPT_RECVMAXSZ, WS_MAX_MESSAGE);
	(void) nng_stream_listener_set_size(l, NNG_OPT_WS_RECVMAXFRAME, WS_MAX_MESSAGE);
}

static int
run(am_queue *q, const am_identity *me, const char *url, bool dial, const am_link_options *o, am_link_report *r)
{
	struct session ss = {.q = q, .me = me, .o = o, .r = r};
	nng_stream_dialer *d = NULL;
	nng_stream_listener *l = NULL;
	nng_aio *aio = NULL;
	int rv, rc = 0;

	memset(r, 0, sizeof(*r));
	if ((rc = session_open_aios(&ss)) != 0)
		goto out;
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		rc = nng_fail(rv, "link");
		goto out;
	}
	/* connecting waits at most 10 s: an unreachable peer is retried later */
	nng_aio_set_timeout(aio, dial && (o->timeout_ms == 0 || o->timeout_ms > 10000) ? 10000 :
	                         o->timeout_ms ? o->timeout_ms : 30000);
	if (dial) {
		if ((rv = nng_stream_dialer_alloc(&d, url)) != 0) {
			rc = nng_fail(rv, url);
			goto out;
		}
		dialer_options(d);
		nng_stream_dialer_dial(d, aio);
	} else {
		if ((rv = nng_stream_listener_alloc(&l, url)) != 0 ||
		    (listener_options(l), (rv = nng_stream_listener_listen(l)) != 0)) {
			rc = nng_fail(rv, url);
			goto out;
		}
		if (o->ready != NULL)
			o->ready(o->ctx);
		nng_stream_listener_accept(l, aio);
	}
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		rc = nng_fail(rv, dial ? "connecting" : "waiting for a peer");
		goto out;
	}
	ss.s = nng_aio_get_output(aio, 0);
	if (o->hub == NULL || (rc = am_hub_attach(o->hub, ss.s)) == 0)
		rc = session_run(&ss, dial);
	else {
		am_link_stream_bury(ss.s);
		ss.s = NULL;
	}
out:
	session_close(&ss, rc);
	if (aio)
		nng_aio_free(aio);
	if (d)
		nng_stream_dialer_free(d);
	if (l)
		nng_stream_listener_free(l);
	return rc;
}

int
am_netkey_parse(uint8_t key[static 32], const char *arg)
{
	char *text = NULL;
	size_t len = 0, got = 0;
	const char *hex = arg;
	int rc = 0;

	if (arg[0] == '@') {
		if ((rc = am_file_read(&text, &len, arg + 1, 4096)) != 0)
			return rc;
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
			text[--len] = '\0';
		hex = text;
	}
	if (strlen(hex) != 64 || sodium_hex2bin(key, 32, hex, 64, NULL, &got, NULL) != 0 || got != 32)
		rc = am_error_set(AM_EFIELD, "network key must be 64 hex characters (or @FILE holding them)");
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return rc;
}

struct am_link_server {
	nng_stream_listener *l;
	nng_aio *aio;
};

int
am_link_server_open(am_link_server **out, const char *url)
{
	am_link_server *sv = calloc(1, sizeof(*sv));
	int rv;

	*out = NULL;
	if (sv == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if ((rv = nng_aio_alloc(&sv->aio, NULL, NULL)) != 0 || (rv = nng_stream_listener_alloc(&sv->l, url)) != 0 ||
	    (listener_options(sv->l), false) ||
	    (rv = nng_stream_listener_listen(sv->l)) != 0) {
		am_link_server_close(sv);
		return nng_fail(rv, url);
	}
	*out = sv;
	return 0;
}

void
am_link_server_close(am_link_server *sv)
{
	if (sv == NULL)
		return;
	if (sv->aio) {
		nng_aio_stop(sv->aio);
		nng_aio_free(sv->aio);
	}
	if (sv->l) {
		nng_stream_listener_close(sv->l);
		nng_stream_listener_free(sv->l);
	}
	free(sv);
}

int
am_link_server_accept(am_link_server *sv, nng_stream **s, int wait_ms)
{
	int rv;

	*s = NULL;
	nng_aio_set_timeout(sv->aio, wait_ms > 0 ? wait_ms : NNG_DURATION_INFINITE);
	nng_stream_listener_accept(sv->l, sv->aio);
	nng_aio_wait(sv->aio);
	if ((rv = nng_aio_result(sv->aio)) != 0)
		return rv == NNG_ETIMEDOUT ? AM_ENOTFOUND : nng_fail(rv, "waiting for a peer");
	*s = nng_aio_get_output(sv->aio, 0);
	return 0;
}

int
am_link_session(nng_stream *s, bool initiator, am_queue *q, const am_identity *me, const am_link_options *o,
    am_link_report *r)
{
	struct session ss = {.q = q, .me = me, .o = o, .r = r, .s = s};
	int rc;

	memset(r, 0, sizeof(*r));
	if (o->hub != NULL && (rc = am_hub_attach(o->hub, s)) != 0) {
		am_link_stream_bury(s);
		snprintf(r->problem, sizeof(r->problem), "%s", am_error_detail());
		return rc;
	}
	if ((rc = session_open_aios(&ss)) == 0)
		rc = session_run(&ss, initiator);
	session_close(&ss, rc);
	return rc;
}

int
am_link_sync_dial(am_queue *q, const am_identity *me, const char *url, const am_link_options *o, am_link_report *r)
{
	return run(q, me, url, true, o, r);
}

int
am_link_sync_listen(am_queue *q, const am_identity *me, const char *url, const am_link_options *o, am_link_report *r)
{
	return run(q, me, url, false, o, r);
}
