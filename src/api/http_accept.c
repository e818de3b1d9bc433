/*
 * http_accept.c — the door of the daemons' HTTP servers: the acceptor
 * thread takes each connection and admits it (a connection cap with a
 * per-address share; the oldest connection still waiting for a request
 * head is evicted for a newcomer, else a canned JSON 503), and its sweeper
 * closes connections past their header or body deadline and logs what
 * strangers cost, one line at most every 10 s. What MHD does with an
 * admitted connection is http_server.c's.
 */
#define _GNU_SOURCE
#include "http_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SWEEP_MS 200
#define LOG_EVERY_MS 10000

static void
canned_503(int fd)
{
	static const char r[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	                        "Content-Length: 54\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
	                        "{\"error\":\"too many connections: try again in a moment\"}";
	/* best effort, never blocking: the socket is closed right after */
	(void) !send(fd, r, sizeof(r) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
addr_name(const struct sockaddr_storage *sa, char *out, size_t cap)
{
	const void *a = sa->ss_family == AF_INET6 ? (const void *) &((const struct sockaddr_in6 *) sa)->sin6_addr
	                                          : (const void *) &((const struct sockaddr_in *) sa)->sin_addr;
	if (inet_ntop(sa->ss_family, a, out, (socklen_t) cap) == NULL)
		snprintf(out, cap, "?");
}

static void
slot_shut(am_http_server *srv, struct am_http_slot *s, int kind)
{
	shutdown(s->ctl, SHUT_RDWR);
	s->phase = AM_HTTP_CLOSING;
	atomic_fetch_add(&srv->refused[kind], 1);
}

enum { ADMIT_NO, ADMIT_YES, ADMIT_WAIT };

/* Room for a connection from addr (srv->mu held): ADMIT_YES, evicting
 * the oldest idle one of that address or of all when at a cap; ADMIT_NO
 * when every connection at the cap is busy with a request; ADMIT_WAIT
 * while evicted ones are still closing. */
static int
admit(am_http_server *srv, const char *addr)
{
	struct am_http_slot *oldest_here = NULL, *oldest = NULL;
	int live = 0, here = 0, closing = 0;

	for (size_t i = 0; i < srv->nslots; i++) {
		struct am_http_slot *s = &srv->slots[i];
		if (!s->used)
			continue;
		if (s->phase == AM_HTTP_CLOSING) {
			closing++;
			continue;
		}
		live++;
		bool mine = strcmp(s->addr, addr) == 0;
		here += mine;
		if (s->phase != AM_HTTP_HEAD)
			continue;
		if (mine && (oldest_here == NULL || s->since_ms < oldest_here->since_ms))
			oldest_here = s;
		if (oldest == NULL || s->since_ms < oldest->since_ms)
			oldest = s;
	}
	if ((size_t) (live + closing) >= srv->nslots)
		return ADMIT_WAIT; /* evicted ones still closing fill the slack */
	if (here >= srv->lim.max_per_address) {
		if (oldest_here == NULL)
			return ADMIT_NO;
		slot_shut(srv, oldest_here, AM_HTTP_REFUSED_EVICTED);
		return ADMIT_YES; /* a slot is free: the first check saw to it */
	}
	if (live >= srv->lim.max_connections) {
		if (oldest == NULL)
			return ADMIT_NO;
		slot_shut(srv, oldest, AM_HTTP_REFUSED_EVICTED);
	}
	return ADMIT_YES;
}

static void
sweep(am_http_server *srv, uint64_t now)
{
	uint64_t snap[AM_HTTP_REFUSED_KINDS];
	static const int kinds[] = {AM_HTTP_REFUSED_HEADER_TIMEOUT, AM_HTTP_REFUSED_BODY_TIMEOUT, AM_HTTP_REFUSED_EVICTED,
	    AM_HTTP_REFUSED_FULL, AM_HTTP_REFUSED_BUSY};

	pthread_mutex_lock(&srv->mu);
	for (size_t i = 0; i < srv->nslots; i++) {
		struct am_http_slot *s = &srv->slots[i];
		if (!s->used)
			continue;
		/* a kept-alive connection waits for its next request as long as
		 * the idle timeout; a new one gets the header time for its first */
		uint64_t head_ms = s->served ? (uint64_t) srv->lim.idle_timeout_s * 1000 : (uint64_t) srv->lim.header_timeout_ms;
		if (s->phase == AM_HTTP_HEAD && now - s->since_ms > head_ms)
			slot_shut(srv, s, AM_HTTP_REFUSED_HEADER_TIMEOUT);
		else if (s->phase == AM_HTTP_BODY && now - s->since_ms > (uint64_t) srv->lim.body_timeout_ms)
			slot_shut(srv, s, AM_HTTP_REFUSED_BODY_TIMEOUT);
	}
	pthread_mutex_unlock(&srv->mu);
	if (now - srv->logged_ms < LOG_EVERY_MS)
		return;
	/* what strangers cost, in one line at most every 10 s */
	char line[400];
	size_t used = 0;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		snap[k] = atomic_load(&srv->refused[kinds[k]]);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		uint64_t d = snap[k] - srv->logged[k];
		if (d > 0)
			used += (size_t) snprintf(line + used, sizeof(line) - used, "%s %s %llu",
			    used ? "," : "", am_http_refused_name(kinds[k]), (unsigned long long) d);
		srv->logged[k] = snap[k];
		if (used >= sizeof(line))
			used = sizeof(line) - 1;
	}
	if (used > 0) {
		am_say("%s on %s: connections closed or refused in the last %d s:%s", srv->name, srv->where,
		    LOG_EVERY_MS / 1000, line);
		srv->logged_ms = now;
	}
}

void *
am_http_acceptor(void *arg)
{
	am_http_server *srv = arg;
	uint64_t emfile_said = 0;

	while (!atomic_load(&srv->stop)) {
		struct pollfd p[2] = {{srv->lfd, POLLIN, 0}, {srv->wake[0], POLLIN, 0}};
		int pr = poll(p, 2, SWEEP_MS);
		uint64_t now = am_now_ms();
		sweep(srv, now);
		if (pr <= 0 || !(p[0].revents & POLLIN))
			continue;
		struct sockaddr_storage sa;
		socklen_t sl = sizeof(sa);
		int fd = accept4(srv->lfd, (struct sockaddr *) &sa, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* out of fds: wait instead of spinning on a listen
				 * socket that stays readable */
				if (now - emfile_said > LOG_EVERY_MS) {
					am_say("%s on %s: out of file descriptors (raise LimitNOFILE or lower "
					              "AM_HTTP_MAX_CONNECTIONS)", srv->name, srv->where);
					emfile_said = now;
				}
				poll(NULL, 0, 100);
			}
			continue;
		}
		char addr[64];
		addr_name(&sa, addr, sizeof(addr));
		int ctl = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		struct am_http_slot *slot = NULL;
		pthread_mutex_lock(&srv->mu);
		/* connections we just evicted hold their slots until their
		 * threads see the close (a few ms): a newcomer waits for them,
		 * up to 500 ms, rather than getting a 503 */
		for (int tries = 0; ctl >= 0 && slot == NULL; tries++) {
			int a = admit(srv, addr);
			if (a == ADMIT_YES) {
				for (size_t i = 0; i < srv->nslots && slot == NULL; i++)
					if (!srv->slots[i].used)
						slot = &srv->slots[i];
			}
			if (slot != NULL || a == ADMIT_NO || tries >= 25)
				break;
			pthread_mutex_unlock(&srv->mu);
			poll(NULL, 0, 20);
			pthread_mutex_lock(&srv->mu);
		}
		if (slot != NULL) {
			memset(slot, 0, sizeof(*slot));
			slot->used = true;
			slot->fd = fd;
			slot->ctl = ctl;
			slot->phase = AM_HTTP_HEAD;
			slot->since_ms = now;
			snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
		}
		pthread_mutex_unlock(&srv->mu);
		if (slot == NULL) {
			atomic_fetch_add(&srv->refused[AM_HTTP_REFUSED_FULL], 1);
			canned_503(fd);
			close(fd);
			if (ctl >= 0)
				close(ctl);
			continue;
		}
		if (MHD_add_connection(srv->d, fd, (const struct sockaddr *) &sa, sl) != MHD_YES) {
			/* MHD closed fd; STARTED never came */
			pthread_mutex_lock(&srv->mu);
			if (slot->conn == NULL) {
				close(slot->ctl);
				free(slot->uri);
				memset(slot, 0, sizeof(*slot));
			}
			pthread_mutex_unlock(&srv->mu);
		}
	}
	return NULL;
}
