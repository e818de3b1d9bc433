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
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
on_health(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	am_queue_stats st;
	json_t *j;

	if (am_queue_get_counts(n->q, &st) != 0) {
		am_http_reply_json(aio, 503, json_pack("{s:s, s:s}", "status", "error", "error", am_error_detail()));
		return;
	}
	pthread_mutex_lock(&n->mu);
	j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "status", "ok", "node_id", n->node_id,
	    "name", n->info.name, "role", n->gateway ? "gateway" : "node", "envelopes", (json_int_t) st.envelopes,
	    "outbox", (json_int_t) st.outbox, "inbox_unacked", (json_int_t) st.inbox_unacked, "links_open",
	    (json_int_t) am_hub_links(n->hub), "links_ok", (json_int_t) n->links_ok, "links_failed",
	    (json_int_t) n->links_failed);
	pthread_mutex_unlock(&n->mu);
	am_http_reply_json(aio, 200, j);
}

static void
on_metrics(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	am_queue_stats st = {0};
	uint64_t bsent = 0, bok = 0, bbad = 0;
	char body[8192];
	size_t len;

	if (am_api_check(&n->api, aio, "metrics") != 0)
		return;
	(void) am_queue_get_counts(n->q, &st);
	am_discovery_counts(n->disc, &bsent, &bok, &bbad);
	pthread_mutex_lock(&n->mu);
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
		    (unsigned long long) am_runner_results_refused(n->runner), (unsigned long long) n->receipts_foreign);
	pthread_mutex_unlock(&n->mu);
	am_http_reply(aio, 200, "text/plain; version=0.0.4", body, NULL);
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
	json_t *catalogs; /* node id -> its tool catalog */
};

/* the names of a node's tools, from its catalog */
static json_t *
tool_names(json_t *catalogs, const char *id)
{
	json_t *names = json_array(), *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(catalogs, id), "tools"), i, t)
		if (json_is_string(json_object_get(t, "name")))
			json_array_append(names, json_object_get(t, "name"));
	return names;
}

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
	json_object_set_new(j, "tools", tool_names(sc->catalogs, id));
	json_array_append_new(sc->peers, j);
	return 0;
}

static void
on_scan(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	struct scan sc = {n, json_array(), am_catalogs_load(n->api.data_dir)};
	am_queue_stats st = {0};
	json_t *self;

	if (am_api_check(&n->api, aio, "scan") != 0) {
		json_decref(sc.peers);
		json_decref(sc.catalogs);
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
	json_object_set_new(self, "tools", tool_names(sc.catalogs, n->node_id));
	json_decref(sc.catalogs);
	am_http_reply_json(aio, 200,
	    json_pack("{s:s, s:s, s:o, s:o}", "node_id", n->node_id, "role", n->gateway ? "gateway" : "node", "self", self,
	        "peers", sc.peers));
}

/* Every path and method no route takes: JSON, not nng's HTML page. A
 * known path with another method is a 405 naming the ones it takes. */
static void
on_unknown(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const char *uri = nng_http_req_get_uri(req), *method = nng_http_req_get_method(req);
	static const struct {
		const char *prefix, *allow;
		bool tree;
	} known[] = {{"/health", "GET", false}, {"/metrics", "GET", false}, {"/v1/metrics", "GET", false},
	    {"/v1/mesh_scan", "GET", false}, {"/v1/messages", "POST", false}, {"/v1/messages/", "GET", true},
	    {"/v1/inbox", "GET", false}, {"/v1/inbox/ack", "POST", false}, {"/v1/tools", "GET", false},
	    {"/v1/tools/call", "POST", false}, {"/v1/jobs", "GET", true}};
	size_t plen = strcspn(uri, "?");
	char msg[300];

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t kl = strlen(known[i].prefix);
		if (known[i].tree ? strncmp(uri, known[i].prefix, kl) == 0 : (plen == kl && strncmp(uri, known[i].prefix, kl) == 0)) {
			nng_http_res *res = NULL;
			char *body;
			snprintf(msg, sizeof(msg), "%s takes %s, not %s", known[i].prefix, known[i].allow, method);
			json_t *j = json_pack("{s:s}", "error", msg);
			body = j ? json_dumps(j, JSON_COMPACT) : NULL;
			json_decref(j);
			if (body == NULL || nng_http_res_alloc(&res) != 0) {
				free(body);
				nng_aio_finish(aio, NNG_ENOMEM);
				return;
			}
			nng_http_res_set_status(res, 405);
			nng_http_res_set_header(res, "Allow", known[i].allow);
			nng_http_res_set_header(res, "Content-Type", "application/json");
			nng_http_res_copy_data(res, body, strlen(body));
			free(body);
			nng_aio_set_output(aio, 0, res);
			nng_aio_finish(aio, 0);
			return;
		}
	}
	snprintf(msg, sizeof(msg), "no such endpoint: %s %.*s (see the README's API table)", method, (int) (plen > 200 ? 200 : plen), uri);
	am_http_reply_error(aio, 404, msg);
}

int
am_daemon_http_start(nng_http_server **out, struct node *n, const char *host, int port)
{
	char url[128];
	nng_url *u = NULL;
	nng_http_handler *h;
	static const struct {
		const char *path;
		void (*fn)(nng_aio *);
	} routes[] = {{"/health", on_health}, {"/v1/metrics", on_metrics}, {"/metrics", on_metrics},
	    {"/v1/mesh_scan", on_scan}};
	int rv;

	snprintf(url, sizeof(url), "http://%s:%d", host, port);
	if ((rv = nng_url_parse(&u, url)) != 0 || (rv = nng_http_server_hold(out, u)) != 0)
		goto out;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if ((rv = nng_http_handler_alloc(&h, routes[i].path, routes[i].fn)) != 0 ||
		    (rv = nng_http_handler_set_method(h, "GET")) != 0 ||
		    (rv = nng_http_handler_set_data(h, n, NULL)) != 0 || (rv = nng_http_server_add_handler(*out, h)) != 0)
			goto out;
	}
	/* last: the catch-all for what no route above takes */
	if ((rv = nng_http_handler_alloc(&h, "/", on_unknown)) != 0 || (rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (rv = nng_http_handler_set_tree(h)) != 0 || (rv = nng_http_handler_set_data(h, n, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(*out, h)) != 0)
		goto out;
	n->api.q = n->q;
	n->api.me = n->me;
	n->api.hub = n->hub;
	if (am_api_register(*out, &n->api) != 0 || am_toolapi_register(*out, &n->api) != 0) {
		fprintf(stderr, "%s\n", am_error_detail());
		rv = NNG_EINVAL;
		goto out;
	}
	rv = nng_http_server_start(*out);
out:
	if (u != NULL)
		nng_url_free(u);
	if (rv != 0)
		fprintf(stderr, "%s: HTTP on %s: %s\n", n->prog, url, nng_strerror(rv));
	return rv;
}
