/*
 * link_stream.c — the nng streams under link sessions: the options every
 * link stream gets, the listening server, the network key argument, a
 * handle that cancels a session from another thread, and freeing closed
 * streams late.
 */
#define _POSIX_C_SOURCE 200809L
#include "link_private.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- freeing streams late ---- */

/* nng 1.5's poller can still be dispatching an event for a connection
 * just closed; freeing it at once under load (hundreds of sessions ending
 * together, a flood on the link port) made it lock a freed mutex and
 * panic. A closed stream is freed two seconds later instead (or when more
 * than STREAM_GRAVES wait). */
#define STREAM_GRAVES 1024
#define STREAM_GRAVE_MS 2000

static pthread_mutex_t graves_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	nng_stream *s;
	uint64_t at_ms;
} graves[STREAM_GRAVES];
static size_t graves_head, graves_n;

void
am_link_stream_bury(nng_stream *s)
{
	nng_stream *now[STREAM_GRAVES];
	size_t n = 0;
	uint64_t t = am_now_ms();

	if (s != NULL)
		nng_stream_close(s);
	pthread_mutex_lock(&graves_mu);
	/* free what has waited long enough, and the oldest if full */
	while (graves_n > 0 && (t - graves[graves_head].at_ms >= STREAM_GRAVE_MS || (s != NULL && graves_n == STREAM_GRAVES))) {
		now[n++] = graves[graves_head].s;
		graves_head = (graves_head + 1) % STREAM_GRAVES;
		graves_n--;
	}
	if (s != NULL) {
		size_t at = (graves_head + graves_n) % STREAM_GRAVES;
		graves[at].s = s;
		graves[at].at_ms = t;
		graves_n++;
	}
	pthread_mutex_unlock(&graves_mu);
	for (size_t i = 0; i < n; i++)
		nng_stream_free(now[i]);
}

/* ---- cancelling a session from another thread ---- */

struct am_link_cancel {
	pthread_mutex_t mu;
	_Atomic int fired;
	nng_aio *rx, *tx;
};

am_link_cancel *
am_link_cancel_new(void)
{
	am_link_cancel *c = calloc(1, sizeof(*c));
	if (c != NULL)
		pthread_mutex_init(&c->mu, NULL);
	return c;
}

void
am_link_cancel_free(am_link_cancel *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

bool
am_link_cancel_fired(am_link_cancel *c)
{
	return c->fired != 0;
}

void
am_link_cancel_fire(am_link_cancel *c)
{
	pthread_mutex_lock(&c->mu);
	c->fired = 1;
	/* only cancels, which nng allows from any thread: the session sees
	 * the failure (or the flag, before its next operation) and closes
	 * its own stream; a stream closed under a running operation from
	 * another thread once made nng panic on a freed lock */
	if (c->rx != NULL)
		nng_aio_cancel(c->rx);
	if (c->tx != NULL)
		nng_aio_cancel(c->tx);
	pthread_mutex_unlock(&c->mu);
}

void
lk_cancel_attach(am_link_cancel *c, nng_aio *rx, nng_aio *tx)
{
	pthread_mutex_lock(&c->mu);
	c->rx = rx;
	c->tx = tx;
	pthread_mutex_unlock(&c->mu);
}

/* Options every link stream gets. Frames are small and go one way at a
 * time: Nagle plus a delayed ack would hold each for 40 ms. A websocket
 * takes one link frame as one message, and nng drops messages over 1 MiB
 * by default: room for the largest frame (errors: not that transport). */
#define WS_MAX_MESSAGE ((size_t) AM_LINK_MAX_FRAME + 4 + 64)

void
lk_dialer_options(nng_stream_dialer *d)
{
	(void) nng_stream_dialer_set_bool(d, NNG_OPT_TCP_NODELAY, true);
	(void) nng_stream_dialer_set_size(d, NNG_OPT_RECVMAXSZ, WS_MAX_MESSAGE);
	(void) nng_stream_dialer_set_size(d, NNG_OPT_WS_RECVMAXFRAME, WS_MAX_MESSAGE);
}

void
lk_listener_options(nng_stream_listener *l)
{
	(void) nng_stream_listener_set_bool(l, NNG_OPT_TCP_NODELAY, true);
	(void) nng_stream_listener_set_size(l, NNG_OPT_RECVMAXSZ, WS_MAX_MESSAGE);
	(void) nng_stream_listener_set_size(l, NNG_OPT_WS_RECVMAXFRAME, WS_MAX_MESSAGE);
}

int
am_netkey_parse(uint8_t key[static 32], const char *arg)
{
	char *text = NULL;
	size_t len = 0, got = 0;
	const char *hex = arg;
	int rc = 0;

	if (arg[0] == '@') {
		if ((rc = am_file_read(&text, &len, arg + 1, 4096)) != 0)
			return rc;
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
			text[--len] = '\0';
		hex = text;
	}
	if (strlen(hex) != 64 || sodium_hex2bin(key, 32, hex, 64, NULL, &got, NULL) != 0 || got != 32)
		rc = am_error_set(AM_EFIELD, "network key must be 64 hex characters (or @FILE holding them)");
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return rc;
}

int
am_netkey_save(const char *path, const uint8_t key[static 32], bool force)
{
	char hex[66];
	int rc;

	sodium_bin2hex(hex, 65, key, 32);
	hex[64] = '\n';
	hex[65] = '\0';
	rc = am_file_write_atomic(path, hex, 65, 0600, force);
	sodium_memzero(hex, sizeof(hex));
	return rc;
}

int
am_netkey_beside(char *out, size_t cap, const char *identity_path)
{
	const char *slash = strrchr(identity_path, '/');
	int n = slash == NULL ? snprintf(out, cap, "network.key")
	                      : snprintf(out, cap, "%.*s/network.key", (int) (slash - identity_path), identity_path);

	if (n < 0 || (size_t) n >= cap)
		return am_error_set(AM_ETOOBIG, "%s: the path is too long", identity_path);
	return 0;
}

void
am_key_fingerprint(char out[static 17], const uint8_t key[static 32])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), key, 32, NULL, 0);
	sodium_bin2hex(out, 17, h, 8);
}

struct am_link_server {
	nng_stream_listener *l;
	nng_aio *aio;
};

int
am_link_server_open(am_link_server **out, const char *url)
{
	am_link_server *sv = calloc(1, sizeof(*sv));
	int rv;

	*out = NULL;
	if (sv == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if ((rv = nng_aio_alloc(&sv->aio, NULL, NULL)) != 0 || (rv = nng_stream_listener_alloc(&sv->l, url)) != 0 ||
	    (lk_listener_options(sv->l), false) ||
	    (rv = nng_stream_listener_listen(sv->l)) != 0) {
		am_link_server_close(sv);
		return lk_fail(rv, url);
	}
	*out = sv;
	return 0;
}

int
am_link_server_port(am_link_server *sv)
{
	int port = 0;
	return nng_stream_listener_get_int(sv->l, NNG_OPT_TCP_BOUND_PORT, &port) == 0 ? port : 0;
}

void
am_link_server_close(am_link_server *sv)
{
	if (sv == NULL)
		return;
	if (sv->aio) {
		nng_aio_stop(sv->aio);
		nng_aio_free(sv->aio);
	}
	if (sv->l) {
		nng_stream_listener_close(sv->l);
		nng_stream_listener_free(sv->l);
	}
	free(sv);
}

int
am_link_server_accept(am_link_server *sv, nng_stream **s, int wait_ms)
{
	int rv;

	*s = NULL;
	nng_aio_set_timeout(sv->aio, wait_ms > 0 ? wait_ms : NNG_DURATION_INFINITE);
	nng_stream_listener_accept(sv->l, sv->aio);
	nng_aio_wait(sv->aio);
	if ((rv = nng_aio_result(sv->aio)) != 0)
		return rv == NNG_ETIMEDOUT ? AM_ENOTFOUND : lk_fail(rv, "waiting for a peer");
	*s = nng_aio_get_output(sv->aio, 0);
	return 0;
}

