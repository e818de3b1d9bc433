/*
 * audit_syslog.c — audit records to a SIEM as RFC 5424 messages: over UDP
 * (RFC 5426, one datagram each), TCP (RFC 6587 octet counting: "LEN SP
 * MSG") or TLS (RFC 5425, the same framing; nng's TLS, the CA named by
 * AUDIT_SYSLOG_CA, the server's name checked).
 *
 * A stream collector may be slow, down or restarting: records go through
 * a queue (AM_SYSLOG_QUEUE) to one sender thread, so the audit log's
 * writers never wait on the network. When the queue is full the newest
 * are dropped and counted, and the count goes out as a record of its own
 * once the collector takes records again. A record over the transport's
 * limit (AUDIT_SYSLOG_MAX; 2048 bytes for UDP, 8192 for streams: what
 * collectors take by default) goes as a stub with its size and hash,
 * which is the next audit line's "prev": the full line is in the log.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit_syslog.h"
#include "am_core.h"

#include <errno.h>
#include <netdb.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct msg {
	char *text;
	size_t len;
};

struct am_syslog {
	bool stream;             /* tcp or tls: the sender thread */
	int udp_fd;
	size_t max;              /* a message's most bytes, framing excluded */
	char host[64];           /* ours, for the HOSTNAME field */
	nng_stream_dialer *dialer;
	nng_tls_config *tls;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct msg q[AM_SYSLOG_QUEUE];
	size_t head, count;
	unsigned long long dropped;
	bool stop;
};

/* "[udp://|tcp://|tls://]host:port" into its parts */
static int
parse_spec(const char *spec, char scheme[8], char host[256], char port[8])
{
	const char *p = spec, *colon, *sep = strstr(spec, "://");
	size_t hl;

	snprintf(scheme, 8, "udp");
	if (sep != NULL) {
		if ((size_t) (sep - spec) >= 8 || (strncmp(spec, "udp", 3) && strncmp(spec, "tcp", 3) && strncmp(spec, "tls", 3)) ||
		    sep - spec != 3)
			return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: the scheme is udp://, tcp:// or tls://", spec);
		snprintf(scheme, 8, "%.3s", spec);
		p = sep + 3;
	}
	colon = strrchr(p, ':');
	if (colon == NULL || colon == p || colon[1] == '\0' || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: want [udp://|tcp://|tls://]HOST:PORT (siem.example:514)", spec);
	hl = (size_t) (colon - p);
	if (p[0] == '[' && hl > 2 && p[hl - 1] == ']') { /* [v6] */
		p++;
		hl -= 2;
	}
	if (hl >= 256)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: the host is too long", spec);
	snprintf(host, 256, "%.*s", (int) hl, p);
	snprintf(port, 8, "%s", colon + 1);
	return 0;
}

static int
open_udp(am_syslog *s, const char *spec, const char *host, const char *port)
{
	struct addrinfo hints = {0}, *res = NULL;
	int rv;

	hints.ai_socktype = SOCK_DGRAM;
	if ((rv = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: %s", spec, gai_strerror(rv));
	s->udp_fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	/* connected: send() then needs no address, and a refusal is ours to ignore */
	if (s->udp_fd < 0 || connect(s->udp_fd, res->ai_addr, res->ai_addrlen) != 0) {
		rv = errno;
		freeaddrinfo(res);
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: %s", spec, strerror(rv));
	}
	freeaddrinfo(res);
	return 0;
}

static int
open_stream(am_syslog *s, const char *spec, const char *scheme, const char *host, const char *port)
{
	char url[300];
	const char *ca = getenv("AUDIT_SYSLOG_CA"), *cert = getenv("AUDIT_SYSLOG_CERT"),
	           *name = getenv("AUDIT_SYSLOG_SERVER_NAME");
	bool tls = strcmp(scheme, "tls") == 0;
	struct stat st;
	int rv;

	snprintf(url, sizeof(url), "%s://%s%s%s:%s", tls ? "tls+tcp" : "tcp", strchr(host, ':') ? "[" : "", host,
	    strchr(host, ':') ? "]" : "", port);
	if ((rv = nng_stream_dialer_alloc(&s->dialer, url)) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: %s", spec, nng_strerror(rv));
	if (!tls)
		return 0;
	if (ca == NULL || ca[0] == '\0' || stat(ca, &st) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: tls:// needs AUDIT_SYSLOG_CA, the PEM file of the CA that "
		                               "signed the collector's certificate%s%s", spec, ca && ca[0] ? " (no such file: " : "",
		    ca && ca[0] ? ca : "");
	if ((rv = nng_tls_config_alloc(&s->tls, NNG_TLS_MODE_CLIENT)) != 0 ||
	    (rv = nng_tls_config_auth_mode(s->tls, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_tls_config_server_name(s->tls, name && name[0] ? name : host)) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: TLS: %s", spec, nng_strerror(rv));
	if ((rv = nng_tls_config_ca_file(s->tls, ca)) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG_CA=%s: %s", ca, nng_strerror(rv));
	if (cert != NULL && cert[0] && (rv = nng_tls_config_cert_key_file(s->tls, cert, NULL)) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG_CERT=%s (a PEM with the certificate and its key): %s", cert,
		    nng_strerror(rv));
	if ((rv = nng_stream_dialer_set_ptr(s->dialer, NNG_OPT_TLS_CONFIG, s->tls)) != 0)
		return am_error_set(AM_EINVAL, "AUDIT_SYSLOG=%s: TLS: %s", spec, nng_strerror(rv));
	return 0;
}

/* ---- the sender thread (tcp, tls) ---- */

/* A collector never writes to us: a receive that completes means it has
 * closed (or is not a collector). One stays posted on each connection,
 * so a collector that restarted while we were idle is noticed before a
 * record is written into the dead connection and lost. */
struct conn {
	nng_stream *st;
	nng_aio *watch;
	atomic_bool gone;
	char byte;
};

static void
on_watch(void *arg)
{
	struct conn *c = arg;
	atomic_store(&c->gone, true);
}

static void
conn_close(struct conn *c)
{
	if (c->st == NULL)
		return;
	nng_stream_close(c->st);
	/* the posted receive ends with the close; wait, not stop: a stopped
	 * aio takes no more operations, and this one watches the next
	 * connection too */
	nng_aio_cancel(c->watch);
	nng_aio_wait(c->watch);
	nng_stream_free(c->st);
	c->st = NULL;
}

static void
conn_watch(struct conn *c)
{
	nng_iov iov = {&c->byte, 1};

	atomic_store(&c->gone, false);
	nng_aio_set_iov(c->watch, 1, &iov);
	nng_stream_recv(c->st, c->watch);
}

/* the whole of p on the stream; false: the stream is gone */
static bool
send_all(nng_stream *st, nng_aio *aio, const char *p, size_t n)
{
	while (n > 0) {
		nng_iov iov = {(void *) p, n};
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_send(st, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0 || nng_aio_count(aio) == 0)
			return false;
		p += nng_aio_count(aio);
		n -= nng_aio_count(aio);
	}
	return true;
}

static void
nap(am_syslog *s, int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	if (!s->stop)
		pthread_cond_timedwait(&s->cv, &s->mu, &t);
	pthread_mutex_unlock(&s->mu);
}

static void *
sender(void *arg)
{
	am_syslog *s = arg;
	struct conn c = {0};
	nng_aio *aio = NULL;
	int backoff = 500;
	uint64_t give_up = 0;

	if (nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NULL;
	if (nng_aio_alloc(&c.watch, on_watch, &c) != 0) {
		nng_aio_free(aio);
		return NULL;
	}
	nng_aio_set_timeout(aio, 5000);
	for (;;) {
		struct msg m;
		unsigned long long dropped;
		pthread_mutex_lock(&s->mu);
		while (s->count == 0 && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop && give_up == 0)
			give_up = am_now_ms() + 2000; /* what is queued gets 2 s */
		if (s->count == 0 || (give_up && am_now_ms() > give_up)) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		m = s->q[s->head];
		dropped = s->dropped;
		pthread_mutex_unlock(&s->mu);
		if (give_up)
			nng_aio_set_timeout(aio, 1000);
		if (c.st != NULL && atomic_load(&c.gone))
			conn_close(&c); /* closed by the collector: dial again */
		if (c.st == NULL) {
			nng_stream_dialer_dial(s->dialer, aio);
			nng_aio_wait(aio);
			if (nng_aio_result(aio) != 0) {
				nap(s, give_up ? 200 : backoff);
				backoff = backoff < 30000 ? backoff * 2 : 30000;
				continue;
			}
			c.st = nng_aio_get_output(aio, 0);
			conn_watch(&c);
			backoff = 500;
		}
		if (dropped > 0) {
			char note[300], frame[320];
			int n = snprintf(note, sizeof(note), "<%d>1 - %s agent-mesh %ld syslog_dropped - {\"event\":\"syslog_dropped\","
			                 "\"count\":%llu,\"why\":\"the collector did not take records fast enough\"}",
			    10 * 8 + 4, s->host, (long) getpid(), dropped);
			int f = snprintf(frame, sizeof(frame), "%d %s", n, note);
			if (!send_all(c.st, aio, frame, (size_t) f)) {
				conn_close(&c);
				continue;
			}
			pthread_mutex_lock(&s->mu);
			s->dropped -= dropped;
			pthread_mutex_unlock(&s->mu);
		}
		if (!send_all(c.st, aio, m.text, m.len)) {
			conn_close(&c); /* the same record again on the next connection */
			continue;
		}
		pthread_mutex_lock(&s->mu);
		free(s->q[s->head].text);
		s->head = (s->head + 1) % AM_SYSLOG_QUEUE;
		s->count--;
		pthread_mutex_unlock(&s->mu);
	}
	conn_close(&c);
	nng_aio_free(c.watch);
	nng_aio_free(aio);
	return NULL;
}

int
am_syslog_open(am_syslog **out, const char *spec)
{
	char scheme[8], host[256], port[8];
	long max = 0;
	am_syslog *s;
	int rc;

	*out = NULL;
	if (spec == NULL || spec[0] == '\0')
		return 0;
	if ((rc = parse_spec(spec, scheme, host, port)) != 0)
		return rc;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	s->udp_fd = -1;
	s->stream = strcmp(scheme, "udp") != 0;
	s->max = s->stream ? 8192 : 2048;
	if (getenv("AUDIT_SYSLOG_MAX") != NULL && getenv("AUDIT_SYSLOG_MAX")[0]) {
		char *end;
		max = strtol(getenv("AUDIT_SYSLOG_MAX"), &end, 10);
		if (*end != '\0' || max < 480 || max > 65000) {
			rc = am_error_set(AM_EINVAL, "AUDIT_SYSLOG_MAX=%s: a message size from 480 to 65000 bytes",
			    getenv("AUDIT_SYSLOG_MAX"));
			goto fail;
		}
		s->max = (size_t) max;
	}
	if (gethostname(s->host, sizeof(s->host)) != 0 || s->host[0] == '\0')
		snprintf(s->host, sizeof(s->host), "-");
	s->host[strcspn(s->host, " ")] = '\0';
	if ((rc = s->stream ? open_stream(s, spec, scheme, host, port) : open_udp(s, spec, host, port)) != 0)
		goto fail;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (s->stream && pthread_create(&s->th, NULL, sender, s) != 0) {
		rc = am_error_set(AM_ENOMEM, "AUDIT_SYSLOG: no thread for the sender");
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->udp_fd >= 0)
		close(s->udp_fd);
	nng_stream_dialer_free(s->dialer);
	if (s->tls != NULL)
		nng_tls_config_free(s->tls);
	free(s);
	return rc;
}

void
am_syslog_send(am_syslog *s, int severity, const char *ts, const char *event, const char *line)
{
	char head[200], stub[300], *out;
	const char *body = line;
	size_t hl, bl = strlen(line), cap;
	int n;

	if (s == NULL)
		return;
	/* RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG;
	 * facility authpriv (10) */
	n = snprintf(head, sizeof(head), "<%d>1 %s %s agent-mesh %ld %.32s - ", 10 * 8 + severity, ts, s->host,
	    (long) getpid(), event);
	if (n < 0 || (size_t) n >= sizeof(head))
		return;
	hl = (size_t) n;
	if (hl + bl > s->max) {
		uint8_t h[32];
		char hex[65];
		crypto_generichash(h, sizeof(h), (const uint8_t *) line, bl, NULL, 0);
		sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
		n = snprintf(stub, sizeof(stub), "{\"event\":\"%.32s\",\"truncated\":true,\"bytes\":%zu,\"hash\":\"%s\"}", event, bl,
		    hex);
		body = stub;
		bl = (size_t) n;
	}
	if (!s->stream) {
		char *dgram = malloc(hl + bl);
		if (dgram == NULL)
			return;
		memcpy(dgram, head, hl);
		memcpy(dgram + hl, body, bl);
		(void) send(s->udp_fd, dgram, hl + bl, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(dgram);
		return;
	}
	cap = hl + bl + 16;
	if ((out = malloc(cap)) == NULL)
		return;
	n = snprintf(out, cap, "%zu %s%.*s", hl + bl, head, (int) bl, body);
	pthread_mutex_lock(&s->mu);
	if (s->count == AM_SYSLOG_QUEUE) {
		s->dropped++;
		free(out);
	} else {
		s->q[(s->head + s->count) % AM_SYSLOG_QUEUE] = (struct msg){out, (size_t) n};
		s->count++;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

void
am_syslog_close(am_syslog *s)
{
	if (s == NULL)
		return;
	if (s->stream) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
		for (size_t i = 0; i < s->count; i++)
			free(s->q[(s->head + i) % AM_SYSLOG_QUEUE].text);
	}
	if (s->udp_fd >= 0)
		close(s->udp_fd);
	nng_stream_dialer_free(s->dialer);
	if (s->tls != NULL)
		nng_tls_config_free(s->tls);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
