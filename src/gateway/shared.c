/*
 * shared.c — the state a gateway pair shares in Redis (--shared-state
 * redis://[user:pass@]host:port[/db], or SHARED_STATE), over hiredis:
 * what a client may ask either gateway about. One connection, used under
 * a lock with a 500 ms timeout, so a slow Redis costs a request at most
 * that; a thread pings it each second and reconnects when it is gone
 * (a restarted Redis is picked up without restarting the gateway).
 * Writes made while Redis is down are queued (bounded: the oldest goes
 * first, counted) and replayed in order when it is back; reads while it
 * is down fail at once, and the caller serves what it holds itself.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_gateway.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARED_QUEUE_MAX 10000            /* writes held while Redis is down */
#define SHARED_QUEUE_BYTES (64u << 20)
#define SHARED_TIMEOUT_MS 500

struct pending_write {
	char *key;
	char *val;     /* NULL: a delete */
	size_t len;
	uint64_t ttl_ms;
};

struct am_shared {
	am_shared_url url;
	pthread_mutex_t mu;       /* the connection and the queue */
	redisContext *c;
	atomic_bool up;
	struct pending_write *q;
	size_t nq, qbytes;
	uint64_t dropped;         /* queued writes lost to the bound */
	pthread_t th;
	bool th_started;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	bool stopping;
	bool said_down;
};

static bool
reply_ok(redisReply *r)
{
	return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* under s->mu: a connection, authenticated and on its database, or none */
static bool
connect_now(am_shared *s)
{
	struct timeval tv = {0, SHARED_TIMEOUT_MS * 1000};
	redisContext *c = redisConnectWithTimeout(s->url.host, s->url.port, tv);
	redisReply *r = NULL;

	if (c == NULL || c->err)
		goto fail;
	if (redisSetTimeout(c, tv) != REDIS_OK)
		goto fail;
	if (s->url.pass[0]) {
		r = s->url.user[0] ? redisCommand(c, "AUTH %s %s", s->url.user, s->url.pass) : redisCommand(c, "AUTH %s", s->url.pass);
		if (!reply_ok(r)) {
			if (r != NULL && !s->said_down)
				am_say("shared state %s: AUTH refused: %s", s->url.shown, r->str);
			goto fail;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (s->url.db != 0) {
		r = redisCommand(c, "SELECT %d", s->url.db);
		if (!reply_ok(r))
			goto fail;
		freeReplyObject(r);
		r = NULL;
	}
	s->c = c;
	return true;
fail:
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return false;
}

static void
drop_connection(am_shared *s)
{
	if (s->c != NULL)
		redisFree(s->c);
	s->c = NULL;
	atomic_store(&s->up, false);
}

static bool
write_now(am_shared *s, const struct pending_write *w)
{
	redisReply *r;

	if (w->val == NULL)
		r = redisCommand(s->c, "DEL %s", w->key);
	else if (w->ttl_ms > 0)
		r = redisCommand(s->c, "SET %s %b PX %llu", w->key, w->val, w->len, (unsigned long long) w->ttl_ms);
	else
		r = redisCommand(s->c, "SET %s %b", w->key, w->val, w->len);
	bool ok = reply_ok(r);
	if (r != NULL)
		freeReplyObject(r);
	if (r == NULL) /* the connection failed: the write waits for the next one */
		drop_connection(s);
	return ok || r != NULL; /* a reply, even an error, is not retried */
}

static void
queue_free_one(struct pending_write *w)
{
	free(w->key);
	free(w->val);
}

/* under s->mu: keep w for later, the oldest going when full */
static void
enqueue(am_shared *s, struct pending_write *w)
{
	while (s->nq > 0 && (s->nq == SHARED_QUEUE_MAX || s->qbytes + w->len > SHARED_QUEUE_BYTES)) {
		s->qbytes -= s->q[0].len;
		queue_free_one(&s->q[0]);
		memmove(s->q, s->q + 1, (s->nq - 1) * sizeof(*s->q));
		s->nq--;
		s->dropped++;
	}
	s->q[s->nq++] = *w;
	s->qbytes += w->len;
}

/* under s->mu, connected: the queue in order, as far as it goes */
static void
replay(am_shared *s)
{
	size_t done = 0;

	while (done < s->nq && s->c != NULL && write_now(s, &s->q[done]))
		done++;
	for (size_t i = 0; i < done; i++) {
		s->qbytes -= s->q[i].len;
		queue_free_one(&s->q[i]);
	}
	memmove(s->q, s->q + done, (s->nq - done) * sizeof(*s->q));
	s->nq -= done;
	if (done > 0)
		am_say("shared state %s: %zu writes made while it was down replayed", s->url.shown, done);
}

static void *
keeper(void *arg)
{
	am_shared *s = arg;

	pthread_mutex_lock(&s->stop_mu);
	while (!s->stopping) {
		pthread_mutex_unlock(&s->stop_mu);
		pthread_mutex_lock(&s->mu);
		if (s->c == NULL) {
			if (connect_now(s)) {
				atomic_store(&s->up, true);
				am_say("shared state %s: connected", s->url.shown);
				s->said_down = false;
				replay(s);
			} else if (!s->said_down) {
				am_say("shared state %s: down; serving what this gateway holds, writes queued (retrying each second)",
				    s->url.shown);
				s->said_down = true;
			}
		} else {
			redisReply *r = redisCommand(s->c, "PING");
			if (r == NULL) {
				drop_connection(s);
				am_say("shared state %s: lost; serving what this gateway holds, writes queued", s->url.shown);
				s->said_down = true;
			} else {
				freeReplyObject(r);
				if (s->nq > 0)
					replay(s);
			}
		}
		pthread_mutex_unlock(&s->mu);
		pthread_mutex_lock(&s->stop_mu);
		if (!s->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->stop_cv, &s->stop_mu, &ts);
		}
	}
	pthread_mutex_unlock(&s->stop_mu);
	return NULL;
}

int
am_shared_open(am_shared **out, const char *url)
{
	am_shared *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if ((rc = am_shared_url_parse(&s->url, url)) != 0) {
		free(s);
		return rc;
	}
	if ((s->q = calloc(SHARED_QUEUE_MAX, sizeof(*s->q))) == NULL) {
		free(s);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->stop_mu, NULL);
	pthread_cond_init(&s->stop_cv, NULL);
	/* the first try now, so a gateway that starts with Redis up serves
	 * from it at once; down is not an error: the keeper retries */
	pthread_mutex_lock(&s->mu);
	if (connect_now(s))
		atomic_store(&s->up, true);
	pthread_mutex_unlock(&s->mu);
	am_say("shared state %s: %s", s->url.shown, atomic_load(&s->up) ? "connected" : "down at start; retrying each second");
	s->said_down = !atomic_load(&s->up);
	if (pthread_create(&s->th, NULL, keeper, s) != 0) {
		am_shared_close(s);
		return am_error_set(AM_ENOMEM, "no thread for the shared state");
	}
	s->th_started = true;
	*out = s;
	return 0;
}

bool
am_shared_up(am_shared *s)
{
	return s != NULL && atomic_load(&s->up);
}

void
am_shared_counts(am_shared *s, size_t *queued, uint64_t *dropped)
{
	pthread_mutex_lock(&s->mu);
	*queued = s->nq;
	*dropped = s->dropped;
	pthread_mutex_unlock(&s->mu);
}

static int
put(am_shared *s, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
	struct pending_write w = {strdup(key), NULL, len, ttl_ms};

	if (w.key == NULL || (val != NULL && (w.val = malloc(len + 1)) == NULL)) {
		queue_free_one(&w);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	if (val != NULL)
		memcpy(w.val, val, len);
	pthread_mutex_lock(&s->mu);
	/* in order: nothing jumps ahead of what is queued */
	if (s->c != NULL && s->nq == 0 && write_now(s, &w))
		queue_free_one(&w);
	else
		enqueue(s, &w);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int
am_shared_set(am_shared *s, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
	return put(s, key, val != NULL ? val : "", len, ttl_ms);
}

int
am_shared_del(am_shared *s, const char *key)
{
	return put(s, key, NULL, 0, 0);
}

int
am_shared_get(am_shared *s, const char *key, char **val, size_t *len)
{
	redisReply *r;
	int rc;

	*val = NULL;
	*len = 0;
	pthread_mutex_lock(&s->mu);
	/* a write still queued is the newest value */
	for (size_t i = s->nq; i-- > 0;)
		if (strcmp(s->q[i].key, key) == 0) {
			if (s->q[i].val == NULL) {
				rc = am_error_set(AM_ENOTFOUND, "%s: not in the shared state", key);
			} else if ((*val = malloc(s->q[i].len + 1)) == NULL) {
				rc = am_error_set(AM_ENOMEM, "out of memory");
			} else {
				memcpy(*val, s->q[i].val, s->q[i].len);
				(*val)[s->q[i].len] = '\0';
				*len = s->q[i].len;
				rc = 0;
			}
			goto out;
		}
	if (s->c == NULL) {
		rc = am_error_set(AM_EIO, "shared state %s is down", s->url.shown);
		goto out;
	}
	if ((r = redisCommand(s->c, "GET %s", key)) == NULL) {
		drop_connection(s);
		rc = am_error_set(AM_EIO, "shared state %s: lost", s->url.shown);
		goto out;
	}
	if (r->type == REDIS_REPLY_STRING) {
		if ((*val = malloc(r->len + 1)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
		} else {
			memcpy(*val, r->str, r->len);
			(*val)[r->len] = '\0';
			*len = r->len;
			rc = 0;
		}
	} else if (r->type == REDIS_REPLY_NIL) {
		rc = am_error_set(AM_ENOTFOUND, "%s: not in the shared state", key);
	} else {
		rc = am_error_set(AM_EIO, "shared state %s: %s", s->url.shown, r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
	}
	freeReplyObject(r);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
am_shared_claim(am_shared *s, const char *key, const char *val, char *winner, size_t cap)
{
	redisReply *r;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->c == NULL) {
		rc = am_error_set(AM_EIO, "shared state %s is down", s->url.shown);
		goto out;
	}
	/* the first to set it wins; everyone then reads what won */
	if ((r = redisCommand(s->c, "SET %s %s NX", key, val)) == NULL) {
		drop_connection(s);
		rc = am_error_set(AM_EIO, "shared state %s: lost", s->url.shown);
		goto out;
	}
	freeReplyObject(r);
	if ((r = redisCommand(s->c, "GET %s", key)) == NULL) {
		drop_connection(s);
		rc = am_error_set(AM_EIO, "shared state %s: lost", s->url.shown);
		goto out;
	}
	if (r->type == REDIS_REPLY_STRING && r->len < cap) {
		memcpy(winner, r->str, r->len);
		winner[r->len] = '\0';
	} else
		rc = am_error_set(AM_EIO, "shared state %s: %s is not a value this gateway can take", s->url.shown, key);
	freeReplyObject(r);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

const char *
am_shared_shown(const am_shared *s)
{
	return s->url.shown;
}

void
am_shared_close(am_shared *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->stop_mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->stop_cv);
	pthread_mutex_unlock(&s->stop_mu);
	if (s->th_started)
		pthread_join(s->th, NULL);
	drop_connection(s);
	for (size_t i = 0; i < s->nq; i++)
		queue_free_one(&s->q[i]);
	if (s->nq > 0)
		am_say("shared state %s: %zu writes still queued at stop were not written", s->url.shown, s->nq);
	free(s->q);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->stop_mu);
	pthread_cond_destroy(&s->stop_cv);
	sodium_memzero(s->url.pass, sizeof(s->url.pass));
	free(s);
}
