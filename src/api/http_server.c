/*
 * http_server.c — the daemons' HTTP servers: libmicrohttpd parses HTTP
 * (chunked bodies, 100-continue, pipelining), one thread per connection,
 * and we keep the door. Our acceptor takes each connection, so it can
 * bound what strangers spend before any handler runs:
 *   - at most max_connections at once and max_per_address from one
 *     address; past either, the oldest connection still waiting for a
 *     request head is closed for the newcomer (so a probe of /health gets
 *     in during a flood of idle sockets), else the newcomer gets a JSON 503;
 *   - a complete request head within header_timeout_ms of connecting,
 *     the next one on a kept-alive connection within idle_timeout_s of
 *     the previous answer, a whole body within body_timeout_ms of its
 *     head, and idle_timeout_s without a byte moving (MHD's timeout);
 *   - a route's pre hook (the token check) runs on the head, before a
 *     byte of the body is read, and Content-Length is checked against the
 *     route's limit then too: bodies without a valid token are never held;
 *   - bodies held at once, over all requests, are capped (body_budget).
 * Every answer the routes give is JSON; unknown paths get 404 and known
 * paths with another method 405 with Allow.
 */
#define _GNU_SOURCE
#include "http_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* fds a daemon needs besides HTTP (store, links, nng's own, the audit
 * log): the connection cap stays under the fd limit less these */
#define FD_RESERVE 48

static const char *const refused_names[AM_HTTP_REFUSED_KINDS] = {"header_timeout", "body_timeout", "evicted", "full",
    "busy"};

const char *
am_http_refused_name(int kind)
{
	return kind >= 0 && kind < AM_HTTP_REFUSED_KINDS ? refused_names[kind] : "?";
}

/* ---- limits ---- */

int
am_env_long(const char *name, long lo, long hi, long *v)
{
	const char *s = getenv(name);
	char *end = NULL;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	long x = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || x < lo || x > hi)
		return am_error_set(AM_EINVAL, "%s=%s: must be a whole number %ld..%ld", name, s, lo, hi);
	*v = x;
	return 0;
}

int
am_http_limits_from_env(am_http_limits *l)
{
	long v;
	int rc;

	l->header_timeout_ms = AM_HTTP_HEADER_TIMEOUT_MS;
	l->body_timeout_ms = AM_HTTP_BODY_TIMEOUT_MS;
	l->idle_timeout_s = AM_HTTP_IDLE_TIMEOUT_S;
	l->max_connections = AM_HTTP_MAX_CONNECTIONS;
	l->max_per_address = AM_HTTP_MAX_PER_ADDRESS;
	l->body_budget = (size_t) AM_HTTP_BODY_BUDGET_MIB << 20;
	v = l->header_timeout_ms / 1000;
	if ((rc = am_env_long("AM_HTTP_HEADER_TIMEOUT", 1, 3600, &v)) != 0)
		return rc;
	l->header_timeout_ms = (int) v * 1000;
	v = l->body_timeout_ms / 1000;
	if ((rc = am_env_long("AM_HTTP_BODY_TIMEOUT", 1, 3600, &v)) != 0)
		return rc;
	l->body_timeout_ms = (int) v * 1000;
	v = l->idle_timeout_s;
	if ((rc = am_env_long("AM_HTTP_IDLE_TIMEOUT", 1, 3600, &v)) != 0)
		return rc;
	l->idle_timeout_s = (int) v;
	v = l->max_connections;
	if ((rc = am_env_long("AM_HTTP_MAX_CONNECTIONS", 4, 65536, &v)) != 0)
		return rc;
	l->max_connections = (int) v;
	v = l->max_per_address;
	if ((rc = am_env_long("AM_HTTP_MAX_PER_ADDRESS", 1, 65536, &v)) != 0)
		return rc;
	l->max_per_address = (int) v;
	v = (long) (l->body_budget >> 20);
	if ((rc = am_env_long("AM_HTTP_BODY_BUDGET_MIB", 4, 65536, &v)) != 0)
		return rc;
	l->body_budget = (size_t) v << 20;
	return 0;
}

/* ---- the exchange ---- */

const char *
am_http_method(const am_http_ex *ex)
{
	return ex->method;
}

const char *
am_http_uri(const am_http_ex *ex)
{
	return ex->uri != NULL ? ex->uri : "/";
}

const char *
am_http_header(const am_http_ex *ex, const char *name)
{
	if (ex->conn == NULL) { /* served in-process (am_http_local) */
		for (const char *const *h = ex->local_headers; h != NULL && h[0] != NULL; h += 2)
			if (strcasecmp(h[0], name) == 0)
				return h[1];
		return NULL;
	}
	return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
}

const void *
am_http_body(const am_http_ex *ex, size_t *len)
{
	*len = ex->blen;
	return ex->body;
}

void *
am_http_data(const am_http_ex *ex)
{
	return ex->route != NULL ? ex->route->data : NULL;
}

void
am_http_server_set_data(am_http_server *s, void *data)
{
	s->data = data;
}

void *
am_http_server_data(const am_http_ex *ex)
{
	return ex->srv != NULL ? ex->srv->data : NULL;
}

void
am_http_answer(am_http_ex *ex, unsigned status, const char *type, const char *body, size_t len, const char *session,
    const char *allow)
{
	pthread_mutex_lock(&ex->mu);
	if (!ex->answered) {
		ex->status = status;
		if (body != NULL && (ex->abody = malloc(len + 1)) != NULL) {
			memcpy(ex->abody, body, len);
			ex->alen = len;
		} else if (body != NULL)
			ex->status = 500;
		snprintf(ex->type, sizeof(ex->type), "%s", type ? type : "");
		snprintf(ex->session, sizeof(ex->session), "%s", session ? session : "");
		snprintf(ex->allow, sizeof(ex->allow), "%s", allow ? allow : "");
		ex->answered = true;
		pthread_cond_broadcast(&ex->cv);
	}
	pthread_mutex_unlock(&ex->mu);
}

void
am_http_ex_free(am_http_ex *ex)
{
	if (ex == NULL)
		return;
	if (ex->reserved > 0)
		atomic_fetch_sub(&ex->srv->body_bytes, ex->reserved);
	free(ex->body);
	free(ex->abody);
	free(ex->uri);
	if (ex->upgrade != NULL)
		MHD_destroy_response(ex->upgrade);
	if (ex->stream != NULL && !ex->stream_queued)
		am_http_stream_released(ex->stream);
	pthread_mutex_destroy(&ex->mu);
	pthread_cond_destroy(&ex->cv);
	free(ex);
}

/* Hand what the exchange holds as its answer to MHD. close: the body
 * was not read (a refusal on the head), so the connection cannot carry
 * another request. */
static enum MHD_Result
queue(am_http_ex *ex, bool close)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (ex->upgrade != NULL)
		return MHD_queue_response(ex->conn, MHD_HTTP_SWITCHING_PROTOCOLS, ex->upgrade);
	if (ex->stream != NULL) {
		ex->stream_queued = true;
		r = am_http_stream_response(ex->stream);
	} else
		r = MHD_create_response_from_buffer(ex->alen, ex->abody != NULL ? ex->abody : (char *) "", MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (ex->stream != NULL) {
		MHD_add_response_header(r, "Content-Type", ex->type);
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx passes each piece on */
	} else if (ex->type[0] && ex->abody != NULL)
		MHD_add_response_header(r, "Content-Type", ex->type);
	if (ex->session[0])
		MHD_add_response_header(r, "Mcp-Session-Id", ex->session);
	if (ex->allow[0])
		MHD_add_response_header(r, "Allow", ex->allow);
	if (ex->status == 401)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
	if (ex->status == 503)
		MHD_add_response_header(r, "Retry-After", "1");
	if (close)
		MHD_add_response_header(r, "Connection", "close");
	ok = MHD_queue_response(ex->conn, ex->status, r);
	MHD_destroy_response(r);
	return ok;
}

/* A body may follow the head: a refusal on the head then ends the
 * connection (the body's bytes are never parsed as a request). */
static bool
body_pending(const am_http_ex *ex)
{
	const char *cl = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Content-Length");
	return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Transfer-Encoding") != NULL ||
	       (cl != NULL && strcmp(cl, "0") != 0);
}

/* {"error": msg} as text (malloc'd; NULL when out of memory) */
static char *
error_text(const char *msg)
{
	json_t *j = json_pack("{s:o}", "error", am_json_text(msg));
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

static enum MHD_Result
refuse(am_http_ex *ex, unsigned status, const char *allow, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result
refuse(am_http_ex *ex, unsigned status, const char *allow, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s = error_text(msg);
	am_http_answer(ex, status, "application/json", s != NULL ? s : "{}", s != NULL ? strlen(s) : 2, NULL, allow);
	free(s);
	ex->refused = true;
	return queue(ex, body_pending(ex));
}

/* A refusal in the middle of a chunked body. MHD takes no response
 * while a body is coming in, and reading the rest to answer after it
 * would let a sender keep us busy for as long as it likes: the JSON
 * answer is written straight to the socket (nothing else is being sent
 * on it) and the connection ends. */
static enum MHD_Result
refuse_mid_body(am_http_ex *ex, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result
refuse_mid_body(am_http_ex *ex, unsigned status, const char *fmt, ...)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char msg[300], out[700];
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s = error_text(msg);
	n = snprintf(out, sizeof(out),
	    "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
	    status, status == 413 ? "Content Too Large" : "Service Unavailable", s != NULL ? strlen(s) : 2,
	    status == 503 ? "Retry-After: 1\r\n" : "", s != NULL ? s : "{}");
	free(s);
	if (ci != NULL && n > 0 && (size_t) n < sizeof(out)) {
		int fd = ci->connect_fd;
		(void) send(fd, out, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
		/* a close with the sender's bytes unread is a reset, which can
		 * take the answer with it: read on briefly (1 s, 4 MiB at most) */
		(void) shutdown(fd, SHUT_WR);
		uint64_t end = am_now_ms() + 1000;
		size_t drained = 0;
		for (;;) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			uint64_t now = am_now_ms();
			char sink[16384];
			ssize_t got;
			if (now >= end || drained >= (4u << 20) || poll(&p, 1, (int) (end - now)) <= 0)
				break;
			if ((got = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) <= 0)
				break;
			drained += (size_t) got;
		}
	}
	ex->refused = true;
	return MHD_NO;
}

/* ---- routes ---- */

int
am_http_route(am_http_server *srv, const char *method, const char *path, bool tree, size_t body_max, am_http_fn pre,
    am_http_fn fn, void *data)
{
	struct am_http_route *r;

	if (srv->nroutes >= sizeof(srv->routes) / sizeof(srv->routes[0]) || strlen(path) >= sizeof(r->path) ||
	    strlen(method) >= sizeof(r->method))
		return am_error_set(AM_EINVAL, "HTTP route %s %s: too many routes or too long", method, path);
	r = &srv->routes[srv->nroutes++];
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->tree = tree;
	r->body_max = body_max;
	r->pre = pre;
	r->fn = fn;
	r->data = data;
	return 0;
}

static bool
path_matches(const struct am_http_route *r, const char *path, size_t *len)
{
	size_t n = strlen(r->path);

	if (strcmp(path, r->path) == 0) {
		*len = n + 1; /* an exact match beats any tree */
		return true;
	}
	if (r->tree && strncmp(path, r->path, n) == 0 && path[n] == '/') {
		*len = n;
		return true;
	}
	return false;
}

/* The route for method and path; NULL with allow filled ("GET, POST")
 * when the path is known for other methods, allow "" when unknown. */
const struct am_http_route *
am_http_route_find(const am_http_server *srv, const char *method, const char *path, char *allow, size_t cap)
{
	const struct am_http_route *best = NULL;
	size_t best_len = 0, len;
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;

	allow[0] = '\0';
	for (size_t i = 0; i < srv->nroutes; i++) {
		const struct am_http_route *r = &srv->routes[i];
		if (!path_matches(r, path, &len))
			continue;
		if (strcmp(r->method, m) == 0 && len > best_len) {
			best = r;
			best_len = len;
		}
		if (strstr(allow, r->method) == NULL) {
			size_t used = strlen(allow);
			snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", r->method);
		}
	}
	return best;
}

/* ---- MHD's callbacks ---- */

static struct am_http_slot *
slot_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

bool
am_http_from_loopback(const am_http_ex *ex)
{
	const struct am_http_slot *s = ex->conn != NULL ? slot_of(ex->conn) : NULL;

	/* the address is set at accept and never changes */
	return s != NULL && (strncmp(s->addr, "127.", 4) == 0 || strcmp(s->addr, "::1") == 0 ||
	                        strncmp(s->addr, "::ffff:127.", 11) == 0);
}

const char *
am_http_peer_address(const am_http_ex *ex)
{
	const struct am_http_slot *s = ex->conn != NULL ? slot_of(ex->conn) : NULL;

	return s != NULL ? s->addr : "local";
}

void
am_http_slot_phase(am_http_server *srv, struct MHD_Connection *c, enum am_http_phase ph)
{
	struct am_http_slot *s = slot_of(c);

	if (s == NULL)
		return;
	pthread_mutex_lock(&srv->mu);
	if (s->phase != AM_HTTP_CLOSING) {
		if (s->phase == AM_HTTP_HANDLING && ph == AM_HTTP_HEAD)
			s->served = true;
		s->phase = ph;
		s->since_ms = am_now_ms();
	}
	pthread_mutex_unlock(&srv->mu);
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	am_http_server *srv = cls;
	struct am_http_slot *s = slot_of(c);
	char *copy = strdup(uri);

	if (s == NULL) {
		free(copy);
		return NULL;
	}
	pthread_mutex_lock(&srv->mu);
	free(s->uri);
	s->uri = copy;
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	am_http_server *srv = cls;
	const union MHD_ConnectionInfo *ci;

	pthread_mutex_lock(&srv->mu);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		for (size_t i = 0; ci != NULL && i < srv->nslots; i++) {
			struct am_http_slot *s = &srv->slots[i];
			if (s->used && s->conn == NULL && s->fd == ci->connect_fd) {
				s->conn = c;
				*socket_context = s;
				break;
			}
		}
	} else if (*socket_context != NULL) {
		struct am_http_slot *s = *socket_context;
		close(s->ctl);
		free(s->uri);
		memset(s, 0, sizeof(*s));
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&srv->mu);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	am_http_server *srv = cls;

	(void) toe;
	if (*req_cls != NULL && ((am_http_ex *) *req_cls)->upgrade == NULL)
		am_http_slot_phase(srv, c, AM_HTTP_HEAD); /* the next request's head is due */
	am_http_ex_free(*req_cls);
	*req_cls = NULL;
}

/* Reserve n more bytes of the body budget for ex. */
static bool
reserve(am_http_ex *ex, size_t n)
{
	size_t held = atomic_fetch_add(&ex->srv->body_bytes, n);

	if (held + n > ex->srv->lim.body_budget) {
		atomic_fetch_sub(&ex->srv->body_bytes, n);
		return false;
	}
	ex->reserved += n;
	return true;
}

/* The head is in: route it and decide before any body is read. */
static enum MHD_Result
on_head(am_http_ex *ex, const char *url)
{
	am_http_server *srv = ex->srv;
	const char *cl = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Transfer-Encoding");
	char allow[48];
	unsigned long long len = 0;

	if ((ex->route = am_http_route_find(srv, ex->method, url, allow, sizeof(allow))) == NULL) {
		if (allow[0])
			return refuse(ex, 405, allow, "%s is not served on %.200s (it takes %s)", ex->method, url, allow);
		return refuse(ex, 404, NULL, "no such endpoint: %s %.200s (see the README's API table)", ex->method, url);
	}
	/* a body framed two ways is how requests are smuggled past a proxy */
	if (te != NULL && cl != NULL)
		return refuse(ex, 400, NULL, "both Transfer-Encoding and Content-Length: send one");
	if (cl != NULL) {
		char *end = NULL;
		errno = 0;
		len = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl || *end != '\0')
			return refuse(ex, 400, NULL, "Content-Length is not a number");
	}
	if (len > 0 && ex->route->body_max == 0)
		return refuse(ex, 413, NULL, "%s %.200s takes no body", ex->method, url);
	if (len > ex->route->body_max)
		return refuse(ex, 413, NULL, "body of %llu bytes, limit %zu", len, ex->route->body_max);
	if (ex->route->pre != NULL) {
		ex->route->pre(ex);
		if (ex->answered) {
			ex->refused = true;
			return queue(ex, body_pending(ex));
		}
	}
	if (srv->relay_path[0] && strcmp(url, srv->relay_path) == 0) {
		ex->refused = true; /* answered on the head, one way or the other */
		return am_http_relay_answer(ex) ? queue(ex, ex->upgrade == NULL) : MHD_NO;
	}
	if (len > 0 && !reserve(ex, (size_t) len)) {
		atomic_fetch_add(&srv->refused[AM_HTTP_REFUSED_BUSY], 1);
		return refuse(ex, 503, NULL, "busy: %zu MiB of request bodies held; try again", srv->lim.body_budget >> 20);
	}
	am_http_slot_phase(srv, ex->conn, AM_HTTP_BODY);
	return MHD_YES; /* MHD sends 100 Continue if the client waits for it */
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_size, void **req_cls)
{
	am_http_server *srv = cls;
	am_http_ex *ex = *req_cls;

	(void) version;
	if (ex == NULL) {
		struct am_http_slot *s = slot_of(c);
		if ((ex = calloc(1, sizeof(*ex))) == NULL)
			return MHD_NO;
		pthread_mutex_init(&ex->mu, NULL);
		pthread_cond_init(&ex->cv, NULL);
		ex->srv = srv;
		ex->conn = c;
		snprintf(ex->method, sizeof(ex->method), "%s", method);
		pthread_mutex_lock(&srv->mu);
		if (s != NULL) {
			ex->uri = s->uri;
			s->uri = NULL;
		}
		pthread_mutex_unlock(&srv->mu);
		if (ex->uri == NULL)
			ex->uri = strdup(url);
		*req_cls = ex;
		return on_head(ex, url);
	}
	if (ex->refused) { /* what follows a refused head is not ours to read */
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;
		if (ex->blen + n > ex->route->body_max)
			return refuse_mid_body(ex, 413, "body over the limit of %zu bytes", ex->route->body_max);
		if (ex->blen + n + 1 > ex->bcap) {
			size_t cap = ex->bcap ? ex->bcap : 4096;
			while (cap < ex->blen + n + 1)
				cap *= 2;
			if (cap > ex->route->body_max + 1)
				cap = ex->route->body_max + 1;
			/* chunked bodies have no length up front: held as they grow */
			if (cap > ex->reserved && !reserve(ex, cap - ex->reserved)) {
				atomic_fetch_add(&srv->refused[AM_HTTP_REFUSED_BUSY], 1);
				return refuse_mid_body(ex, 503, "busy: %zu MiB of request bodies held; try again",
				    srv->lim.body_budget >> 20);
			}
			char *nb = realloc(ex->body, cap);
			if (nb == NULL)
				return MHD_NO;
			ex->body = nb;
			ex->bcap = cap;
		}
		memcpy(ex->body + ex->blen, upload, n);
		ex->blen += n;
		ex->body[ex->blen] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	if (ex->started) /* MHD asks again after the answer is queued */
		return MHD_YES;
	ex->started = true;
	am_http_slot_phase(srv, c, AM_HTTP_HANDLING);
	ex->route->fn(ex);
	/* a handler that defers (a tool call waiting for its result) is
	 * answered from another thread; this connection's thread waits */
	pthread_mutex_lock(&ex->mu);
	while (!ex->answered)
		pthread_cond_wait(&ex->cv, &ex->mu);
	pthread_mutex_unlock(&ex->mu);
	return queue(ex, false);
}

/* ---- the server ---- */

static int
listen_on(const char *host, int port, int *out)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char ps[16];
	int fd = -1, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ps, sizeof(ps), "%d", port);
	if ((rc = getaddrinfo(host, ps, &hints, &ai)) != 0)
		return am_error_set(AM_EINVAL, "host \"%s\": %s", host, gai_strerror(rc));
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
		rc = am_error_set(AM_EIO, "%s:%d: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	*out = fd;
	return 0;
}

int
am_http_server_new(am_http_server **out, const char *name, const char *host, int port, const am_http_limits *lim)
{
	am_http_server *srv = calloc(1, sizeof(*srv));
	struct rlimit rl;
	int rc;

	*out = NULL;
	if (srv == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	srv->lfd = srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_init(&srv->mu, NULL);
	snprintf(srv->name, sizeof(srv->name), "%s", name);
	snprintf(srv->where, sizeof(srv->where), "%s:%d", host, port);
	srv->lim = *lim;
	/* two fds a connection (MHD's and our dup): stay under the limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		long room = ((long) rl.rlim_cur - FD_RESERVE) / 2;
		if (room < 4)
			room = 4;
		if (srv->lim.max_connections > room)
			srv->lim.max_connections = (int) room;
	}
	if (srv->lim.max_per_address > srv->lim.max_connections)
		srv->lim.max_per_address = srv->lim.max_connections;
	srv->nslots = (size_t) srv->lim.max_connections + (size_t) srv->lim.max_connections / 4 + 4;
	if ((srv->slots = calloc(srv->nslots, sizeof(*srv->slots))) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto fail;
	}
	if (pipe2(srv->wake, O_CLOEXEC) != 0) {
		rc = am_error_set(AM_EIO, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((rc = listen_on(host, port, &srv->lfd)) != 0)
		goto fail;
	*out = srv;
	return 0;
fail:
	am_http_server_free(srv);
	return rc;
}

int
am_http_server_start(am_http_server *srv)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	                 MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_UPGRADE;

	srv->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) srv->lim.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t) AM_HTTP_HEAD_MAX, MHD_OPTION_CONNECTION_LIMIT, (unsigned) srv->nslots + 4,
	    MHD_OPTION_THREAD_STACK_SIZE, (size_t) (1u << 20), MHD_OPTION_END);
	if (srv->d == NULL)
		return am_error_set(AM_EIO, "%s server on %s: libmicrohttpd did not start", srv->name, srv->where);
	if (pthread_create(&srv->acceptor, NULL, am_http_acceptor, srv) != 0) {
		MHD_stop_daemon(srv->d);
		srv->d = NULL;
		return am_error_set(AM_EIO, "%s server on %s: no thread", srv->name, srv->where);
	}
	srv->accepting = true;
	return 0;
}

void
am_http_server_free(am_http_server *srv)
{
	if (srv == NULL)
		return;
	atomic_store(&srv->stop, true);
	if (srv->wake[1] >= 0)
		(void) !write(srv->wake[1], "x", 1);
	if (srv->accepting)
		pthread_join(srv->acceptor, NULL);
	am_http_relay_stop(srv);
	if (srv->d != NULL)
		MHD_stop_daemon(srv->d);
	for (size_t i = 0; srv->slots != NULL && i < srv->nslots; i++)
		if (srv->slots[i].used) {
			close(srv->slots[i].ctl);
			free(srv->slots[i].uri);
		}
	free(srv->slots);
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

void
am_http_server_counts(am_http_server *srv, uint64_t refused[AM_HTTP_REFUSED_KINDS], size_t *open)
{
	size_t n = 0;

	for (int k = 0; k < AM_HTTP_REFUSED_KINDS; k++)
		refused[k] = atomic_load(&srv->refused[k]);
	pthread_mutex_lock(&srv->mu);
	for (size_t i = 0; i < srv->nslots; i++)
		n += srv->slots[i].used;
	pthread_mutex_unlock(&srv->mu);
	*open = n;
}

const am_http_limits *
am_http_server_limits(const am_http_server *srv)
{
	return &srv->lim;
}
