/*
 * audit_limit.c — refusals anyone can cause, audited at a bounded cost.
 * A refusal is keyed by its event and the first words of its reason; the
 * first of each key in a minute is written in full, the rest are counted
 * and written as one "<event>_repeated" record (count, first and last
 * time) when that key comes up again after its minute, when its slot is
 * needed for another key, or at close. At most AM_AUDIT_KEYS keys are
 * tracked, so a flood costs at most 2 x AM_AUDIT_KEYS lines a minute
 * however it varies its input.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AM_AUDIT_KEYS   64
#define WINDOW_MS       60000
#define KEY_CHARS       48  /* of the reason: enough to tell kinds apart, not inputs */

struct slot {
	bool used;
	char key[96];
	char event[48];
	uint64_t window_start, first_ms, last_ms;
	uint64_t suppressed;
};

struct am_audit_limiter {
	pthread_mutex_t mu;
	am_audit *a;
	struct slot s[AM_AUDIT_KEYS];
};

int
am_audit_limiter_new(am_audit_limiter **out, am_audit *a)
{
	am_audit_limiter *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (l == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	l->a = a;
	*out = l;
	return 0;
}

/* write slot's count, if any (l->mu held) */
static void
flush(am_audit_limiter *l, struct slot *s)
{
	if (s->used && s->suppressed > 0) {
		char ev[64];
		snprintf(ev, sizeof(ev), "%s_repeated", s->event);
		(void) am_audit_log(l->a, ev, "anonymous", NULL,
		    json_pack("{s:s, s:I, s:I, s:I}", "kind", s->key, "count", (json_int_t) s->suppressed, "first_ms",
		        (json_int_t) s->first_ms, "last_ms", (json_int_t) s->last_ms));
	}
	s->suppressed = 0;
}

void
am_audit_limiter_free(am_audit_limiter *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < AM_AUDIT_KEYS; i++)
		flush(l, &l->s[i]);
	pthread_mutex_unlock(&l->mu);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int
am_audit_refusal(am_audit_limiter *l, const char *event, const char *reason, const char *subject, json_t *details,
    uint64_t now_ms)
{
	char key[96];
	struct slot *s = NULL, *oldest = NULL;
	int rc = 0;

	if (l == NULL || l->a == NULL) {
		json_decref(details);
		return 0;
	}
	snprintf(key, sizeof(key), "%.40s: %.*s", event, KEY_CHARS, reason ? reason : "");
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < AM_AUDIT_KEYS && s == NULL; i++)
		if (l->s[i].used && strcmp(l->s[i].key, key) == 0)
			s = &l->s[i];
	for (size_t i = 0; i < AM_AUDIT_KEYS && s == NULL; i++) {
		if (!l->s[i].used) {
			oldest = &l->s[i];
			break;
		}
		if (oldest == NULL || l->s[i].last_ms < oldest->last_ms)
			oldest = &l->s[i];
	}
	if (s == NULL) { /* a new key takes a free slot, or the least recent one */
		s = oldest;
		flush(l, s);
		memset(s, 0, sizeof(*s));
		s->used = true;
		snprintf(s->key, sizeof(s->key), "%s", key);
		snprintf(s->event, sizeof(s->event), "%s", event);
	} else if (now_ms - s->window_start >= WINDOW_MS) {
		flush(l, s); /* its minute is over: the count, then this one in full */
		s->window_start = 0;
	}
	s->last_ms = now_ms;
	if (s->window_start == 0) {
		s->window_start = now_ms;
		s->first_ms = now_ms;
		rc = am_audit_log(l->a, event, subject, NULL, details);
	} else {
		if (s->suppressed++ == 0)
			s->first_ms = now_ms;
		json_decref(details);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}
