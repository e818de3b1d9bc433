/*
 * status.c — what a daemon tells about itself over HTTP: GET /health (no
 * token), the Prometheus metrics (/metrics and /v1/metrics on both
 * roles: the seed names /v1/metrics on the gateway and /metrics on a
 * node), and GET /v1/mesh_scan: every peer known, with its link state,
 * addresses, position, zones, groups and queue depth. Then the messages
 * API (api.c) on the same server.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
on_health(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	am_queue_stats st;
	json_t *j;

	if (am_queue_get_counts(n->q, &st) != 0) {
		am_http_reply_json(ex, 503, json_pack("{s:s, s:s}", "status", "error", "error", am_error_detail()));
		return;
	}
	pthread_mutex_lock(&n->mu);
	j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "status", "ok", "node_id", n->node_id,
	    "name", n->info.name, "role", n->gateway ? "gateway" : "node", "envelopes", (json_int_t) st.envelopes,
	    "outbox", (json_int_t) st.outbox, "inbox_unacked", (json_int_t) st.inbox_unacked, "links_open",
	    (json_int_t) am_hub_links(n->hub), "links_ok", (json_int_t) n->links_ok, "links_failed",
	    (json_int_t) n->links_failed);
	pthread_mutex_unlock(&n->mu);
	for (size_t i = 0; i < n->fopened; i++)
		if (n->role->features[i]->health != NULL)
			n->role->features[i]->health(n->fstate[i], j);
	am_http_reply_json(ex, 200, j);
}

/* The HTTP doors' own counts: connections open, and those closed or
 * turned away before a handler ran, per server ("api", and the
 * features' own: "mcp"). */
#define SERVERS 4
static size_t
http_metrics(char *out, size_t cap, struct node *n)
{
	am_http_server *servers[SERVERS] = {n->http};
	const char *names[SERVERS] = {"api"};
	size_t len = 0, ns = 1;
	int w;

	for (size_t i = 0; i < n->role->nfeatures && ns < SERVERS; i++)
		if (n->role->features[i]->server != NULL &&
		    (servers[ns] = n->role->features[i]->server(n->fstate[i], &names[ns])) != NULL)
			ns++;

	if (cap == 0)
		return 0;
#define PUT(...) \
	do { \
		w = snprintf(out + len, cap - len, __VA_ARGS__); \
		if (w < 0 || (size_t) w >= cap - len) \
			return len; \
		len += (size_t) w; \
	} while (0)
	uint64_t refused[SERVERS][AM_HTTP_REFUSED_KINDS];
	size_t open[SERVERS] = {0};
	for (size_t i = 0; i < ns; i++)
		am_http_server_counts(servers[i], refused[i], &open[i]);
	PUT("# HELP am_http_connections_open HTTP connections open now.\n# TYPE am_http_connections_open gauge\n");
	for (size_t i = 0; i < ns; i++)
		PUT("am_http_connections_open{server=\"%s\"} %zu\n", names[i], open[i]);
	PUT("# HELP am_http_refused_total HTTP connections closed or refused before a handler ran, by reason.\n"
	    "# TYPE am_http_refused_total counter\n");
	for (size_t i = 0; i < ns; i++)
		for (int k = 0; k < AM_HTTP_REFUSED_KINDS; k++)
			PUT("am_http_refused_total{server=\"%s\",reason=\"%s\"} %llu\n", names[i], am_http_refused_name(k),
			    (unsigned long long) refused[i][k]);
#undef PUT
	return len;
}

static void
on_metrics(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	am_queue_stats st = {0};
	uint64_t bsent = 0, bok = 0, bbad = 0;
	char body[8192];
	size_t len;

	if (!n->monitor_public && am_api_check(&n->api, ex, "metrics") != 0)
		return;
	(void) am_queue_get_counts(n->q, &st);
	/* n->mu: discovery is let go under it (stop_all) */
	pthread_mutex_lock(&n->mu);
	am_discovery_counts(n->disc, &bsent, &bok, &bbad);
	len = (size_t) snprintf(body, sizeof(body),
	    "# HELP am_store_envelopes Envelopes held in the store.\n# TYPE am_store_envelopes gauge\n"
	    "am_store_envelopes %llu\n"
	    "# HELP am_store_outbox Envelopes this node carries on.\n# TYPE am_store_outbox gauge\n"
	    "am_store_outbox %llu\n"
	    "# HELP am_inbox_unacked Envelopes waiting for the consumer.\n# TYPE am_inbox_unacked gauge\n"
	    "am_inbox_unacked %llu\n"
	    "# HELP am_links_open Link sessions open now.\n# TYPE am_links_open gauge\nam_links_open %zu\n"
	    "# HELP am_links_total Link sessions by result of their first sync.\n# TYPE am_links_total counter\n"
	    "am_links_total{result=\"ok\"} %llu\nam_links_total{result=\"failed\"} %llu\n"
	    "# HELP am_envelopes_sent_total Envelopes pushed to peers.\n# TYPE am_envelopes_sent_total counter\n"
	    "am_envelopes_sent_total %llu\n"
	    "# HELP am_envelopes_received_total Envelopes stored from peers.\n"
	    "# TYPE am_envelopes_received_total counter\nam_envelopes_received_total %llu\n"
	    "# HELP am_live_envelopes_total Envelopes moved on open links after their first sync.\n"
	    "# TYPE am_live_envelopes_total counter\n"
	    "am_live_envelopes_total{direction=\"sent\"} %llu\nam_live_envelopes_total{direction=\"received\"} %llu\n"
	    "# HELP am_discovery_beacons_total Discovery beacons by result.\n# TYPE am_discovery_beacons_total counter\n"
	    "am_discovery_beacons_total{result=\"sent\"} %llu\nam_discovery_beacons_total{result=\"accepted\"} %llu\n"
	    "am_discovery_beacons_total{result=\"refused\"} %llu\n"
	    "# HELP am_link_refused_total Failed link sessions by reason.\n# TYPE am_link_refused_total counter\n",
	    (unsigned long long) st.envelopes, (unsigned long long) st.outbox, (unsigned long long) st.inbox_unacked,
	    am_hub_links(n->hub), (unsigned long long) n->links_ok, (unsigned long long) n->links_failed,
	    (unsigned long long) n->sent + n->live_sent, (unsigned long long) n->received + n->live_received,
	    (unsigned long long) n->live_sent, (unsigned long long) n->live_received, (unsigned long long) bsent,
	    (unsigned long long) bok, (unsigned long long) bbad);
	for (size_t i = 0; i < N_REASONS && len < sizeof(body); i++)
		len += (size_t) snprintf(body + len, sizeof(body) - len, "am_link_refused_total{reason=\"%s\"} %llu\n",
		    am_daemon_reasons[i], (unsigned long long) n->refused[i]);
	if (len < sizeof(body))
		len += (size_t) snprintf(body + len, sizeof(body) - len,
		    "# HELP am_answers_refused_total Tool results and receipts signed by a key that may not give them.\n"
		    "# TYPE am_answers_refused_total counter\n"
		    "am_answers_refused_total{kind=\"tool_result\"} %llu\nam_answers_refused_total{kind=\"receipt\"} %llu\n",
		    (unsigned long long) atomic_load(&n->results_refused), (unsigned long long) n->receipts_foreign);
	pthread_mutex_unlock(&n->mu);
	len += http_metrics(body + len, len < sizeof(body) ? sizeof(body) - len : 0, n);
	am_http_reply(ex, 200, "text/plain; version=0.0.4", body, NULL);
}

static json_t *
tags_json(char (*tags)[AM_TAG_MAX + 1], size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(tags[i]));
	return a;
}

static json_t *
info_json(const am_peer_info *pi)
{
	am_peer_info copy = *pi;
	json_t *j = json_pack("{s:s, s:s, s:o, s:o, s:I}", "role", pi->role, "listen", pi->listen, "zones",
	    tags_json(copy.pos.tags, copy.pos.ntags), "groups", tags_json(copy.groups, copy.ngroups), "queue_depth",
	    (json_int_t) pi->outbox);
	json_object_set_new(j, "position",
	    pi->pos.has_fix ? json_pack("{s:f, s:f}", "lat", pi->pos.lat, "lon", pi->pos.lon) : json_null());
	return j;
}

struct scan {
	struct node *n;
	json_t *peers;
};

static int
scan_peer(void *ctx, const am_queue_peer *p)
{
	struct scan *sc = ctx;
	char id[AM_NODE_ID_LEN + 1];
	json_t *j, *addrs = json_array();
	const struct live_peer *lp = NULL;

	am_node_id_format(id, p->pk);
	for (size_t i = 0; i < MAX_LIVE; i++)
		if (sc->n->peers[i].used && memcmp(sc->n->peers[i].pk, p->pk, AM_PK_BYTES) == 0)
			lp = &sc->n->peers[i];
	if (p->address[0])
		json_array_append_new(addrs, json_string(p->address));
	if (lp != NULL && lp->info.listen[0] && strcmp(lp->info.listen, p->address) != 0)
		json_array_append_new(addrs, json_string(lp->info.listen));
	j = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I}", "id", id, "name", p->name, "addresses", addrs, "link",
	    lp != NULL && lp->links > 0 ? "up" : "down", "first_seen_ms", (json_int_t) p->first_seen_ms, "last_seen_ms",
	    (json_int_t) (lp && lp->last_seen_ms > p->last_seen_ms ? lp->last_seen_ms : p->last_seen_ms), "contacts",
	    (json_int_t) p->contacts);
	if (lp != NULL) {
		json_t *ij = info_json(&lp->info);
		json_object_update(j, ij);
		json_decref(ij);
		json_object_set_new(j, "via", json_string(lp->via));
	} else {
		json_object_set_new(j, "position", json_null());
	}
	json_object_set_new(j, "tools", json_array()); /* the features say (the gateway: from the catalogs) */
	json_array_append_new(sc->peers, j);
	return 0;
}

static void
on_scan(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	struct scan sc = {n, json_array()};
	am_queue_stats st = {0};
	json_t *self;

	if (!n->monitor_public && am_api_check(&n->api, ex, "scan") != 0) {
		json_decref(sc.peers);
		return;
	}
	(void) am_queue_get_counts(n->q, &st);
	pthread_mutex_lock(&n->mu);
	(void) am_queue_peer_each(n->q, scan_peer, &sc);
	self = info_json(&n->info);
	pthread_mutex_unlock(&n->mu);
	json_object_set_new(self, "id", json_string(n->node_id));
	json_object_set_new(self, "name", json_string(n->info.name));
	json_object_set_new(self, "queue_depth", json_integer((json_int_t) st.outbox));
	json_object_set_new(self, "tools", json_array());
	for (size_t i = 0; i < n->role->nfeatures; i++)
		if (n->role->features[i]->scan != NULL)
			n->role->features[i]->scan(n->fstate[i], self, sc.peers);
	am_http_reply_json(ex, 200,
	    json_pack("{s:s, s:s, s:o, s:o}", "node_id", n->node_id, "role", n->gateway ? "gateway" : "node", "self", self,
	        "peers", sc.peers));
}

/* The daemon's HTTP server on host:port, not serving yet (the features
 * add their routes first): status and messages routes, and the link path
 * when links share the port (--listen ws://HOST:PORT/PATH). */
int
am_daemon_http_open(struct node *n, const char *host, int port, const char *link_path)
{
	static const struct {
		const char *path;
		am_http_fn fn;
	} routes[] = {{"/health", on_health}, {"/v1/metrics", on_metrics}, {"/metrics", on_metrics},
	    {"/v1/mesh_scan", on_scan}};
	am_http_limits lim;
	int rc;

	if ((rc = am_http_limits_from_env(&lim)) != 0 || (rc = am_http_server_new(&n->http, "HTTP", host, port, &lim)) != 0)
		goto out;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if ((rc = am_http_route(n->http, "GET", routes[i].path, false, 0, NULL, routes[i].fn, n)) != 0)
			goto out;
	n->api.q = n->q;
	n->api.me = n->me;
	n->api.hub = n->hub;
	if ((rc = am_api_register(n->http, &n->api)) != 0 || (link_path != NULL && (rc = am_http_relay(n->http, link_path)) != 0))
		goto out;
out:
	if (rc != 0)
		fprintf(stderr, "%s: HTTP on %s:%d: %s\n", n->prog, host, port, am_error_detail());
	return rc;
}
