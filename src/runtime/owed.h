/*
 * owed.h — private to src/runtime: receipts owed for envelopes delivered
 * here, collected during an import or a link session and then sent as one
 * receipt per sender.
 */
#ifndef AM_RUNTIME_OWED_H
#define AM_RUNTIME_OWED_H

#include "am_runtime.h"

struct am_owed {
	uint8_t src[AM_PK_BYTES];
	uint8_t id[AM_ID_BYTES];
	uint64_t expires_ms;
};

struct am_owed_list {
	struct am_owed *v;
	size_t n, cap;
};

/* am_owed_note: remember what a put result owes (when receipt_due). */
int am_owed_note(struct am_owed_list *l, const am_queue_result *res);
/* am_owed_send: make one receipt per sender (up to AM_RECEIPT_MAX_IDS
 * ids each), store them in one transaction, empty the list; *made counts
 * them; each stored receipt is noted in hub (may be NULL) for live links. */
int am_owed_send(struct am_owed_list *l, am_queue *q, const am_identity *me,
    uint64_t now_ms, uint64_t *made, am_hub *hub);
void am_owed_free(struct am_owed_list *l);
/* am_owed_recover: receipts owed but never made (the process was killed
 * between storing an envelope and making its receipt): every unacked
 * inbox envelope addressed to this node alone without our receipt gets
 * one now. Run once at start, before any session. */
int am_owed_recover(am_queue *q, const am_identity *me, uint64_t now_ms, am_hub *hub, uint64_t *made);

#endif
