/*
 * link_private.h — private to src/net's link files: the pump around
 * one link session engine (src/sync's am_session), shared by link_io.c
 * (moving the bytes, the session as a whole), link_push.c (the threads
 * that push and store envelopes, the live phase) and link_stream.c (nng
 * streams: options, the server, cancelling, freeing late).
 */
#ifndef AM_NET_LINK_PRIVATE_H
#define AM_NET_LINK_PRIVATE_H

#include "am_net.h"
#include "am_net.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>

#define PUSH_TRIM_BATCHES 8    /* ~2 MiB of 1 KiB envelopes between trims */

struct session {
	am_queue *q;
	const am_identity *me;
	const am_link_options *o;
	am_link_report *r;
	nng_stream *s;
	am_session *e;         /* the engine: what to send, what to store */
	nng_aio *tx_aio, *rx_aio;
	int send_rc;
	am_link_cause cause;   /* set where a failure's kind is known; else from its code at the close */
	char send_detail[200]; /* the sending thread's error, in words */
	pthread_mutex_t owed_mu; /* live: the receiver notes receipts owed, the sender makes them */
	uint64_t tag;          /* this session's tag in the hub */
	uint64_t cursor;       /* the hub position the live push starts from */
	_Atomic int live_stop;   /* the receiving side ended the live phase */
	_Atomic int closing;     /* the stream is being closed: send nothing more */
	_Atomic int sender_done; /* the sending thread has returned */
};

/* link_io.c */
int lk_fail(int rv, const char *what);
/* write what a step sends (and record where its envelopes went), clear it */
int lk_write(struct session *ss, am_session_step *st);
/* read until the engine has an event (writing what it answers on the way) */
int lk_read_event(struct session *ss, am_session_step *st);
/* the engine's counts into the report */
void lk_report(struct session *ss);

/* link_push.c */
void *lk_push(void *ss);              /* a thread: the first sync's push, then 'D' */
int lk_receive(struct session *ss);   /* the first sync's envelopes, until 'D' */
int lk_live(struct session *ss);      /* the live phase, until a side closes */
void lk_stop_sender(struct session *ss, pthread_t th);

/* link_stream.c */
void lk_dialer_options(nng_stream_dialer *d);
void lk_listener_options(nng_stream_listener *l);
/* the session's aios, for am_link_cancel_fire (NULL, NULL: detach) */
void lk_cancel_attach(am_link_cancel *c, nng_aio *rx, nng_aio *tx);

#endif
