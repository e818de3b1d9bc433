/*
 * session_private.h — what session.c (receiving, the handshake, trust and
 * reconciliation) and session_push.c (pushing, storing, the commit
 * barrier) share: the engine's state and its frame-writing helpers.
 */
#ifndef AM_SESSION_PRIVATE_H
#define AM_SESSION_PRIVATE_H

#include "am_sync.h"
#include "be32_private.h"

#include <stdlib.h>
#include <string.h>

#define BOX_OVERHEAD 16           /* XChaCha20-Poly1305's tag */
#define BATCH_BYTES (1u << 20)    /* a batch closes past this ... */
#define BATCH_FRAME AM_LINK_MAX_FRAME /* ... and never passes this (plaintext) */

enum phase { PH_HANDSHAKE, PH_INFO, PH_TRUST, PH_RECON, PH_PUSH, PH_COMMIT, PH_LIVE, PH_DONE, PH_FAILED };
enum rx { RX_HELLO, RX_PROOF, RX_HDR, RX_BODY };

struct am_session_batch {
	uint8_t *frame;   /* the plaintext the items point into */
	uint32_t count;
	bool live;
	am_queue_item items[AM_SESSION_BATCH];
};

struct am_session {
	am_session_config c;
	am_link *link;
	/* the one field both threads touch: the receiver moves it (PUSH ->
	 * COMMIT -> LIVE, FAILED), the sender reads it to know it may send */
	_Atomic enum phase phase;
	uint64_t deadline_ms;
	am_peer_info peer_info;
	am_session_counts n;
	/* receiving (the receiving thread's) */
	enum rx rx;
	size_t got;
	uint8_t hs[AM_LINK_PROOF_LEN];
	uint8_t hdr[4];
	uint8_t *frame;  /* 4-byte header, then the body */
	uint32_t frame_len;
	uint32_t pending; /* batches handed out, not yet reported stored */
	bool peer_done, peer_committed;
	/* reconciliation */
	am_recon *rec;
	const am_recon_item *items;
	const uint8_t *prio;
	size_t nitems;
	uint32_t rounds;
	uint8_t *lacks;
	size_t nlacks;
	/* sending (the sending thread's) */
	uint8_t *tx;     /* 'E', u32 count, then (u32 length, bytes) ... */
	size_t tx_len;
	uint32_t tx_count;
	uint8_t tx_ids[AM_SESSION_BATCH * AM_ID_BYTES];
	uint8_t sent_ids[2 * AM_SESSION_BATCH * AM_ID_BYTES];
	bool tx_ended, committed;
	uint64_t last_tx_ms;
	am_owed_list owed;
};

static inline int
session_failed(am_session *s, int rc)
{
	s->phase = PH_FAILED;
	return rc;
}

/* Append bytes to what the step sends. */
int session_emit(am_session_step *st, const uint8_t *b, size_t n);
/* Seal plain (its first byte the frame type) and append it to the step. */
int session_emit_frame(am_session *s, am_session_step *st, const uint8_t *plain, size_t len);
/* A frame of type with payload, sealed, appended. */
int session_emit_type(am_session *s, am_session_step *st, char type, const uint8_t *payload, size_t len);
/* Both sides committed: the first sync is over. */
void session_synced(am_session *s, am_session_step *st);

#endif
