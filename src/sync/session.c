/*
 * session.c — one link session as a state machine without I/O, its
 * receiving side: the handshake (through link.c), peer info, trust,
 * reconciliation, every frame's turn and the 'E' batch codec; the sending
 * side is session_push.c. The caller (runtime's link pump,
 * the tests, the fuzzer) moves the bytes, reads and stores envelopes and
 * decides trust; see am_sync.h for the calls and who may make them when.
 */
#include "session_private.h"

#include <stdio.h>

/* Append bytes to what the step sends. */
int
session_emit(am_session_step *st, const uint8_t *b, size_t n)
{
	uint8_t *nb = realloc(st->send, st->send_len + n);

	if (nb == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	memcpy(nb + st->send_len, b, n);
	st->send = nb;
	st->send_len += n;
	return 0;
}

/* Seal plain (its first byte the frame type) and append it to the step. */
int
session_emit_frame(am_session *s, am_session_step *st, const uint8_t *plain, size_t len)
{
	uint8_t *f = NULL;
	size_t flen = 0;
	int rc;

	if ((rc = am_link_seal(s->link, &f, &flen, plain, len)) == 0)
		rc = session_emit(st, f, flen);
	free(f);
	return rc;
}

int
session_emit_type(am_session *s, am_session_step *st, char type, const uint8_t *payload, size_t len)
{
	uint8_t small[256], *plain = len < sizeof(small) ? small : malloc(len + 1);
	int rc;

	if (plain == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	plain[0] = (uint8_t) type;
	if (len > 0)
		memcpy(plain + 1, payload, len);
	rc = session_emit_frame(s, st, plain, len + 1);
	if (plain != small)
		free(plain);
	return rc;
}


void
am_session_step_clear(am_session_step *st)
{
	free(st->send);
	am_session_batch_free(st->batch);
	memset(st, 0, sizeof(*st));
}

int
am_session_new(am_session **out, const am_session_config *c, uint64_t now_ms)
{
	am_session *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a session");
	s->c = *c;
	rc = c->ephemeral ? am_link_new_with_ephemeral(&s->link, c->me, c->netkey, c->initiator, c->ephemeral) :
	                    am_link_new(&s->link, c->me, c->netkey, c->initiator);
	if (rc != 0) {
		free(s);
		return rc;
	}
	s->deadline_ms = c->handshake_ms > 0 ? now_ms + c->handshake_ms : 0;
	s->last_tx_ms = now_ms;
	*out = s;
	return 0;
}

void
am_session_free(am_session *s)
{
	if (s == NULL)
		return;
	am_link_free(s->link);
	am_recon_free(s->rec);
	free(s->frame);
	free(s->lacks);
	free(s->tx);
	am_owed_free(&s->owed);
	free(s);
}

int
am_session_start(am_session *s, am_session_step *st)
{
	uint8_t *out = NULL;
	size_t len = 0;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (!s->c.initiator)
		return 0;
	if ((rc = am_link_start(s->link, &out, &len)) == 0)
		rc = session_emit(st, out, len);
	free(out);
	return rc != 0 ? session_failed(s, rc) : 0;
}

uint64_t
am_session_deadline(const am_session *s)
{
	return s->phase <= PH_INFO ? s->deadline_ms : 0;
}

const uint8_t *
am_session_peer(const am_session *s)
{
	return am_link_peer(s->link);
}

const am_peer_info *
am_session_peer_info(const am_session *s)
{
	return &s->peer_info;
}

const am_session_counts *
am_session_counts_get(const am_session *s)
{
	return &s->n;
}

bool
am_session_synced(const am_session *s)
{
	return s->phase == PH_LIVE || s->phase == PH_DONE;
}

uint8_t *
am_session_want(am_session *s, size_t *want)
{
	*want = 0;
	switch (s->phase == PH_FAILED ? -1 : (int) s->rx) {
	case RX_HELLO:
		*want = AM_LINK_HELLO_LEN - s->got;
		return s->hs + s->got;
	case RX_PROOF:
		*want = AM_LINK_PROOF_LEN - s->got;
		return s->hs + s->got;
	case RX_HDR:
		*want = 4 - s->got;
		return s->hdr + s->got;
	case RX_BODY:
		*want = s->frame_len - s->got;
		return s->frame + 4 + s->got;
	default:
		return NULL;
	}
}

/* ---- what each frame does, by phase ---- */

static void
my_info(const am_session *s, am_peer_info *mine)
{
	if (s->c.info != NULL) {
		*mine = *s->c.info;
		return;
	}
	char id[AM_NODE_ID_LEN + 1];
	memset(mine, 0, sizeof(*mine));
	am_node_id_format(id, am_identity_pk(s->c.me));
	snprintf(mine->name, sizeof(mine->name), "node-%.16s", id);
	snprintf(mine->role, sizeof(mine->role), "node");
}

static int
on_handshake(am_session *s, size_t len, am_session_step *st)
{
	uint8_t *out = NULL, *info = NULL;
	size_t olen = 0, ilen = 0;
	int rc;

	if ((rc = am_link_on_handshake(s->link, s->hs, len, &out, &olen)) != 0)
		goto out;
	if (out != NULL && (rc = session_emit(st, out, olen)) != 0)
		goto out;
	s->got = 0;
	if (!am_link_open_p(s->link)) {
		if (s->rx == RX_PROOF) {
			rc = am_error_set(AM_EMALFORMED, "link: handshake did not finish");
			goto out;
		}
		s->rx = RX_PROOF;
		goto out;
	}
	/* open: say who we are at once, in the same write as the proof */
	am_peer_info mine;
	my_info(s, &mine);
	if ((rc = am_peer_info_encode(&info, &ilen, &mine)) == 0)
		rc = session_emit_type(s, st, 'N', info, ilen);
	s->rx = RX_HDR;
	s->phase = PH_INFO;
out:
	free(out);
	free(info);
	return rc;
}

static int
reconciled(am_session *s, am_session_step *st)
{
	size_t k = 0;
	const uint8_t *lacks = am_recon_peer_lacks(s->rec, &k);
	int rc;

	if ((s->lacks = malloc(k ? k * AM_ID_BYTES : 1)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if (k > 0) /* lacks is NULL when the peer lacks nothing */
		memcpy(s->lacks, lacks, k * AM_ID_BYTES);
	s->nlacks = k;
	/* most urgent first, then oldest (the push scheduler) */
	if ((rc = am_push_order(s->lacks, k, s->items, s->prio, s->nitems)) != 0)
		return rc;
	am_recon_free(s->rec);
	s->rec = NULL;
	s->items = NULL;
	s->prio = NULL;
	s->phase = PH_PUSH;
	st->event = AM_SESSION_RECONCILED;
	return 0;
}

static int
on_recon(am_session *s, const uint8_t *in, size_t len, am_session_step *st)
{
	uint8_t *msg = NULL;
	size_t mlen = 0;
	bool done;
	int rc;

	if (in[0] == 'F')
		return reconciled(s, st);
	if (in[0] != 'R')
		return am_error_set(AM_EMALFORMED, "link: expected reconciliation, got frame '%c'", in[0]);
	if (++s->rounds > AM_SESSION_ROUNDS)
		return am_error_set(AM_ELIMIT, "link: reconciliation did not settle in %d rounds", AM_SESSION_ROUNDS);
	s->n.recon_in += len - 1;
	s->n.recon_rounds++;
	if ((rc = am_recon_reply(s->rec, in + 1, len - 1, &msg, &mlen, &done)) != 0)
		return rc;
	if (msg == NULL) {
		if ((rc = session_emit_type(s, st, 'F', NULL, 0)) != 0)
			return rc;
		return reconciled(s, st);
	}
	rc = session_emit_type(s, st, 'R', msg, mlen);
	s->n.recon_out += mlen;
	free(msg);
	return rc;
}

int
am_ebatch_parse(const uint8_t *p, size_t len, am_queue_item items[static AM_SESSION_BATCH], uint32_t *count)
{
	size_t off = 4;
	uint32_t k;

	*count = 0;
	if (len < 4)
		return am_error_set(AM_EMALFORMED, "link: an envelope batch of %zu bytes has no count", len);
	k = get32(p);
	if (k == 0 || k > AM_SESSION_BATCH)
		return am_error_set(AM_EMALFORMED, "link: a batch of %u envelopes (1 to %d)", k, AM_SESSION_BATCH);
	for (uint32_t i = 0; i < k; i++) {
		uint32_t n;
		if (len - off < 4 || (n = get32(p + off)) > len - off - 4)
			return am_error_set(AM_EMALFORMED, "link: envelope %u of a batch is cut", i + 1);
		items[i].raw = p + off + 4;
		items[i].len = n;
		off += 4 + n;
	}
	if (off != len)
		return am_error_set(AM_EMALFORMED, "link: %zu bytes after the last envelope of a batch", len - off);
	*count = k;
	return 0;
}

/* An 'E' frame: hand its envelopes to the caller to store. The batch
 * takes the frame. */
static int
on_envelopes(am_session *s, uint8_t **plain, size_t len, am_session_step *st)
{
	am_session_batch *b = malloc(sizeof(*b));
	int rc;

	if (b == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if ((rc = am_ebatch_parse(*plain + 1, len - 1, b->items, &b->count)) != 0) {
		free(b);
		return rc;
	}
	b->frame = *plain;
	b->live = s->phase == PH_LIVE;
	*plain = NULL;
	s->pending++;
	st->batch = b;
	st->event = AM_SESSION_STORE;
	return 0;
}

void
session_synced(am_session *s, am_session_step *st)
{
	s->phase = s->c.live ? PH_LIVE : PH_DONE;
	st->event = AM_SESSION_SYNCED;
}

static int
on_frame(am_session *s, uint8_t **plain, size_t len, am_session_step *st)
{
	uint8_t t = (*plain)[0];
	int rc;

	switch ((enum phase) s->phase) { /* one atomic read */
	case PH_INFO:
		if (t != 'N')
			return am_error_set(AM_EMALFORMED, "link: expected the peer's info, got frame '%c'", t);
		if ((rc = am_peer_info_decode(&s->peer_info, *plain + 1, len - 1)) != 0)
			return rc;
		s->phase = PH_TRUST;
		st->event = AM_SESSION_PEER;
		return 0;
	case PH_RECON:
		return on_recon(s, *plain, len, st);
	case PH_PUSH:
		if (t == 'D') {
			s->peer_done = true;
			s->phase = PH_COMMIT;
			st->event = AM_SESSION_PEER_DONE;
			return 0;
		}
		if (t != 'E')
			return am_error_set(AM_EMALFORMED, "link: expected envelopes, got frame '%c'", t);
		return on_envelopes(s, plain, len, st);
	case PH_COMMIT:
		if (t != 'C')
			return am_error_set(AM_EMALFORMED, "link: expected the peer's commit, got frame '%c'", t);
		s->peer_committed = true;
		if (s->committed)
			session_synced(s, st);
		return 0;
	case PH_LIVE:
		if (t == 'K')
			return 0;
		if (t != 'E')
			return am_error_set(AM_EMALFORMED, "link: expected envelopes, got frame '%c'", t);
		return on_envelopes(s, plain, len, st);
	case PH_TRUST:
		return am_error_set(AM_EINVAL, "session: a frame read before the peer was accepted or refused");
	default:
		return am_error_set(AM_EMALFORMED, "link: frame '%c' after the session ended", t);
	}
}

/* A whole frame is in: open it and act on it. */
static int
frame_done(am_session *s, am_session_step *st)
{
	uint8_t *plain = NULL;
	size_t plen = 0;
	int rc;

	rc = am_link_open(s->link, &plain, &plen, s->frame, 4 + (size_t) s->frame_len);
	free(s->frame);
	s->frame = NULL;
	s->rx = RX_HDR;
	s->got = 0;
	if (rc != 0)
		goto out;
	if (plen == 0) {
		rc = am_error_set(AM_EMALFORMED, "link: empty frame");
		goto out;
	}
	/* the peer refused us, whatever we were waiting for: say why */
	if (plain[0] == 'X') {
		rc = am_error_set(AM_EUNTRUSTED, "the peer refused the link: %.*s", (int) (plen > 180 ? 179 : plen - 1),
		    (const char *) plain + 1);
		goto out;
	}
	rc = on_frame(s, &plain, plen, st);
out:
	free(plain);
	return rc;
}

int
am_session_received(am_session *s, size_t n, uint64_t now_ms, am_session_step *st)
{
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (s->phase == PH_FAILED)
		return am_error_set(AM_EINVAL, "session: already failed");
	s->got += n;
	if (am_session_deadline(s) != 0 && now_ms >= s->deadline_ms) {
		rc = am_error_set(AM_ETIMEDOUT, s->phase == PH_HANDSHAKE ?
		    "the handshake did not finish within %llu ms (a silent or slow peer)" :
		    "the peer's info did not come within %llu ms of the connection",
		    (unsigned long long) s->c.handshake_ms);
		goto out;
	}
	switch (s->rx) {
	case RX_HELLO:
	case RX_PROOF:
		if (s->got == (s->rx == RX_HELLO ? AM_LINK_HELLO_LEN : AM_LINK_PROOF_LEN))
			rc = on_handshake(s, s->got, st);
		goto out;
	case RX_HDR:
		if (s->got < 4)
			goto out;
		s->frame_len = get32(s->hdr);
		if (s->frame_len > AM_LINK_MAX_FRAME + BOX_OVERHEAD) {
			rc = am_error_set(AM_ETOOBIG, "link: peer sent a frame of %u bytes (limit %u)", s->frame_len,
			    AM_LINK_MAX_FRAME + BOX_OVERHEAD);
			goto out;
		}
		if ((s->frame = malloc(4 + (size_t) s->frame_len)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(s->frame, s->hdr, 4);
		s->rx = RX_BODY;
		s->got = 0;
		if (s->frame_len == 0) /* complete (and refused by open) */
			rc = frame_done(s, st);
		goto out;
	case RX_BODY:
		if (s->got == s->frame_len)
			rc = frame_done(s, st);
		goto out;
	}
out:
	if (rc != 0) {
		am_session_step_clear(st);
		return session_failed(s, rc);
	}
	return 0;
}

/* ---- trust and reconciliation ---- */

int
am_session_accept(am_session *s, const am_recon_item *items, const uint8_t *prio, size_t n, am_session_step *st)
{
	uint8_t *msg = NULL;
	size_t len = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	if (s->phase != PH_TRUST)
		return am_error_set(AM_EINVAL, "session: accept out of turn");
	s->items = items;
	s->prio = prio;
	s->nitems = n;
	if ((rc = am_recon_new(&s->rec, items, n)) != 0)
		return session_failed(s, rc);
	s->phase = PH_RECON;
	if (!s->c.initiator)
		return 0;
	if ((rc = am_recon_initiate(s->rec, &msg, &len)) == 0)
		rc = session_emit_type(s, st, 'R', msg, len);
	s->n.recon_out += len;
	free(msg);
	if (rc != 0) {
		am_session_step_clear(st);
		return session_failed(s, rc);
	}
	return 0;
}

void
am_session_refuse(am_session *s, const char *why, am_session_step *st)
{
	memset(st, 0, sizeof(*st));
	if (am_link_open_p(s->link))
		(void) session_emit_type(s, st, 'X', (const uint8_t *) why, strnlen(why, 200));
	s->phase = PH_FAILED;
}

const uint8_t *
am_session_lacks(const am_session *s, size_t *n)
{
	*n = s->nlacks;
	return s->lacks;
}

