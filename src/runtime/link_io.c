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
 *
 * This file: the frames, the handshake, reconciliation, peer info and the
 * session as a whole; pushing and the live phase are link_push.c, the
 * streams themselves link_stream.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "link_private.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
handshake_ms(const struct session *ss)
{
	return ss->o->handshake_ms > 0 ? ss->o->handshake_ms : AM_LINK_HANDSHAKE_MS;
}

int
lk_fail(int rv, const char *what)
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
			                           : lk_fail(rv, sending ? "link send" : "link receive");
		size_t got = nng_aio_count(aio);
		if (got == 0)
			return am_error_set(AM_EIO, "link closed by the peer");
		buf += got;
		n -= got;
	}
	return 0;
}

int
lk_send_frame(struct session *ss, char type, const uint8_t *payload, size_t len)
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

int
lk_recv_frame(struct session *ss, uint8_t **plain, size_t *plen)
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
		rc = lk_send_frame(ss, 'R', msg, len);
		ss->r->recon_out += len;
		free(msg);
		msg = NULL;
	}
	for (int rounds = 0; rc == 0 && rounds < 256; rounds++) {
		if ((rc = lk_recv_frame(ss, &in, &ilen)) != 0)
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
			return lk_send_frame(ss, 'F', NULL, 0);
		rc = lk_send_frame(ss, 'R', msg, len);
		ss->r->recon_out += len;
		free(msg);
		msg = NULL;
	}
	return rc != 0 ? rc : am_error_set(AM_ELIMIT, "link: reconciliation did not settle in 256 rounds");
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
	if ((rc = am_peer_info_encode(&buf, &len, &mine)) != 0 || (rc = lk_send_frame(ss, 'N', buf, len)) != 0)
		goto out;
	if ((rc = lk_recv_frame(ss, &in, &ilen)) != 0)
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
		(void) lk_send_frame(ss, 'X', (const uint8_t *) why, strlen(why));
		rc = am_error_set(rc, "%s", why);
	}
out:
	free(buf);
	free(in);
	return rc;
}

static int
session_run(struct session *ss, bool initiator)
{
	struct items it = {0};
	am_recon *rec = NULL;
	pthread_t th;
	struct lk_pusher p = {ss, NULL, 0};
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
	if (pthread_create(&th, NULL, lk_push, &p) != 0) {
		rc = am_error_set(AM_ENOMEM, "cannot start the sending thread");
		goto out;
	}
	rc = lk_receive(ss);
	if (rc != 0)
		lk_stop_sender(ss, th); /* unblock the sender */
	else
		pthread_join(th, NULL);
	ss->sender_done = 0; /* the live phase has a sender of its own */
	if (rc == 0 && (rc = ss->send_rc) != 0)
		am_error_set(rc, "%s", ss->send_detail);
	/* both sides: all we received is committed; wait for the peer to say
	 * the same, so a session that returns 0 means both stores hold it */
	if (rc == 0 && (rc = lk_send_frame(ss, 'C', NULL, 0)) == 0) {
		uint8_t *in = NULL;
		size_t ilen = 0;
		if ((rc = lk_recv_frame(ss, &in, &ilen)) == 0 && in[0] != 'C')
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
		rc = lk_live(ss);
out:
	am_owed_free(&ss->owed);
	pthread_mutex_destroy(&ss->owed_mu);
	am_recon_free(rec);
	free(it.v);
	free(it.prio);
	free(order);
	return rc;
}

static void
cancel_attach(struct session *ss, bool on)
{
	if (ss->o->cancel != NULL)
		lk_cancel_attach(ss->o->cancel, on ? ss->rx_aio : NULL, on ? ss->tx_aio : NULL);
}

/* Both ends of a session (one-shot run or a long-lived server) share these. */
static int
session_open_aios(struct session *ss)
{
	int rv, ms = ss->o->timeout_ms ? ss->o->timeout_ms : 30000;

	if ((rv = nng_aio_alloc(&ss->tx_aio, NULL, NULL)) != 0 || (rv = nng_aio_alloc(&ss->rx_aio, NULL, NULL)) != 0)
		return lk_fail(rv, "link");
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
		rc = lk_fail(rv, "link");
		goto out;
	}
	/* connecting waits at most 10 s: an unreachable peer is retried later */
	nng_aio_set_timeout(aio, dial && (o->timeout_ms == 0 || o->timeout_ms > 10000) ? 10000 :
	                         o->timeout_ms ? o->timeout_ms : 30000);
	if (dial) {
		if ((rv = nng_stream_dialer_alloc(&d, url)) != 0) {
			rc = lk_fail(rv, url);
			goto out;
		}
		lk_dialer_options(d);
		nng_stream_dialer_dial(d, aio);
	} else {
		if ((rv = nng_stream_listener_alloc(&l, url)) != 0 ||
		    (lk_listener_options(l), (rv = nng_stream_listener_listen(l)) != 0)) {
			rc = lk_fail(rv, url);
			goto out;
		}
		if (o->ready != NULL)
			o->ready(o->ctx);
		nng_stream_listener_accept(l, aio);
	}
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		rc = lk_fail(rv, dial ? "connecting" : "waiting for a peer");
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
