/*
 * link_io.c — the pump around one link session (src/sync's am_session,
 * which owns the protocol: handshake, peer info, reconciliation, the
 * commit barrier, the live phase): it moves the engine's bytes over an
 * nng byte stream (tcp://, ipc://, ws://), reads what the store holds for
 * reconciliation, asks the caller about trust, and runs the session from
 * connection to close. Pushing and storing envelopes, on two threads at
 * once, and the live phase are link_push.c; the streams link_stream.c.
 * `agent-mesh link sync` runs one sync and closes; the daemons' sessions
 * stay live.
 */
#define _POSIX_C_SOURCE 200809L
#include "link_private.h"

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
	return am_error_set(rv == NNG_ECONNREFUSED ? AM_ENOTFOUND : AM_EIO, "%s: %s", what, nng_strerror(rv));
}

/* All of buf, or an error. Until the handshake and peer info are done
 * each operation waits only for what is left of the engine's deadline,
 * so a peer trickling a byte at a time cannot stretch them past it. */
static int
xfer(struct session *ss, nng_aio *aio, uint8_t *buf, size_t n, bool sending)
{
	while (n > 0) {
		nng_iov iov = {buf, n};
		uint64_t deadline = am_session_deadline(ss->e);
		int rv;
		if (ss->closing || (ss->o->cancel != NULL && am_link_cancel_fired(ss->o->cancel)))
			return am_error_set(AM_EIO, "link closed");
		if (deadline != 0) {
			uint64_t now = am_now_ms();
			if (now >= deadline)
				return am_error_set(AM_ETIMEDOUT, "link %s: deadline passed", sending ? "send" : "receive");
			nng_aio_set_timeout(aio, (nng_duration) (deadline - now));
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
lk_write(struct session *ss, am_session_step *st)
{
	int rc = 0;

	if (st->send_len > 0) {
		if (ss->closing)
			rc = am_error_set(AM_EIO, "link closed");
		else
			rc = xfer(ss, ss->tx_aio, st->send, st->send_len, true);
		/* for GET /v1/messages/{id}: whom it went to (a record, not a
		 * delivery proof: receipts are that) */
		if (rc == 0 && st->sent_n > 0)
			(void) am_queue_forwarded_add(ss->q, st->sent_ids, st->sent_n, ss->r->peer, am_now_ms());
	}
	free(st->send);
	st->send = NULL;
	st->send_len = 0;
	st->sent_n = 0;
	return rc;
}

/* An I/O failure before the peer said who it is, in words that say which
 * phase and the likely cause. */
static int
early_failure(struct session *ss, int rc)
{
	char why[160];

	if (am_session_deadline(ss->e) == 0 || rc == AM_EBADSIG || rc == AM_ENETKEY || rc == AM_EVERSION ||
	    rc == AM_EUNTRUSTED || rc == AM_EMALFORMED || rc == AM_ETOOBIG)
		return rc;
	snprintf(why, sizeof(why), "%s", am_error_detail());
	if (rc == AM_ETIMEDOUT)
		ss->cause = AM_LINK_HANDSHAKE_TIMEOUT;
	if (am_session_peer(ss->e) != NULL)
		return rc == AM_ETIMEDOUT ? am_error_set(rc, "the peer's info did not come within %d ms of the connection",
		                                handshake_ms(ss))
		                          : rc;
	if (rc == AM_ETIMEDOUT)
		return am_error_set(rc, "the handshake did not finish within %d ms (a silent or slow peer)", handshake_ms(ss));
	if (ss->o->cancel != NULL && am_link_cancel_fired(ss->o->cancel)) {
		ss->cause = AM_LINK_EVICTED;
		return am_error_set(AM_EIO, "closed before its handshake finished, to make room for a newer connection");
	}
	ss->cause = AM_LINK_HANDSHAKE_CLOSED;
	return am_error_set(rc, "%s during the handshake (does the peer use another network key?)", why);
}

int
lk_read_event(struct session *ss, am_session_step *st)
{
	int rc;

	memset(st, 0, sizeof(*st));
	for (;;) {
		size_t want = 0;
		uint8_t *buf = am_session_want(ss->e, &want);
		if (buf == NULL)
			return am_error_set(AM_EINVAL, "link: the session is over");
		if ((rc = xfer(ss, ss->rx_aio, buf, want, false)) != 0)
			return early_failure(ss, rc);
		if ((rc = am_session_received(ss->e, want, am_now_ms(), st)) != 0)
			return rc;
		if ((rc = lk_write(ss, st)) != 0)
			return early_failure(ss, rc);
		if (st->event != AM_SESSION_NOTHING)
			return 0;
	}
}

void
lk_report(struct session *ss)
{
	const am_session_counts *n = am_session_counts_get(ss->e);
	am_link_report *r = ss->r;

	r->sent = n->sent;
	r->received = n->received;
	r->inboxed = n->inboxed;
	r->refused = n->refused;
	r->recon_out = n->recon_out;
	r->recon_in = n->recon_in;
	r->recon_rounds = n->recon_rounds;
	r->live_sent = n->live_sent;
	r->live_received = n->live_received;
	r->receipts_foreign = n->receipts_foreign;
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

/* Wait for one event of a kind; anything else is the peer out of turn. */
static int
expect(struct session *ss, enum am_session_event want, const char *what)
{
	am_session_step st;
	int rc = lk_read_event(ss, &st);

	if (rc == 0 && st.event != want)
		rc = am_error_set(AM_EMALFORMED, "link: %s did not come", what);
	am_session_step_clear(&st);
	return rc;
}

static int
session_run(struct session *ss, bool initiator)
{
	am_session_config c = {.me = ss->me, .netkey = ss->o->netkey, .initiator = initiator, .live = ss->o->hub != NULL,
	    .info = ss->o->info, .handshake_ms = (uint64_t) handshake_ms(ss)};
	int ms = ss->o->timeout_ms ? ss->o->timeout_ms : 30000;
	struct items it = {0};
	am_session_step st = {0};
	pthread_t th;
	int rc;

	c.keepalive_ms = (uint64_t) ms / 3;
	pthread_mutex_init(&ss->owed_mu, NULL);
	/* the handshake and the peer info, as a whole, within a few seconds
	 * (the engine's deadline): until then the peer has proven nothing
	 * and holds a thread */
	if ((rc = am_session_new(&ss->e, &c, am_now_ms())) != 0)
		goto out;
	if ((rc = am_session_start(ss->e, &st)) != 0 || (rc = lk_write(ss, &st)) != 0)
		goto out;
	if ((rc = expect(ss, AM_SESSION_PEER, "the peer's info")) != 0)
		goto out;
	memcpy(ss->r->peer, am_session_peer(ss->e), AM_PK_BYTES);
	ss->r->info = *am_session_peer_info(ss->e);
	nng_aio_set_timeout(ss->tx_aio, ms);
	nng_aio_set_timeout(ss->rx_aio, ms);
	if (ss->o->on_peer != NULL && (rc = ss->o->on_peer(ss->o->ctx, ss->r)) != 0) {
		/* say why before closing, so the other side's log names it */
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		am_session_refuse(ss->e, why, &st);
		(void) lk_write(ss, &st);
		/* a trust decision, or something else that stopped it (the
		 * peer is this node itself, the store) */
		ss->cause = rc == AM_EKEYCHANGED ? AM_LINK_KEY_CHANGED
		          : rc == AM_EUNTRUSTED || rc == AM_EREVOKED || rc == AM_EEXPIRED || rc == AM_EDENIED
		              ? AM_LINK_REFUSED_HERE
		              : AM_LINK_OTHER;
		rc = am_error_set(rc, "%s", why);
		goto out;
	}
	/* what is stored from here on goes out live; what is stored now is
	 * reconciled (both: the peer drops the duplicate) */
	if (ss->o->hub != NULL) {
		ss->tag = am_hub_tag(ss->o->hub);
		ss->cursor = am_hub_cursor(ss->o->hub);
	}
	if ((rc = am_queue_each(ss->q, collect, &it)) != 0 ||
	    (rc = am_session_accept(ss->e, it.v, it.prio, it.n, &st)) != 0 || (rc = lk_write(ss, &st)) != 0)
		goto out;
	if ((rc = expect(ss, AM_SESSION_RECONCILED, "the end of reconciliation")) != 0)
		goto out;
	/* the sync's memory goes before the push: the live phase may last hours */
	free(it.v);
	free(it.prio);
	it.v = NULL;
	it.prio = NULL;
	/* push on a thread while receiving here: both directions at once */
	if (pthread_create(&th, NULL, lk_push, ss) != 0) {
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
	if (rc == 0 && (rc = am_session_commit(ss->e, &st)) == 0 && (rc = lk_write(ss, &st)) == 0 &&
	    !am_session_synced(ss->e))
		rc = expect(ss, AM_SESSION_SYNCED, "the peer's commit");
	/* receipts for what was delivered here; they ride the live link or
	 * the next session */
	if (rc == 0) {
		am_envelope *envs = NULL;
		size_t n = 0;
		if ((rc = am_session_receipts(ss->e, am_now_ms(), &envs, &n)) == 0)
			rc = am_owed_store(envs, n, ss->q, am_now_ms(), &ss->r->receipts_made, ss->o->hub);
	}
	if (rc != 0)
		goto out;
	lk_report(ss);
	ss->r->synced = true;
	if (ss->o->on_synced != NULL)
		ss->o->on_synced(ss->o->ctx, ss->r);
	if (ss->o->hub != NULL)
		rc = lk_live(ss);
out:
	if (ss->e != NULL)
		lk_report(ss);
	am_session_step_clear(&st);
	pthread_mutex_destroy(&ss->owed_mu);
	free(it.v);
	free(it.prio);
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

/* A failure's kind from its code, where no step said more. */
static am_link_cause
cause_of(const struct session *ss, int rc)
{
	switch (rc) {
	case 0: return AM_LINK_OK;
	case AM_ENETKEY: return AM_LINK_NETWORK_KEY;
	case AM_EBADSIG: return AM_LINK_BAD_PROOF;
	case AM_EUNTRUSTED: return AM_LINK_REFUSED_THERE; /* the peer's 'X'; ours are set where on_peer refuses */
	case AM_EMALFORMED:
	case AM_ETRUNC:
	case AM_ETOOBIG:
	case AM_ETRAILING:
	case AM_EVERSION:
	case AM_ELIMIT:
	case AM_EFIELD: return AM_LINK_MALFORMED;
	case AM_ETIMEDOUT:
		return ss->e != NULL && am_session_peer(ss->e) != NULL ? AM_LINK_CONNECTION : AM_LINK_HANDSHAKE_TIMEOUT;
	case AM_EIO:
	case AM_ENOTFOUND: return AM_LINK_CONNECTION;
	default: return AM_LINK_OTHER;
	}
}

static void
session_close(struct session *ss, int rc)
{
	cancel_attach(ss, false);
	if (rc != 0) {
		snprintf(ss->r->problem, sizeof(ss->r->problem), "%s", am_error_detail());
		ss->r->cause = ss->cause != AM_LINK_OK ? ss->cause : cause_of(ss, rc);
	}
	if (ss->s != NULL) {
		if (ss->o->hub != NULL)
			am_hub_detach(ss->o->hub, ss->s);
		am_link_stream_bury(ss->s);
	}
	am_session_free(ss->e);
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
		r->cause = AM_LINK_OTHER;
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
