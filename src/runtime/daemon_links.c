/*
 * daemon_links.c — the links of a daemon (daemon.c runs it): each
 * session's callbacks (trust decision, counts, refusals and their audit),
 * the inbound server with its pre-handshake budget, the outbound dialers
 * with backoff, and the one log line writer.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"
#include "am_net.h"

#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <jansson.h>
#include <stdarg.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Why a link session failed, for the metrics (am_link_refused_total's
 * reason label, indexed by enum reason). */
const char *const am_daemon_reasons[N_REASONS] = {"network_key", "bad_proof_or_frame", "malformed", "connection",
    "trust", "other", "handshake_timeout", "evicted"};

static enum reason
reason_of(am_link_cause cause, bool evicted)
{
	if (evicted)
		return R_EVICTED;
	switch (cause) {
	case AM_LINK_NETWORK_KEY:
	case AM_LINK_HANDSHAKE_CLOSED: return R_NETWORK_KEY;
	case AM_LINK_BAD_PROOF: return R_BAD_PROOF;
	case AM_LINK_MALFORMED: return R_MALFORMED;
	case AM_LINK_CONNECTION: return R_CONNECTION;
	case AM_LINK_REFUSED_HERE:
	case AM_LINK_KEY_CHANGED:
	case AM_LINK_REFUSED_THERE: return R_TRUST;
	case AM_LINK_HANDSHAKE_TIMEOUT: return R_HANDSHAKE_TIMEOUT;
	case AM_LINK_EVICTED: return R_EVICTED;
	case AM_LINK_OK:
	case AM_LINK_OTHER: break;
	}
	return R_OTHER;
}

/* ---- one session's callbacks ---- */

struct sctx {
	struct node *n;
	const char *how; /* "to" or "from" */
	char where[128];
	char via[16];
	int slot;        /* in n->peers once the peer said who it is */
	int preauth;     /* inbound: its entry in n->preauth until the handshake is done, else -1 */
	bool evicted;    /* closed by us for a newer connection */
	am_peer_info mine; /* what this session says about us: a copy, so
	                    * other sessions may update n->info meanwhile */
};

/* The handshake is done (or the session over): free its budget entry. */
static void
preauth_done(struct sctx *c)
{
	struct node *n = c->n;

	pthread_mutex_lock(&n->mu);
	if (c->preauth >= 0) {
		n->preauth[c->preauth].cancel = NULL;
		c->preauth = -1;
	}
	pthread_mutex_unlock(&n->mu);
}

static int
live_slot(struct node *n, const uint8_t pk[AM_PK_BYTES])
{
	int free_slot = -1, oldest = 0;

	for (int i = 0; i < MAX_LIVE; i++) {
		if (n->peers[i].used && memcmp(n->peers[i].pk, pk, AM_PK_BYTES) == 0)
			return i;
		if (!n->peers[i].used && free_slot < 0)
			free_slot = i;
		if (n->peers[i].links == 0 && n->peers[i].last_seen_ms < n->peers[oldest].last_seen_ms)
			oldest = i;
	}
	return free_slot >= 0 ? free_slot : oldest;
}

static bool
linked(struct node *n, const uint8_t pk[AM_PK_BYTES])
{
	bool up = false;

	pthread_mutex_lock(&n->mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (n->peers[i].used && n->peers[i].links > 0 && memcmp(n->peers[i].pk, pk, AM_PK_BYTES) == 0)
			up = true;
	pthread_mutex_unlock(&n->mu);
	return up;
}

static int
on_peer(void *ctx, const am_link_report *r)
{
	struct sctx *c = ctx;
	struct node *n = c->n;
	bool pinned = false;
	int rc, i;

	preauth_done(c); /* it proved a key and said who it is */
	if (memcmp(r->peer, am_identity_pk(n->me), AM_PK_BYTES) == 0) {
		/* our own key: this daemon dialled itself, or (a gateway pair,
		 * --shared-state) the other gateway, which runs with the same
		 * identity and proved it holds the key: the pair's link */
		if (!n->in_pair || strcmp(r->info.role, "gateway") != 0 || r->info.instance[0] == '\0' ||
		    strcmp(r->info.instance, n->info.instance) == 0)
			return am_error_set(AM_EINVAL, "that is this node itself");
		return 0;
	}
	if (n->pki) {
		if ((rc = am_pki_check_peer(r->info.cert, r->peer, r->info.name, n->api.trusted, n->api.ntrusted, n->q,
		         am_now_ms())) != 0)
			return rc;
		am_queue_peer known;
		pinned = am_queue_peer_get(n->q, r->peer, &known) != 0; /* first contact: audited as a pairing */
	} else if ((rc = am_trust_check(n->trust, r->info.name, r->peer, c->where, am_now_ms(), &pinned)) != 0)
		return rc;
	if (pinned) {
		char id[AM_NODE_ID_LEN + 1];
		am_node_id_format(id, r->peer);
		am_say("trust: %s \"%s\" with key %.16s… (first contact, %s)", n->pki ? "certificate accepted for" : "pinned",
		    r->info.name, id, c->where);
		(void) am_audit_log(n->audit, "pairing", r->info.name, NULL,
		    json_pack("{s:s, s:s, s:s}", "key", id, "address", c->where, "mode", n->pki ? "pki" : "tofu"));
	}
	{
		am_queue_peer p = {0};
		memcpy(p.pk, r->peer, AM_PK_BYTES);
		snprintf(p.name, sizeof(p.name), "%s", r->info.name);
		snprintf(p.address, sizeof(p.address), "%s", strcmp(c->how, "to") == 0 ? c->where : r->info.listen);
		(void) am_queue_peer_seen(n->q, &p, am_now_ms());
	}
	pthread_mutex_lock(&n->mu);
	i = live_slot(n, r->peer);
	if (!n->peers[i].used || memcmp(n->peers[i].pk, r->peer, AM_PK_BYTES) != 0) {
		memset(&n->peers[i], 0, sizeof(n->peers[i]));
		n->peers[i].used = true;
		memcpy(n->peers[i].pk, r->peer, AM_PK_BYTES);
	}
	n->peers[i].info = r->info;
	snprintf(n->peers[i].address, sizeof(n->peers[i].address), "%s", c->where);
	snprintf(n->peers[i].via, sizeof(n->peers[i].via), "%s", c->via);
	n->peers[i].links++;
	n->peers[i].last_seen_ms = am_now_ms();
	c->slot = i;
	pthread_mutex_unlock(&n->mu);
	return 0;
}

static void
on_synced(void *ctx, const am_link_report *r)
{
	struct sctx *c = ctx;
	struct node *n = c->n;
	char peer[AM_NODE_ID_LEN + 1];

	pthread_mutex_lock(&n->mu);
	n->links_ok++;
	n->sent += r->sent;
	n->received += r->received;
	pthread_mutex_unlock(&n->mu);
	am_node_id_format(peer, r->peer);
	am_say("link %s %s: peer %.16s… \"%s\" sent %llu, received %llu%s", c->how, c->where, peer, r->info.name,
	    (unsigned long long) r->sent, (unsigned long long) r->received, n->hub ? "; live" : "");
}

/* Receipts from this peer that prove nothing: counted and audited as
 * they arrive (a live link may last for days). */
static void
on_foreign_receipts(void *ctx, const am_link_report *r, uint64_t count)
{
	struct sctx *c = ctx;
	struct node *n = c->n;
	char id[AM_NODE_ID_LEN + 1];

	pthread_mutex_lock(&n->mu);
	n->receipts_foreign += count;
	pthread_mutex_unlock(&n->mu);
	am_node_id_format(id, r->peer);
	am_say("link %s %s: %llu receipts signed by a key other than their envelope's destination: carried, not counted "
	    "as delivery", c->how, c->where, (unsigned long long) count);
	(void) am_audit_log(n->audit, "receipt_refused", id, NULL,
	    json_pack("{s:s, s:I, s:s}", "peer", r->info.name, "count", (json_int_t) count, "reason",
	        "signed by a key other than the envelope's destination"));
}

/* After a session, whatever happened. */
static void
session_ended(struct sctx *c, int rc, const am_link_report *r)
{
	struct node *n = c->n;

	enum reason why = R_OTHER;
	bool quiet = false;

	pthread_mutex_lock(&n->mu);
	if (c->slot >= 0) {
		n->peers[c->slot].links--;
		n->peers[c->slot].last_seen_ms = am_now_ms();
	}
	if (r->synced) {
		n->live_sent += r->live_sent;
		n->live_received += r->live_received;
	} else {
		n->links_failed++;
		why = reason_of(r->cause, c->evicted);
		n->refused[why]++;
		/* connections that never proved a key are counted, and told in
		 * one line per 10 s at most: a flood must not flood the log */
		if (why == R_HANDSHAKE_TIMEOUT || why == R_EVICTED) {
			quiet = am_now_ms() - n->quiet_log_ms < 10000;
			if (!quiet)
				n->quiet_log_ms = am_now_ms();
		}
	}
	pthread_mutex_unlock(&n->mu);
	if (!r->synced && quiet)
		return;
	if (!r->synced) {
		if (why == R_HANDSHAKE_TIMEOUT || why == R_EVICTED)
			am_say("link %s %s refused: %s (such refusals are logged once per 10 s; "
			    "am_link_refused_total{reason=\"%s\"} counts them: %llu so far)",
			    c->how, c->where, r->problem, am_daemon_reasons[why], (unsigned long long) n->refused[why]);
		else
			am_say("link %s %s refused: %s", c->how, c->where, r->problem);
		/* refusals that are about who the peer is are security decisions */
		if (r->cause == AM_LINK_NETWORK_KEY || r->cause == AM_LINK_BAD_PROOF || r->cause == AM_LINK_REFUSED_HERE ||
		    r->cause == AM_LINK_KEY_CHANGED || r->cause == AM_LINK_REFUSED_THERE) {
			char id[AM_NODE_ID_LEN + 1] = "";
			bool known = false;
			for (size_t i = 0; i < AM_PK_BYTES; i++)
				known |= r->peer[i] != 0;
			if (known)
				am_node_id_format(id, r->peer);
			json_t *d = json_pack("{s:s, s:s, s:s}", "key", id, "address", c->where, "reason", r->problem);
			if (!known) /* not even a key proven: anyone can make these */
				(void) am_audit_refusal(n->api.refusals, "link_refused", r->problem, c->where, d, am_now_ms());
			else
				(void) am_audit_log(n->audit,
				    r->cause == AM_LINK_KEY_CHANGED ? "key_change_refused" : "link_refused",
				    r->info.name[0] ? r->info.name : c->where, NULL, d);
		}
	}
	else
		am_say("link %s %s closed after %llu sent, %llu received live%s%s", c->how, c->where,
		    (unsigned long long) r->live_sent, (unsigned long long) r->live_received, rc ? ": " : "",
		    rc ? r->problem : "");
}

static void
session_options(struct node *n, struct sctx *c, am_link_options *o)
{
	memset(o, 0, sizeof(*o));
	o->now_ms = am_now_ms();
	o->netkey = n->netkey;
	o->timeout_ms = n->link_timeout_ms;
	o->handshake_ms = n->handshake_ms;
	o->ctx = c;
	o->hub = n->hub;
	o->resync_ms = n->resync_ms;
	o->info = &c->mine;
	o->on_peer = on_peer;
	o->on_synced = on_synced;
	o->on_foreign_receipts = on_foreign_receipts;
	/* the queue depth we announce is read once per session */
	{
		am_queue_stats st;
		bool counted = am_queue_get_counts(n->q, &st) == 0;
		pthread_mutex_lock(&n->mu);
		if (counted)
			n->info.outbox = st.outbox;
		c->mine = n->info;
		pthread_mutex_unlock(&n->mu);
	}
}

/* ---- inbound ---- */

struct inbound {
	struct node *n;
	nng_stream *s;
	char where[128];
	am_link_cancel *cancel;
	int preauth;
	bool evicted; /* written under n->mu by whoever evicts us */
};

static void *
inbound_session(void *arg)
{
	struct inbound *in = arg;
	struct node *n = in->n;
	struct sctx c = {n, "from", "", "inbound", -1, in->preauth, false};
	am_link_options o;
	am_link_report *r = malloc(sizeof(*r));

	snprintf(c.where, sizeof(c.where), "%s", in->where);
	session_options(n, &c, &o);
	o.cancel = in->cancel;
	if (r != NULL) {
		int rc = am_link_session(in->s, false, n->q, n->me, &o, r);
		preauth_done(&c);
		pthread_mutex_lock(&n->mu);
		c.evicted = in->evicted;
		pthread_mutex_unlock(&n->mu);
		session_ended(&c, rc, r);
	} else {
		preauth_done(&c);
		am_link_stream_bury(in->s);
	}
	free(r);
	am_link_cancel_free(in->cancel);
	free(in);
	pthread_mutex_lock(&n->mu);
	n->sessions--;
	pthread_cond_broadcast(&n->idle);
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static void
peer_address(nng_stream *s, char *out, size_t cap)
{
	nng_sockaddr sa;

	snprintf(out, cap, "inbound");
	if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET) {
		const uint8_t *a = (const uint8_t *) &sa.s_in.sa_addr;
		const uint8_t *p = (const uint8_t *) &sa.s_in.sa_port;
		snprintf(out, cap, "tcp://%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], (unsigned) (p[0] << 8 | p[1]));
	}
}

/* A budget entry for a new inbound connection (n->mu held): a free one,
 * or, when the budget or this address's share is used up, the oldest
 * one's (that connection is closed). Returns its index. */
static int
preauth_take(struct node *n, struct inbound *in)
{
	char addr[64];
	const char *colon;
	int free_i = -1, oldest = -1, oldest_here = -1, here = 0;

	/* the address without its port: "tcp://1.2.3.4" */
	colon = strrchr(in->where, ':');
	snprintf(addr, sizeof(addr), "%.*s", colon && colon > in->where + 5 ? (int) (colon - in->where) : 63, in->where);
	for (int i = 0; i < n->preauth_max; i++) {
		struct preauth *p = &n->preauth[i];
		if (p->cancel == NULL) {
			if (free_i < 0)
				free_i = i;
			continue;
		}
		if (oldest < 0 || p->since_ms < n->preauth[oldest].since_ms)
			oldest = i;
		if (strcmp(p->addr, addr) == 0) {
			here++;
			if (oldest_here < 0 || p->since_ms < n->preauth[oldest_here].since_ms)
				oldest_here = i;
		}
	}
	int use = here >= n->preauth_per_addr ? oldest_here : free_i >= 0 ? free_i : oldest;
	struct preauth *p = &n->preauth[use];
	if (p->cancel != NULL) { /* evict: it has had its chance */
		*p->evicted = true;
		am_link_cancel_fire(p->cancel);
		n->evictions++;
	}
	p->cancel = in->cancel;
	p->evicted = &in->evicted;
	p->since_ms = am_now_ms();
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	return use;
}

void *
am_daemon_serve(void *arg)
{
	struct node *n = arg;
	am_link_server *sv = NULL;

	const char *url = n->link_inner[0] ? n->link_inner : n->listen;
	if (am_link_server_open(&sv, url) != 0) {
		fprintf(stderr, "%s: --listen %s: %s\n", n->prog, n->listen, am_error_detail());
		n->stop = 1;
		kill(getpid(), SIGTERM);
		return NULL;
	}
	if (n->link_inner[0]) {
		int port = am_link_server_port(sv);
		am_http_relay_target(n->http, port);
		am_say("listening for links on %s (through the HTTP server, relayed to 127.0.0.1:%d)", n->listen, port);
	} else
		am_say("listening for links on %s", n->listen);
	while (!n->stop) {
		nng_stream *s = NULL;
		struct inbound *in;
		pthread_t th;
		if (am_link_server_accept(sv, &s, 250) != 0)
			continue;
		if ((in = calloc(1, sizeof(*in))) == NULL) {
			am_link_stream_bury(s);
			continue;
		}
		in->n = n;
		in->s = s;
		peer_address(s, in->where, sizeof(in->where));
		if ((in->cancel = am_link_cancel_new()) == NULL) {
			am_link_stream_bury(s);
			free(in);
			continue;
		}
		pthread_mutex_lock(&n->mu);
		n->sessions++;
		in->preauth = preauth_take(n, in);
		/* say so now and then, not once per connection: a flood must not
		 * become a flood of log lines */
		if (n->evictions > n->evictions_said && am_now_ms() - n->evict_log_ms >= 10000) {
			am_say("link port: %llu connections closed before finishing a handshake to make room for newer ones "
			    "(at most %d waiting, %d from one address; latest from %s)",
			    (unsigned long long) (n->evictions - n->evictions_said), n->preauth_max, n->preauth_per_addr, in->where);
			n->evictions_said = n->evictions;
			n->evict_log_ms = am_now_ms();
		}
		pthread_mutex_unlock(&n->mu);
		if (pthread_create(&th, NULL, inbound_session, in) != 0) {
			pthread_mutex_lock(&n->mu);
			n->sessions--;
			n->preauth[in->preauth].cancel = NULL;
			pthread_mutex_unlock(&n->mu);
			am_link_cancel_free(in->cancel);
			am_link_stream_bury(s);
			free(in);
			continue;
		}
		pthread_detach(th);
	}
	am_link_server_close(sv);
	return NULL;
}

/* ---- outbound ---- */

void
am_daemon_nap(struct node *n, uint64_t ms)
{
	for (uint64_t waited = 0; waited < ms && !n->stop; waited += 50)
		usleep(50 * 1000);
}

/* Keep a link to one peer: dial, run the session (live until it ends),
 * dial again at once after a link that worked, or after a backoff (1 s,
 * doubling up to --link-timeout, 30 s) after one that failed. A discovered peer already
 * linked (it dialed us) is not dialed; of two nodes that discover each
 * other, the one with the smaller key dials first. */
static void *
dial(void *arg)
{
	struct dialer *d = arg;
	struct node *n = d->n;
	uint64_t backoff = 0;

	if (d->has_pk && memcmp(am_identity_pk(n->me), d->pk, AM_PK_BYTES) > 0)
		am_daemon_nap(n, (uint64_t) n->beacon_ms * 2);
	while (!n->stop) {
		struct sctx c = {n, "to", "", "", -1, -1, false};
		am_link_options o;
		am_link_report r;
		int rc;

		if (d->has_pk && linked(n, d->pk)) {
			am_daemon_nap(n, 1000);
			continue;
		}
		snprintf(c.where, sizeof(c.where), "%s", d->url);
		snprintf(c.via, sizeof(c.via), "%s", d->via);
		session_options(n, &c, &o);
		rc = am_link_sync_dial(n->q, n->me, d->url, &o, &r);
		if (n->stop)
			break;
		session_ended(&c, rc, &r);
		if (r.synced) {
			backoff = 0;
			am_daemon_nap(n, 200);
		} else {
			backoff = backoff ? backoff * 2 : 1000;
			if (backoff > (uint64_t) n->link_timeout_ms)
				backoff = (uint64_t) n->link_timeout_ms;
			am_daemon_nap(n, backoff);
		}
	}
	return NULL;
}

int
am_daemon_add_dialer(struct node *n, const char *url, const char *via, const uint8_t *pk)
{
	struct dialer *d;
	int rc = 0;

	pthread_mutex_lock(&n->mu);
	for (size_t i = 0; i < n->ndialers; i++)
		if (strcmp(n->dialers[i]->url, url) == 0 ||
		    (pk != NULL && n->dialers[i]->has_pk && memcmp(n->dialers[i]->pk, pk, AM_PK_BYTES) == 0))
			goto out; /* known already */
	if (n->ndialers == MAX_DIALERS) {
		rc = am_error_set(AM_ELIMIT, "at most %d peers to dial", MAX_DIALERS);
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	d->n = n;
	snprintf(d->url, sizeof(d->url), "%s", url);
	snprintf(d->via, sizeof(d->via), "%s", via);
	if (pk != NULL) {
		memcpy(d->pk, pk, AM_PK_BYTES);
		d->has_pk = true;
	}
	if (pthread_create(&d->th, NULL, dial, d) != 0) {
		free(d);
		rc = am_error_set(AM_ENOMEM, "cannot start a dialing thread");
		goto out;
	}
	n->dialers[n->ndialers++] = d;
out:
	pthread_mutex_unlock(&n->mu);
	return rc;
}

void
am_daemon_discovered(void *ctx, const am_beacon *b, const char *url)
{
	struct node *n = ctx;
	size_t before = n->ndialers;

	if (am_daemon_add_dialer(n, url, "discovery", b->pk) == 0 && n->ndialers > before)
		am_say("discovery: \"%s\" at %s", b->name, url);
}

