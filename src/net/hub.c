/*
 * hub.c — what a daemon's live link sessions share: a ring of the ids
 * stored lately (each tagged with the session that brought it, so that
 * session does not echo it back), a counter of inbox arrivals for API
 * long-polls, and the set of open link streams so a stop can close them.
 *
 * A live sender follows the ring with its own cursor. The ring is bounded:
 * a sender that falls more than its size behind gets AM_ELIMIT and ends
 * its session; the next session reconciles, so nothing is lost, the slow
 * link only pays one reconciliation instead of holding memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_net.h"

#include <errno.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HUB_MAX_STREAMS 256
#define HUB_SEEN_SLOTS  (1u << 16) /* 512 KiB of id prefixes */

struct hub_entry {
	uint8_t id[AM_ID_BYTES];
	uint64_t source;
};

struct am_hub {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hub_entry *ring;
	size_t cap;
	uint64_t head;        /* sequence of the next entry */
	uint64_t inbox_seq;   /* bumped on every inbox arrival */
	uint64_t next_tag;
	uint64_t kicks;       /* am_hub_kick calls: make waiters return */
	bool stopping;
	nng_stream *streams[HUB_MAX_STREAMS];
	uint64_t *seen;        /* direct-mapped cache of noted id prefixes */
};

int
am_hub_new(am_hub **out, size_t cap)
{
	am_hub *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL || (h->ring = calloc(cap ? cap : 1, sizeof(*h->ring))) == NULL) {
		free(h);
		return am_error_set(AM_ENOMEM, "out of memory for the live ring");
	}
	h->cap = cap ? cap : 1;
	h->next_tag = 1;
	if ((h->seen = calloc(HUB_SEEN_SLOTS, sizeof(*h->seen))) == NULL) {
		free(h->ring);
		free(h);
		return am_error_set(AM_ENOMEM, "out of memory for the live ring");
	}
	pthread_mutex_init(&h->mu, NULL);
	/* waits are timed against CLOCK_MONOTONIC so a clock step cannot
	 * stall a live sender */
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = h;
	return 0;
}

void
am_hub_free(am_hub *h)
{
	if (h == NULL)
		return;
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->ring);
	free(h->seen);
	free(h);
}

static uint64_t
prefix_of(const uint8_t *id)
{
	uint64_t p;
	memcpy(&p, id, sizeof(p));
	return p | 1; /* never 0: 0 marks an empty slot */
}

bool
am_hub_seen(am_hub *h, const uint8_t id[static AM_ID_BYTES])
{
	uint64_t p = prefix_of(id);
	bool seen;

	pthread_mutex_lock(&h->mu);
	seen = h->seen[p % HUB_SEEN_SLOTS] == p;
	pthread_mutex_unlock(&h->mu);
	return seen;
}

uint64_t
am_hub_tag(am_hub *h)
{
	uint64_t t;

	pthread_mutex_lock(&h->mu);
	t = h->next_tag++;
	pthread_mutex_unlock(&h->mu);
	return t;
}

uint64_t
am_hub_cursor(am_hub *h)
{
	uint64_t c;

	pthread_mutex_lock(&h->mu);
	c = h->head;
	pthread_mutex_unlock(&h->mu);
	return c;
}

void
am_hub_note(am_hub *h, const uint8_t *ids, size_t n, uint64_t source, size_t inboxed)
{
	if (h == NULL || (n == 0 && inboxed == 0))
		return;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < n; i++) {
		struct hub_entry *e = &h->ring[h->head % h->cap];
		memcpy(e->id, ids + i * AM_ID_BYTES, AM_ID_BYTES);
		e->source = source;
		h->head++;
		uint64_t p = prefix_of(e->id);
		h->seen[p % HUB_SEEN_SLOTS] = p;
	}
	h->inbox_seq += inboxed;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void
deadline_of(struct timespec *ts, int wait_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += wait_ms / 1000;
	ts->tv_nsec += (long) (wait_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
am_hub_next(am_hub *h, uint64_t *cursor, uint64_t self, uint8_t *out, size_t max, int wait_ms, size_t *n)
{
	struct timespec ts;
	uint64_t kicks;
	int rc = 0;

	*n = 0;
	deadline_of(&ts, wait_ms);
	pthread_mutex_lock(&h->mu);
	kicks = h->kicks;
	for (;;) {
		if (h->stopping) {
			rc = AM_ENOTFOUND;
			break;
		}
		if (h->head - *cursor > h->cap) {
			rc = am_error_set(AM_ELIMIT, "live: %llu envelopes behind (ring of %zu); resyncing",
			    (unsigned long long) (h->head - *cursor), h->cap);
			break;
		}
		while (*cursor < h->head && *n < max) {
			const struct hub_entry *e = &h->ring[*cursor % h->cap];
			if (e->source != self)
				memcpy(out + (*n)++ * AM_ID_BYTES, e->id, AM_ID_BYTES);
			(*cursor)++;
		}
		if (*n > 0 || wait_ms <= 0 || h->kicks != kicks)
			break;
		if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

void
am_hub_kick(am_hub *h)
{
	pthread_mutex_lock(&h->mu);
	h->kicks++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

uint64_t
am_hub_inbox_seq(am_hub *h)
{
	uint64_t s;

	pthread_mutex_lock(&h->mu);
	s = h->inbox_seq;
	pthread_mutex_unlock(&h->mu);
	return s;
}

bool
am_hub_wait_inbox(am_hub *h, uint64_t seen, int wait_ms)
{
	struct timespec ts;
	bool moved;

	deadline_of(&ts, wait_ms);
	pthread_mutex_lock(&h->mu);
	while (h->inbox_seq == seen && !h->stopping)
		if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT)
			break;
	moved = h->inbox_seq != seen;
	pthread_mutex_unlock(&h->mu);
	return moved;
}

int
am_hub_attach(am_hub *h, nng_stream *s)
{
	int rc = am_error_set(AM_ELIMIT, "too many open links (limit %d)", HUB_MAX_STREAMS);

	pthread_mutex_lock(&h->mu);
	if (h->stopping)
		rc = am_error_set(AM_EIO, "stopping");
	else
		for (size_t i = 0; i < HUB_MAX_STREAMS; i++)
			if (h->streams[i] == NULL) {
				h->streams[i] = s;
				rc = 0;
				break;
			}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

void
am_hub_detach(am_hub *h, nng_stream *s)
{
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < HUB_MAX_STREAMS; i++)
		if (h->streams[i] == s)
			h->streams[i] = NULL;
	pthread_mutex_unlock(&h->mu);
}

size_t
am_hub_links(am_hub *h)
{
	size_t n = 0;

	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < HUB_MAX_STREAMS; i++)
		n += h->streams[i] != NULL;
	pthread_mutex_unlock(&h->mu);
	return n;
}

void
am_hub_stop(am_hub *h)
{
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	/* closing makes every blocked send or receive on them fail at once;
	 * the sessions free their own streams */
	for (size_t i = 0; i < HUB_MAX_STREAMS; i++)
		if (h->streams[i] != NULL)
			nng_stream_close(h->streams[i]);
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

bool
am_hub_stopping(am_hub *h)
{
	bool s;

	pthread_mutex_lock(&h->mu);
	s = h->stopping;
	pthread_mutex_unlock(&h->mu);
	return s;
}
