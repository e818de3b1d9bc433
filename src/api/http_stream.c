/*
 * http_stream.c — answers whose body follows in pieces: a handler opens
 * the stream with its status and type, writes from any thread while the
 * client reads (chunked transfer; the MCP server's text/event-stream
 * replies and its GET streams), and ends it. The connection's own thread
 * (libmicrohttpd's thread-per-connection) waits in the reader for the
 * next piece, so a stream costs no polling. What a client leaves unread
 * is bounded: a writer that gets ahead by AM_HTTP_STREAM_MAX bytes is
 * told the stream is gone, as it is when the client leaves.
 */
#define _POSIX_C_SOURCE 200809L
#include "http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AM_HTTP_STREAM_MAX (1u << 20)

struct am_http_stream {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	am_http_server *srv;
	char *buf;
	size_t len, cap, off; /* unread bytes are buf[off..len) */
	bool ended;           /* the writer is done: end of body once read */
	bool gone;            /* the client left, or the connection ended */
	int refs;             /* the writer's and libmicrohttpd's */
};

static void
stream_unref(am_http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	bool last = --s->refs == 0;
	pthread_mutex_unlock(&s->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->buf);
	free(s);
}

/* libmicrohttpd asks for the next bytes from the connection's thread:
 * wait for them, waking each second to see whether the server stops */
static ssize_t
stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	am_http_stream *s = cls;
	ssize_t n;

	(void) pos;
	pthread_mutex_lock(&s->mu);
	while (s->off == s->len && !s->ended && !s->gone && !atomic_load(&s->srv->stop)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	if (s->off < s->len) {
		n = (ssize_t) (s->len - s->off < max ? s->len - s->off : max);
		memcpy(out, s->buf + s->off, (size_t) n);
		s->off += (size_t) n;
		if (s->off == s->len)
			s->off = s->len = 0;
	} else if (s->ended) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->gone = true;
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* the response is done with: the client left or the body ended */
void
am_http_stream_released(void *cls)
{
	am_http_stream *s = cls;

	pthread_mutex_lock(&s->mu);
	s->gone = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	stream_unref(s);
}

int
am_http_stream_open(am_http_ex *ex, unsigned status, const char *type, const char *session, am_http_stream **out)
{
	am_http_stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (ex->conn == NULL) { /* am_http_local: nobody would ever read it */
		free(s);
		return am_error_set(AM_EINVAL, "no connection to stream an answer on");
	}
	if (s == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->srv = ex->srv;
	s->refs = 2;
	pthread_mutex_lock(&ex->mu);
	if (ex->answered) {
		pthread_mutex_unlock(&ex->mu);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return am_error_set(AM_EINVAL, "the request was answered already");
	}
	ex->status = status;
	ex->stream = s;
	snprintf(ex->type, sizeof(ex->type), "%s", type ? type : "");
	snprintf(ex->session, sizeof(ex->session), "%s", session ? session : "");
	ex->answered = true;
	pthread_cond_broadcast(&ex->cv);
	pthread_mutex_unlock(&ex->mu);
	*out = s;
	return 0;
}

struct MHD_Response *
am_http_stream_response(am_http_stream *s)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, am_http_stream_released);
	if (r == NULL)
		am_http_stream_released(s); /* as if the client had left */
	return r;
}

int
am_http_stream_write(am_http_stream *s, const void *buf, size_t len)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->gone || s->ended) {
		rc = am_error_set(AM_EIO, "the client is gone");
	} else if (s->len + len > AM_HTTP_STREAM_MAX) {
		s->gone = true; /* a client that reads nothing is not waited for */
		rc = am_error_set(AM_EIO, "the client reads too slowly (%u bytes unread)", AM_HTTP_STREAM_MAX);
	} else {
		if (s->len + len > s->cap) {
			size_t cap = s->cap ? s->cap : 4096;
			while (cap < s->len + len)
				cap *= 2;
			char *nb = realloc(s->buf, cap);
			if (nb == NULL) {
				rc = am_error_set(AM_ENOMEM, "out of memory");
				goto out;
			}
			s->buf = nb;
			s->cap = cap;
		}
		memcpy(s->buf + s->len, buf, len);
		s->len += len;
		pthread_cond_broadcast(&s->cv);
	}
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

bool
am_http_stream_alive(am_http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	bool alive = !s->gone && !atomic_load(&s->srv->stop);
	pthread_mutex_unlock(&s->mu);
	return alive;
}

void
am_http_stream_close(am_http_stream *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->ended = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	stream_unref(s);
}
