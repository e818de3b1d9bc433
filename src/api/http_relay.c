/*
 * http_relay.c — links as a websocket on the daemon's HTTP port
 * (`--listen ws://HOST:PORT/mesh` with PORT the HTTP port). The HTTP
 * server is libmicrohttpd and cannot hand a connection to nng, so the
 * link listener runs on a loopback port of its own and this relays: the
 * client's upgrade request goes to nng as it came, nng's 101 comes back
 * through MHD's upgrade response, and then bytes flow both ways until
 * either side closes. The HTTP server's caps and deadlines have applied
 * to the connection by then; the link's own handshake deadline applies
 * after.
 */
#define _GNU_SOURCE
#include "http_private.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define RELAY_BUF 65536

int
am_http_relay(am_http_server *srv, const char *path)
{
	if (strlen(path) >= sizeof(srv->relay_path))
		return am_error_set(AM_EINVAL, "link path %s: too long", path);
	snprintf(srv->relay_path, sizeof(srv->relay_path), "%s", path);
	return am_http_route(srv, "GET", path, false, 0, NULL, NULL, NULL);
}

void
am_http_relay_target(am_http_server *srv, int port)
{
	atomic_store(&srv->relay_port, port);
}

struct head {
	char buf[HEAD_MAX];
	size_t len;
	bool over;
	int port; /* the link listener's: its Host */
};

static enum MHD_Result
add_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct head *h = cls;
	int n;

	(void) kind;
	/* nng's listener answers only the host it listens on (127.0.0.1):
	 * a client that dialed us by another name or address would get its
	 * 404 (on da7c989 every link from another machine failed so) */
	if (strcasecmp(key, "Host") == 0)
		n = snprintf(h->buf + h->len, sizeof(h->buf) - h->len, "Host: 127.0.0.1:%d\r\n", h->port);
	else
		n = snprintf(h->buf + h->len, sizeof(h->buf) - h->len, "%s: %s\r\n", key, value ? value : "");
	if (n < 0 || (size_t) n >= sizeof(h->buf) - h->len) {
		h->over = true;
		return MHD_NO;
	}
	h->len += (size_t) n;
	return MHD_YES;
}

static bool
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				struct pollfd pf = {fd, POLLOUT, 0};
				if (poll(&pf, 1, 5000) == 1)
					continue;
			}
			return false;
		}
		p += w;
		n -= (size_t) w;
	}
	return true;
}

struct relay {
	am_http_server *srv;
	int inner;              /* to nng */
	char extra[HEAD_MAX];   /* what nng sent after its 101 head */
	size_t nextra;
};

/* Copy one header line "Name: value" from nng's 101 into r, unless MHD
 * writes it itself. */
static void
copy_header(struct MHD_Response *r, char *line)
{
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		return;
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(line, "Connection") == 0 || strcasecmp(line, "Content-Length") == 0 ||
	    strcasecmp(line, "Date") == 0)
		return;
	MHD_add_response_header(r, line, v);
}

static void
splice_both(int a, int b, atomic_bool *stop)
{
	char *buf = malloc(RELAY_BUF);

	while (buf != NULL && !atomic_load(stop)) {
		struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
		int pr = poll(p, 2, 200);
		if (pr < 0 && errno != EINTR)
			break;
		bool done = false;
		for (int i = 0; i < 2 && !done; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = recv(p[i].fd, buf, RELAY_BUF, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			done = n <= 0 || !write_all(p[1 - i].fd, buf, (size_t) n);
		}
		if (done)
			break;
	}
	free(buf);
}

static void
on_upgraded(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in, size_t extra_in_size,
    MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct relay *rl = cls;
	am_http_server *srv = rl->srv;

	(void) req_cls;
	am_http_slot_phase(srv, c, AM_HTTP_UPGRADED);
	/* this is the connection's own thread (thread per connection): the
	 * relay runs here until either side closes */
	int fl = fcntl(sock, F_GETFL);
	if (fl >= 0)
		(void) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	if ((extra_in_size == 0 || write_all(rl->inner, extra_in, extra_in_size)) &&
	    (rl->nextra == 0 || write_all(sock, rl->extra, rl->nextra)))
		splice_both(sock, rl->inner, &srv->stop);
	close(rl->inner);
	free(rl);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	atomic_fetch_sub(&srv->relays, 1);
}

static int
dial_inner(int port)
{
	struct sockaddr_in sa = {0};
	struct timeval tv = {2, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The answer to an upgrade request on the link path: ex->upgrade (a 101
 * to queue) or an error answer set on ex. false: drop the connection. */
bool
am_http_relay_answer(am_http_ex *ex)
{
	am_http_server *srv = ex->srv;
	struct head *out = NULL;
	struct relay *rl = NULL;
	const char *up = am_http_header(ex, "Upgrade");
	int port = atomic_load(&srv->relay_port);
	char msg[200];
	bool ok = true;

	if (up == NULL || strcasecmp(up, "websocket") != 0) {
		snprintf(msg, sizeof(msg), "{\"error\":\"%s takes websocket upgrades (links) only\"}", srv->relay_path);
		am_http_answer(ex, 400, "application/json", msg, strlen(msg), NULL, NULL);
		return true;
	}
	if (port == 0) {
		snprintf(msg, sizeof(msg), "{\"error\":\"links are not served yet: try again\"}");
		am_http_answer(ex, 503, "application/json", msg, strlen(msg), NULL, NULL);
		return true;
	}
	if ((out = calloc(1, sizeof(*out))) == NULL || (rl = calloc(1, sizeof(*rl))) == NULL)
		goto fail;
	rl->srv = srv;
	rl->inner = -1;
	out->port = port;
	out->len = (size_t) snprintf(out->buf, sizeof(out->buf), "GET %s HTTP/1.1\r\n", am_http_uri(ex));
	MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, add_header, out);
	if (out->over || out->len + 2 >= sizeof(out->buf))
		goto fail;
	memcpy(out->buf + out->len, "\r\n", 2);
	out->len += 2;
	if ((rl->inner = dial_inner(port)) < 0 || !write_all(rl->inner, out->buf, out->len))
		goto fail;
	/* nng's answer head, up to its blank line */
	size_t got = 0;
	char *end = NULL;
	while (end == NULL && got < sizeof(out->buf) - 1) {
		ssize_t n = recv(rl->inner, out->buf + got, sizeof(out->buf) - 1 - got, 0);
		if (n <= 0)
			goto fail;
		got += (size_t) n;
		out->buf[got] = '\0';
		end = strstr(out->buf, "\r\n\r\n");
	}
	if (end == NULL || strncmp(out->buf, "HTTP/1.1 101", 12) != 0)
		goto fail;
	rl->nextra = got - (size_t) (end + 4 - out->buf);
	memcpy(rl->extra, end + 4, rl->nextra);
	*end = '\0';
	if ((ex->upgrade = MHD_create_response_for_upgrade(on_upgraded, rl)) == NULL)
		goto fail;
	for (char *line = strstr(out->buf, "\r\n"); line != NULL;) {
		line += 2;
		char *next = strstr(line, "\r\n");
		if (next != NULL)
			*next = '\0';
		copy_header(ex->upgrade, line);
		line = next;
	}
	{
		struct timeval tv = {0, 0};
		setsockopt(rl->inner, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(rl->inner, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	atomic_fetch_add(&srv->relays, 1);
	ex->answered = true;
	free(out);
	return true;
fail:
	if (rl != NULL && rl->inner >= 0)
		close(rl->inner);
	free(rl);
	free(out);
	snprintf(msg, sizeof(msg), "{\"error\":\"the link listener did not take the upgrade\"}");
	am_http_answer(ex, 502, "application/json", msg, strlen(msg), NULL, NULL);
	return ok;
}

void
am_http_relay_stop(am_http_server *srv)
{
	/* relays see stop within their poll interval */
	for (int i = 0; i < 50 && atomic_load(&srv->relays) > 0; i++)
		poll(NULL, 0, 100);
}
