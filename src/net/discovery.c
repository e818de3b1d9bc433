/*
 * discovery.c — UDP multicast discovery (239.255.42.99:9999 unless
 * MESH_MULTICAST_IP / MESH_MULTICAST_PORT say otherwise): every interval
 * a beacon with this node's key and link port, and a listener that hands
 * each beacon that verifies (network key MAC, then signature, then a time
 * later than the last one seen from that key, so a replay does nothing)
 * to a callback with the URL to dial: tcp://<sender's address>:<port>.
 *
 * TTL 1 (beacons stay on the local segment), multicast loop on (several
 * nodes on one machine find each other). The interface is the routing
 * table's choice, or MESH_MULTICAST_IF (an IPv4 address). POSIX sockets;
 * SO_REUSEPORT where the platform has it.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEEN_MAX 256

struct am_discovery {
	int rx, tx;
	struct sockaddr_in group;
	const am_identity *me;
	uint8_t netkey[32];
	am_beacon mine;
	int every_ms;
	am_discovered_fn fn;
	void *ctx;
	pthread_t th;
	atomic_int stop;
	pthread_mutex_t mu;
	uint64_t sent, accepted, refused;
	struct {
		uint8_t pk[AM_PK_BYTES];
		uint64_t ts_ms;
	} seen[SEEN_MAX];
	size_t nseen;
};

/* A beacon must be later than the last one from its key. */
static bool
fresh(am_discovery *d, const am_beacon *b)
{
	for (size_t i = 0; i < d->nseen; i++)
		if (memcmp(d->seen[i].pk, b->pk, AM_PK_BYTES) == 0) {
			if (b->ts_ms <= d->seen[i].ts_ms)
				return false;
			d->seen[i].ts_ms = b->ts_ms;
			return true;
		}
	size_t slot = d->nseen < SEEN_MAX ? d->nseen++ : (size_t) (b->ts_ms % SEEN_MAX);
	memcpy(d->seen[slot].pk, b->pk, AM_PK_BYTES);
	d->seen[slot].ts_ms = b->ts_ms;
	return true;
}

static void
send_beacon(am_discovery *d)
{
	uint8_t buf[AM_BEACON_MAX];
	size_t len = 0;

	d->mine.ts_ms = am_now_ms();
	if (am_beacon_encode(buf, sizeof(buf), &len, &d->mine, d->me, d->netkey) != 0)
		return;
	if (sendto(d->tx, buf, len, 0, (struct sockaddr *) &d->group, sizeof(d->group)) == (ssize_t) len) {
		pthread_mutex_lock(&d->mu);
		d->sent++;
		pthread_mutex_unlock(&d->mu);
	}
}

static void
receive_beacon(am_discovery *d)
{
	uint8_t buf[AM_BEACON_MAX + 1];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(d->rx, buf, sizeof(buf), 0, (struct sockaddr *) &from, &fl);
	am_beacon b;
	char url[96], ip[INET_ADDRSTRLEN];
	bool ok;

	if (n <= 0)
		return;
	if (am_beacon_decode(&b, buf, (size_t) n, d->netkey) != 0) {
		pthread_mutex_lock(&d->mu);
		d->refused++;
		pthread_mutex_unlock(&d->mu);
		return;
	}
	if (memcmp(b.pk, am_identity_pk(d->me), AM_PK_BYTES) == 0)
		return; /* our own, looped back */
	pthread_mutex_lock(&d->mu);
	ok = fresh(d, &b);
	if (ok)
		d->accepted++;
	else
		d->refused++;
	pthread_mutex_unlock(&d->mu);
	if (!ok)
		return;
	inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
	snprintf(url, sizeof(url), b.ws ? "ws://%s:%u/mesh" : "tcp://%s:%u", ip, (unsigned) b.port);
	d->fn(d->ctx, &b, url);
}

static void *
run(void *arg)
{
	am_discovery *d = arg;
	uint64_t next = 0;

	while (!d->stop) {
		uint64_t now = am_now_ms();
		struct pollfd p = {d->rx, POLLIN, 0};
		if (d->mine.port != 0 && now >= next) {
			send_beacon(d);
			next = now + (uint64_t) d->every_ms;
		}
		if (poll(&p, 1, 200) > 0 && (p.revents & POLLIN))
			receive_beacon(d);
	}
	return NULL;
}

int
am_discovery_start(am_discovery **out, const am_discovery_options *o, am_discovered_fn fn, void *ctx)
{
	am_discovery *d = calloc(1, sizeof(*d));
	struct ip_mreq mreq;
	struct sockaddr_in any;
	int one = 1, ttl = 1, rc = 0;
	unsigned char loop = 1, mttl = (unsigned char) ttl;

	*out = NULL;
	if (d == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	d->rx = d->tx = -1;
	pthread_mutex_init(&d->mu, NULL);
	d->me = o->me;
	memcpy(d->netkey, o->netkey, 32);
	snprintf(d->mine.name, sizeof(d->mine.name), "%s", o->name);
	d->mine.port = o->link_port;
	d->mine.ws = o->link_ws;
	d->every_ms = o->every_ms > 0 ? o->every_ms : 5000;
	d->fn = fn;
	d->ctx = ctx;
	memset(&d->group, 0, sizeof(d->group));
	d->group.sin_family = AF_INET;
	d->group.sin_port = htons(o->port);
	if (inet_pton(AF_INET, o->group_ip, &d->group.sin_addr) != 1 || !IN_MULTICAST(ntohl(d->group.sin_addr.s_addr))) {
		rc = am_error_set(AM_EFIELD, "MESH_MULTICAST_IP %s is not an IPv4 multicast address", o->group_ip);
		goto out;
	}
	if ((d->rx = socket(AF_INET, SOCK_DGRAM, 0)) < 0 || (d->tx = socket(AF_INET, SOCK_DGRAM, 0)) < 0) {
		rc = am_error_set(AM_EIO, "discovery socket: %s", strerror(errno));
		goto out;
	}
	(void) setsockopt(d->rx, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
#ifdef SO_REUSEPORT
	(void) setsockopt(d->rx, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
#endif
	memset(&any, 0, sizeof(any));
	any.sin_family = AF_INET;
	any.sin_port = htons(o->port);
	any.sin_addr.s_addr = htonl(INADDR_ANY);
	memset(&mreq, 0, sizeof(mreq));
	mreq.imr_multiaddr = d->group.sin_addr;
	mreq.imr_interface.s_addr = htonl(INADDR_ANY);
	if (o->if_ip != NULL && o->if_ip[0] != '\0') {
		if (inet_pton(AF_INET, o->if_ip, &mreq.imr_interface) != 1) {
			rc = am_error_set(AM_EFIELD, "MESH_MULTICAST_IF %s is not an IPv4 address", o->if_ip);
			goto out;
		}
		(void) setsockopt(d->tx, IPPROTO_IP, IP_MULTICAST_IF, &mreq.imr_interface, sizeof(mreq.imr_interface));
	}
	if (bind(d->rx, (struct sockaddr *) &any, sizeof(any)) != 0) {
		rc = am_error_set(AM_EIO, "discovery: bind UDP port %u: %s", (unsigned) o->port, strerror(errno));
		goto out;
	}
	if (setsockopt(d->rx, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
		rc = am_error_set(AM_EIO, "discovery: join %s: %s (no multicast route? see docs/OPERATIONS.md)",
		    o->group_ip, strerror(errno));
		goto out;
	}
	(void) setsockopt(d->tx, IPPROTO_IP, IP_MULTICAST_TTL, &mttl, sizeof(mttl));
	(void) setsockopt(d->tx, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop));
	if (pthread_create(&d->th, NULL, run, d) != 0) {
		rc = am_error_set(AM_ENOMEM, "cannot start the discovery thread");
		goto out;
	}
out:
	if (rc != 0) {
		if (d->rx >= 0)
			close(d->rx);
		if (d->tx >= 0)
			close(d->tx);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void
am_discovery_stop(am_discovery *d)
{
	if (d == NULL)
		return;
	d->stop = 1;
	pthread_join(d->th, NULL);
	close(d->rx);
	close(d->tx);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void
am_discovery_counts(am_discovery *d, uint64_t *sent, uint64_t *accepted, uint64_t *refused)
{
	*sent = *accepted = *refused = 0;
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	*sent = d->sent;
	*accepted = d->accepted;
	*refused = d->refused;
	pthread_mutex_unlock(&d->mu);
}
