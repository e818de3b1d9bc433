/*
 * dispatch.c — the daemon's dispatcher thread: the daemons' own traffic
 * (am_api_daemon_type: tool calls, results, catalogs) taken out of the
 * inbox and handed to the role's feature that takes its type, and the
 * features' ticks. The daemon knows no type itself: a type no feature of
 * this role takes is acknowledged and dropped (a tool_catalog reaching a
 * node, a tool_call reaching a gateway), so the inbox holds only what
 * apps read.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 64

static const am_feature *
taker(const struct node *n, const char *type, void **state)
{
	for (size_t i = 0; i < n->role->nfeatures; i++) {
		const am_feature *f = n->role->features[i];
		for (size_t t = 0; f->on_envelope != NULL && f->types != NULL && f->types[t] != NULL; t++)
			if (strcmp(f->types[t], type) == 0) {
				*state = n->fstate[i];
				return f;
			}
	}
	return NULL;
}

/* one entry: handed over, acknowledged, or left */
static void
one(struct node *n, const am_queue_inbox_entry *e)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	am_envelope env;
	am_feature_take took = AM_FEATURE_LEFT;

	if (am_queue_get(n->q, e->id, &raw, &len, NULL) != 0)
		return;
	if (am_envelope_decode_view(&env, raw, len, e->id) == 0 && am_api_daemon_type(env.body.type)) {
		void *state = NULL;
		const am_feature *f = taker(n, env.body.type, &state);
		took = f != NULL ? f->on_envelope(state, &env, e->id, &raw, len) : AM_FEATURE_DONE;
	}
	free(raw);
	if (took == AM_FEATURE_DONE)
		(void) am_queue_inbox_ack(n->q, e->id, am_now_ms());
}

static void
dispatch(struct node *n)
{
	am_queue_inbox_entry ents[PAGE];
	size_t got = 0;

	do {
		if (am_queue_inbox_list(n->q, n->dispatched, ents, PAGE, &got) != 0)
			return;
		for (size_t i = 0; i < got && !n->stop; i++) {
			n->dispatched = ents[i].seq;
			one(n, &ents[i]);
		}
	} while (got == PAGE && !n->stop);
}

static void
tick(struct node *n)
{
	uint64_t now = am_now_ms();

	for (size_t i = 0; i < n->role->nfeatures; i++)
		if (n->role->features[i]->tick != NULL)
			n->role->features[i]->tick(n->fstate[i], now);
	/* expired envelopes and old tombstones go by themselves
	 * (MESH_GC_EVERY; agent-mesh store gc does the same by hand) */
	if (n->gc_every_ms > 0 && now >= n->gc_next_ms) {
		am_queue_gc_stats st = {0};
		if (n->gc_next_ms != 0 && am_queue_gc(n->q, now, &st) != 0)
			am_say("gc: %s", am_error_detail());
		else if (st.expired > 0 || st.tombs_freed > 0)
			am_say("gc: %llu expired envelopes removed, %llu old tombstones forgotten",
			    (unsigned long long) st.expired, (unsigned long long) st.tombs_freed);
		n->gc_next_ms = now + n->gc_every_ms; /* the first one an interval after the start */
	}
}

static void *
run(void *arg)
{
	struct node *n = arg;
	uint64_t seen = am_hub_inbox_seq(n->hub);

	dispatch(n);
	while (!n->stop) {
		/* woken by the hub, or after 200 ms: the store may also have
		 * been written by another process */
		(void) am_hub_wait_inbox(n->hub, seen, 200);
		seen = am_hub_inbox_seq(n->hub);
		dispatch(n);
		tick(n);
	}
	return NULL;
}

int
am_daemon_dispatch_start(struct node *n)
{
	if (pthread_create(&n->dispatch_th, NULL, run, n) != 0)
		return am_error_set(AM_ENOMEM, "cannot start the dispatcher");
	n->dispatching = true;
	return 0;
}

void
am_daemon_dispatch_stop(struct node *n)
{
	if (!n->dispatching)
		return;
	n->stop = 1;
	am_hub_kick(n->hub);
	pthread_join(n->dispatch_th, NULL);
	n->dispatching = false;
}
