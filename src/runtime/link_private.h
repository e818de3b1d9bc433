/*
 * link_private.h — private to src/runtime's link files: the state of one
 * link session, shared by link_io.c (framing, handshake, reconciliation,
 * the session as a whole), link_push.c (pushing and receiving envelopes,
 * the live phase) and link_stream.c (nng streams: options, the server,
 * cancelling, freeing late).
 */
#ifndef AM_RUNTIME_LINK_PRIVATE_H
#define AM_RUNTIME_LINK_PRIVATE_H

#include "am_runtime.h"
#include "owed.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>

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

/* what the first sync pushes, on its own thread (lk_push) */
struct lk_pusher {
	struct session *ss;
	const uint8_t *ids;
	size_t n;
};

/* link_io.c */
int lk_fail(int rv, const char *what);
int lk_send_frame(struct session *ss, char type, const uint8_t *payload, size_t len);
int lk_recv_frame(struct session *ss, uint8_t **plain, size_t *plen);

/* link_push.c */
void *lk_push(void *pusher);          /* a thread: the first sync's push, then 'D' */
int lk_receive(struct session *ss);   /* the first sync's envelopes, until 'D' */
int lk_live(struct session *ss);      /* the live phase, until a side closes */
void lk_stop_sender(struct session *ss, pthread_t th);

/* link_stream.c */
void lk_dialer_options(nng_stream_dialer *d);
void lk_listener_options(nng_stream_listener *l);
/* the session's aios, for am_link_cancel_fire (NULL, NULL: detach) */
void lk_cancel_attach(am_link_cancel *c, nng_aio *rx, nng_aio *tx);

#endif
