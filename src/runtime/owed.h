/*
 * owed.h — private to src/runtime: storing the receipts owed for
 * envelopes delivered here (the list and the receipts themselves are
 * src/sync's am_owed_*), and recovering those never made.
 */
#ifndef AM_RUNTIME_OWED_H
#define AM_RUNTIME_OWED_H

#include "am_runtime.h"

/* am_owed_send: make one receipt per sender (am_owed_make), store them
 * in one transaction, empty the list; *made counts them; each stored
 * receipt is noted in hub (may be NULL) for live links. */
int am_owed_send(am_owed_list *l, am_queue *q, const am_identity *me,
    uint64_t now_ms, uint64_t *made, am_hub *hub);
/* am_owed_store: store receipts already made (envs[0..n), cleared and
 * freed here); as am_owed_send. */
int am_owed_store(am_envelope *envs, size_t n, am_queue *q, uint64_t now_ms, uint64_t *made, am_hub *hub);
/* am_owed_recover: receipts owed but never made (the process was killed
 * between storing an envelope and making its receipt): every unacked
 * inbox envelope addressed to this node alone without our receipt gets
 * one now. Run once at start, before any session. */
int am_owed_recover(am_queue *q, const am_identity *me, uint64_t now_ms, am_hub *hub, uint64_t *made);

#endif
