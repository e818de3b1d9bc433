/*
 * session_push.c — the engine's sending side and what follows receiving:
 * the forwarding rule, 'E' batches (256 envelopes / 1 MiB / the frame
 * limit), 'D' and keep-alives; the store's results counted and the
 * receipts they owe; the commit barrier; the received batch's accessors.
 */
#include "session_private.h"

/* ---- pushing ---- */

static int
tx_init(am_session *s)
{
	if (s->tx == NULL && (s->tx = malloc(BATCH_FRAME)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if (s->tx_count == 0)
		s->tx_len = 5; /* 'E', u32 count */
	return 0;
}

static int
tx_flush(am_session *s, uint64_t now_ms, am_session_step *st)
{
	int rc;

	if (s->tx_count == 0)
		return 0;
	s->tx[0] = 'E';
	put32(s->tx + 1, s->tx_count);
	if ((rc = session_emit_frame(s, st, s->tx, s->tx_len)) != 0)
		return rc;
	memcpy(s->sent_ids + st->sent_n * AM_ID_BYTES, s->tx_ids, (size_t) s->tx_count * AM_ID_BYTES);
	st->sent_ids = s->sent_ids;
	st->sent_n += s->tx_count;
	if (s->tx_ended)
		s->n.live_sent += s->tx_count;
	else
		s->n.sent += s->tx_count;
	s->tx_count = 0;
	s->tx_len = 5;
	s->last_tx_ms = now_ms;
	return 0;
}

/* Clear the step; envelopes go out only once reconciled (or live):
 * before, the peer would read them as a frame out of turn. */
static int
tx_begin(const am_session *s, am_session_step *st)
{
	memset(st, 0, sizeof(*st));
	if (s->phase != PH_PUSH && s->phase != PH_COMMIT && s->phase != PH_LIVE)
		return am_error_set(AM_EINVAL, "session: sending out of turn");
	return 0;
}

int
am_session_push(am_session *s, const uint8_t id[AM_ID_BYTES], const uint8_t *raw, size_t len,
    const am_queue_meta *m, uint64_t now_ms, am_session_step *st)
{
	int rc;

	if ((rc = tx_begin(s, st)) != 0)
		return rc;
	/* the forwarding rule: carried on (in the outbox), a hop left (spent
	 * here) and not expired; gone since (delivered, expired) is skipped */
	if (!(m->flags & AM_QF_OUTBOX) || m->hops_left == 0 || m->expires_ms <= now_ms || len > AM_MAX_ENVELOPE)
		return 0;
	if ((rc = tx_init(s)) != 0)
		return rc;
	/* every envelope the decoder accepts fits alone (the frame limit
	 * leaves room) */
	if ((s->tx_count == AM_SESSION_BATCH || s->tx_len + 4 + len > BATCH_FRAME) && (rc = tx_flush(s, now_ms, st)) != 0)
		goto fail;
	put32(s->tx + s->tx_len, (uint32_t) len);
	memcpy(s->tx + s->tx_len + 4, raw, len);
	if (am_envelope_set_hops(s->tx + s->tx_len + 4, len, (uint8_t) (m->hops_left - 1)) != 0)
		return 0; /* not ours to carry: leave it out */
	memcpy(s->tx_ids + s->tx_count * AM_ID_BYTES, id, AM_ID_BYTES);
	s->tx_len += 4 + len;
	s->tx_count++;
	if ((s->tx_count == AM_SESSION_BATCH || s->tx_len >= BATCH_BYTES) && (rc = tx_flush(s, now_ms, st)) != 0)
		goto fail;
	return 0;
fail:
	am_session_step_clear(st);
	return rc;
}

int
am_session_push_flush(am_session *s, uint64_t now_ms, am_session_step *st)
{
	int rc;

	if ((rc = tx_begin(s, st)) != 0)
		return rc;
	if ((rc = tx_flush(s, now_ms, st)) != 0)
		am_session_step_clear(st);
	return rc;
}

int
am_session_push_end(am_session *s, uint64_t now_ms, am_session_step *st)
{
	int rc;

	if ((rc = tx_begin(s, st)) != 0)
		return rc;
	if (s->tx_ended)
		return am_error_set(AM_EINVAL, "session: the push already ended");
	if ((rc = tx_flush(s, now_ms, st)) == 0 && (rc = session_emit_type(s, st, 'D', NULL, 0)) == 0) {
		s->tx_ended = true;
		s->last_tx_ms = now_ms;
		return 0;
	}
	am_session_step_clear(st);
	return rc;
}

int
am_session_tick(am_session *s, uint64_t now_ms, am_session_step *st)
{
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (s->phase == PH_LIVE && s->c.keepalive_ms > 0 && now_ms - s->last_tx_ms >= s->c.keepalive_ms) {
		if ((rc = session_emit_type(s, st, 'K', NULL, 0)) != 0)
			am_session_step_clear(st);
		else
			s->last_tx_ms = now_ms;
	}
	return rc;
}

/* ---- storing, committing, receipts ---- */

int
am_session_stored(am_session *s, const am_session_batch *b, const am_queue_result *res, uint64_t *foreign)
{
	uint64_t got = 0;

	*foreign = 0;
	if (s->pending > 0)
		s->pending--;
	for (uint32_t i = 0; i < b->count; i++) {
		if (am_owed_note(&s->owed, &res[i]) != 0)
			return AM_ENOMEM;
		got += res[i].rc == 0;
		s->n.inboxed += res[i].inboxed;
		*foreign += res[i].rc == 0 && res[i].receipt_foreign;
		/* a duplicate, a tombstone or an expired envelope is no refusal */
		s->n.refused += res[i].rc != 0 && res[i].rc != AM_EDUP && res[i].rc != AM_ETOMBSTONE &&
		    res[i].rc != AM_EEXPIRED;
	}
	s->n.received += got;
	if (b->live)
		s->n.live_received += got;
	s->n.receipts_foreign += *foreign;
	return 0;
}

int
am_session_commit(am_session *s, am_session_step *st)
{
	int rc;

	memset(st, 0, sizeof(*st));
	if (s->phase != PH_COMMIT || !s->peer_done || !s->tx_ended || s->pending > 0 || s->committed)
		return am_error_set(AM_EINVAL, "session: commit before everything was stored and sent");
	if ((rc = session_emit_type(s, st, 'C', NULL, 0)) != 0) {
		am_session_step_clear(st);
		return session_failed(s, rc);
	}
	s->committed = true;
	if (s->peer_committed)
		session_synced(s, st);
	return 0;
}

int
am_session_receipts(am_session *s, uint64_t now_ms, am_envelope **envs, size_t *n)
{
	return am_owed_make(&s->owed, s->c.me, now_ms, envs, n);
}

size_t
am_session_batch_count(const am_session_batch *b)
{
	return b->count;
}

const am_queue_item *
am_session_batch_items(const am_session_batch *b)
{
	return b->items;
}

void
am_session_batch_free(am_session_batch *b)
{
	if (b != NULL) {
		free(b->frame);
		free(b);
	}
}
