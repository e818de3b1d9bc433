/*
 * daemon.c — what agent-mesh-node and agent-mesh-gateway run: serve link
 * sessions from peers on --listen, sync with every --peer on a timer, and
 * answer GET /health, the metrics and the messages API (api.c) over HTTP:
 * a node on 127.0.0.1:NODE_PORT (8000, metrics at /metrics), a gateway on
 * 127.0.0.1:GATEWAY_PORT (8787, metrics at /v1/metrics, and
 * /v1/mesh_scan). A message stored through the API starts a sync with the
 * peers at once; peers met are recorded with their address and time.
 *
 * This is the first slice of the daemon: one link session at a time, and
 * between syncs no live push (that is the rest of the online-mesh work).
 * Without --dev-token the API is served on loopback only. Stops cleanly on
 * SIGINT or SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <getopt.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 32

struct node {
	bool gateway;
	am_queue *q;
	am_identity *me;
	uint8_t netkey[32];
	const char *listen;
	const char *peers[MAX_PEERS];
	size_t npeers;
	uint64_t every_ms;
	volatile sig_atomic_t stop;
	volatile sig_atomic_t kick; /* sync with the peers now */
	am_api api;
	pthread_mutex_t mu; /* guards the counters */
	uint64_t links_ok, links_failed, sent, received;
	uint64_t refused[5]; /* by reason, see reasons[] */
	char node_id[AM_NODE_ID_LEN + 1];
};

/* Why a link session failed, for the metrics. */
static const char *const reasons[5] = {"network_key", "bad_proof_or_frame", "malformed", "connection", "other"};

static int
reason_of(int rc, const char *problem)
{
	if (rc == AM_EBADSIG)
		return strstr(problem, "network") != NULL ? 0 : 1;
	if (rc == AM_EMALFORMED || rc == AM_ETRUNC || rc == AM_ETOOBIG || rc == AM_ETRAILING || rc == AM_EVERSION ||
	    rc == AM_ELIMIT)
		return 2;
	if (rc == AM_EIO || rc == AM_ENOTFOUND)
		return strstr(problem, "network key") != NULL ? 0 : 3;
	return 4;
}

static void
count(struct node *n, int rc, const am_link_report *r, const char *how, const char *where)
{
	char peer[AM_NODE_ID_LEN + 1];

	if (rc == 0) {
		am_queue_peer p = {0};
		memcpy(p.pk, r->peer, AM_PK_BYTES);
		snprintf(p.address, sizeof(p.address), "%s", where);
		(void) am_queue_peer_seen(n->q, &p, am_now_ms());
	}
	pthread_mutex_lock(&n->mu);
	if (rc == 0) {
		n->links_ok++;
		n->sent += r->sent;
		n->received += r->received;
	} else {
		n->links_failed++;
		n->refused[reason_of(rc, r->problem)]++;
	}
	pthread_mutex_unlock(&n->mu);
	am_node_id_format(peer, r->peer);
	if (rc == 0)
		printf("link %s %s: peer %.16s… sent %llu, received %llu\n", how, where, peer, (unsigned long long) r->sent,
		    (unsigned long long) r->received);
	else
		printf("link %s %s refused: %s\n", how, where, r->problem);
	fflush(stdout);
}

static void *
serve(void *arg)
{
	struct node *n = arg;
	am_link_server *sv = NULL;

	if (am_link_server_open(&sv, n->listen) != 0) {
		fprintf(stderr, "%s: --listen %s: %s\n", n->gateway ? "agent-mesh-gateway" : "agent-mesh-node", n->listen,
		    am_error_detail());
		n->stop = 1;
		return NULL;
	}
	printf("listening for links on %s\n", n->listen);
	fflush(stdout);
	while (!n->stop) {
		am_link_options o = {am_now_ms(), n->netkey, 30000, NULL, NULL};
		am_link_report r;
		int rc = am_link_server_serve(sv, n->q, n->me, &o, &r, 250);
		if (rc != AM_ENOTFOUND || r.problem[0] != '\0')
			count(n, rc, &r, "from", n->listen);
	}
	am_link_server_close(sv);
	return NULL;
}

/* Sync with each peer every every_ms; a peer that fails is retried after
 * 1 s, then 2, 4, ... up to every_ms, so a link that comes back is used
 * soon without hammering one that stays down. A post to the API (kick)
 * syncs with every peer at once. */
static void *
dial(void *arg)
{
	struct node *n = arg;
	uint64_t next[MAX_PEERS] = {0}, backoff[MAX_PEERS] = {0};

	while (!n->stop) {
		bool kicked = n->kick;
		n->kick = 0;
		for (size_t i = 0; i < n->npeers && !n->stop; i++) {
			uint64_t now = am_now_ms();
			if (!kicked && now < next[i])
				continue;
			am_link_options o = {now, n->netkey, 30000, NULL, NULL};
			am_link_report r;
			int rc = am_link_sync_dial(n->q, n->me, n->peers[i], &o, &r);
			count(n, rc, &r, "to", n->peers[i]);
			if (rc == 0) {
				backoff[i] = 0;
				next[i] = am_now_ms() + n->every_ms;
			} else {
				backoff[i] = backoff[i] ? backoff[i] * 2 : 1000;
				if (backoff[i] > n->every_ms)
					backoff[i] = n->every_ms;
				next[i] = am_now_ms() + backoff[i];
			}
		}
		usleep(100 * 1000);
	}
	return NULL;
}

static void
reply(nng_aio *aio, uint16_t status, const char *type, const char *body)
{
	nng_http_res *res = NULL;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", type);
	nng_http_res_copy_data(res, body, strlen(body));
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
on_health(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	am_queue_stats st;
	char body[512];

	if (am_queue_get_counts(n->q, &st) != 0) {
		snprintf(body, sizeof(body), "{\"status\":\"error\",\"error\":\"%s\"}", am_strerror(AM_ESTORE));
		reply(aio, 503, "application/json", body);
		return;
	}
	pthread_mutex_lock(&n->mu);
	snprintf(body, sizeof(body),
	    "{\"status\":\"ok\",\"node_id\":\"%s\",\"envelopes\":%llu,\"outbox\":%llu,\"inbox_unacked\":%llu,"
	    "\"links_ok\":%llu,\"links_failed\":%llu}",
	    n->node_id, (unsigned long long) st.envelopes, (unsigned long long) st.outbox,
	    (unsigned long long) st.inbox_unacked, (unsigned long long) n->links_ok,
	    (unsigned long long) n->links_failed);
	pthread_mutex_unlock(&n->mu);
	reply(aio, 200, "application/json", body);
}

/* Everything but /health wants the bearer token when the daemon has one. */
static bool
token_ok(struct node *n, nng_aio *aio)
{
	const char *h;

	if (n->api.token[0] == '\0')
		return true;
	h = nng_http_req_get_header(nng_aio_get_input(aio, 0), "Authorization");
	if (h != NULL && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == strlen(n->api.token) &&
	    sodium_memcmp(h + 7, n->api.token, strlen(n->api.token)) == 0)
		return true;
	reply(aio, 401, "application/json", "{\"error\":\"missing or wrong bearer token (Authorization: Bearer ...)\"}");
	return false;
}

static void
on_metrics(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	am_queue_stats st = {0};
	char body[4096];

	if (!token_ok(n, aio))
		return;
	(void) am_queue_get_counts(n->q, &st);
	pthread_mutex_lock(&n->mu);
	snprintf(body, sizeof(body),
	    "# HELP am_store_envelopes Envelopes held in the store.\n# TYPE am_store_envelopes gauge\n"
	    "am_store_envelopes %llu\n"
	    "# HELP am_store_outbox Envelopes this node carries on.\n# TYPE am_store_outbox gauge\n"
	    "am_store_outbox %llu\n"
	    "# HELP am_inbox_unacked Envelopes waiting for the consumer.\n# TYPE am_inbox_unacked gauge\n"
	    "am_inbox_unacked %llu\n"
	    "# HELP am_links_total Link sessions by result.\n# TYPE am_links_total counter\n"
	    "am_links_total{result=\"ok\"} %llu\nam_links_total{result=\"failed\"} %llu\n"
	    "# HELP am_envelopes_sent_total Envelopes pushed to peers.\n# TYPE am_envelopes_sent_total counter\n"
	    "am_envelopes_sent_total %llu\n"
	    "# HELP am_envelopes_received_total Envelopes stored from peers.\n"
	    "# TYPE am_envelopes_received_total counter\nam_envelopes_received_total %llu\n",
	    (unsigned long long) st.envelopes, (unsigned long long) st.outbox, (unsigned long long) st.inbox_unacked,
	    (unsigned long long) n->links_ok, (unsigned long long) n->links_failed, (unsigned long long) n->sent,
	    (unsigned long long) n->received);
	{
		size_t len = strlen(body);
		len += (size_t) snprintf(body + len, sizeof(body) - len,
		    "# HELP am_link_refused_total Failed link sessions by reason.\n# TYPE am_link_refused_total counter\n");
		for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]) && len < sizeof(body); i++)
			len += (size_t) snprintf(body + len, sizeof(body) - len, "am_link_refused_total{reason=\"%s\"} %llu\n",
			    reasons[i], (unsigned long long) n->refused[i]);
	}
	pthread_mutex_unlock(&n->mu);
	reply(aio, 200, "text/plain; version=0.0.4", body);
}

static int
scan_peer(void *ctx, const am_queue_peer *p)
{
	char id[AM_NODE_ID_LEN + 1];

	am_node_id_format(id, p->pk);
	json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", id, "name", p->name, "address",
	    p->address, "first_seen_ms", (json_int_t) p->first_seen_ms, "last_seen_ms", (json_int_t) p->last_seen_ms,
	    "contacts", (json_int_t) p->contacts));
	return 0;
}

static void
on_scan(nng_aio *aio)
{
	struct node *n = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	json_t *peers = json_array(), *j;
	char *body;

	if (!token_ok(n, aio)) {
		json_decref(peers);
		return;
	}
	(void) am_queue_peer_each(n->q, scan_peer, peers);
	j = json_pack("{s:s, s:s, s:o}", "node_id", n->node_id, "role", n->gateway ? "gateway" : "node", "peers", peers);
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	reply(aio, 200, "application/json", body ? body : "{}");
	free(body);
}

static void
kick(void *ctx)
{
	((struct node *) ctx)->kick = 1;
}

static int
http_start(nng_http_server **out, struct node *n, const char *host, int port)
{
	char url[128];
	nng_url *u = NULL;
	nng_http_handler *h;
	struct {
		const char *path;
		void (*fn)(nng_aio *);
	} routes[] = {{"/health", on_health}, {n->gateway ? "/v1/metrics" : "/metrics", on_metrics},
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
	n->api.q = n->q;
	n->api.me = n->me;
	n->api.on_new = kick;
	n->api.ctx = n;
	if (am_api_register(*out, &n->api) != 0) {
		fprintf(stderr, "%s\n", am_error_detail());
		rv = NNG_EINVAL;
		goto out;
	}
	rv = nng_http_server_start(*out);
out:
	if (u != NULL)
		nng_url_free(u);
	if (rv != 0)
		fprintf(stderr, "%s: HTTP on %s: %s\n", n->gateway ? "agent-mesh-gateway" : "agent-mesh-node", url,
		    nng_strerror(rv));
	return rv;
}

static void
usage(FILE *f, bool gateway)
{
	fprintf(f, "usage: %s --data DIR --network-key HEX|@FILE [--listen URL] [--peer URL]...\n"
	           "       [--host 127.0.0.1] [--port N (%s, default %s)] [--sync-every 30s] [--identity PEM]\n"
	           "       [--dev-token]%s\n",
	    gateway ? "agent-mesh-gateway" : "agent-mesh-node", gateway ? "GATEWAY_PORT" : "NODE_PORT",
	    gateway ? "8787" : "8000", gateway ? " [--trust-mode tofu]" : "");
}

int
am_daemon_main(bool gateway, int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	    {"network-key", required_argument, NULL, 'k'}, {"listen", required_argument, NULL, 'l'},
	    {"peer", required_argument, NULL, 'p'}, {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'P'}, {"sync-every", required_argument, NULL, 'e'},
	    {"dev-token", no_argument, NULL, 't'}, {"identity", required_argument, NULL, 'i'},
	    {"trust-mode", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
	bool dev_token = getenv("DEV_TOKEN_ENABLED") != NULL && strcmp(getenv("DEV_TOKEN_ENABLED"), "true") == 0;
	const char *identity = NULL;
	const char *me = gateway ? "agent-mesh-gateway" : "agent-mesh-node";
	struct node n;
	const char *dir = NULL, *key = NULL, *host = "127.0.0.1";
	const char *port_env = getenv(gateway ? "GATEWAY_PORT" : "NODE_PORT");
	int port = port_env ? atoi(port_env) : gateway ? 8787 : 8000, c, rc = 1;
	char path[4096];
	nng_http_server *http = NULL;
	pthread_t ts, td;
	bool serving = false, dialing = false;
	sigset_t sigs;

	memset(&n, 0, sizeof(n));
	n.gateway = gateway;
	n.every_ms = 30000;
	if (gateway && getenv("GATEWAY_HOST") != NULL)
		host = getenv("GATEWAY_HOST");
	pthread_mutex_init(&n.mu, NULL);
	while ((c = getopt_long(argc, argv, "d:k:l:p:H:P:e:ti:T:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'k': key = optarg; break;
		case 'l': n.listen = optarg; break;
		case 'p':
			if (n.npeers == MAX_PEERS) {
				fprintf(stderr, "%s: at most %d --peer\n", me, MAX_PEERS);
				return 2;
			}
			n.peers[n.npeers++] = optarg;
			break;
		case 'H': host = optarg; break;
		case 'P': port = atoi(optarg); break;
		case 'e':
			if (am_duration_parse(&n.every_ms, optarg) != 0) {
				fprintf(stderr, "%s: --sync-every: %s\n", me, am_error_detail());
				return 2;
			}
			break;
		case 't': dev_token = true; break;
		case 'i': identity = optarg; break;
		case 'T':
			if (strcmp(optarg, "tofu") != 0) {
				fprintf(stderr, "%s: --trust-mode %s: only tofu exists yet (pki comes with the trust work)\n", me,
				    optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout, gateway); return 0;
		default: usage(stderr, gateway); return 2;
		}
	}
	if (dir == NULL || key == NULL || port <= 0 || port > 65535) {
		fprintf(stderr, "%s: --data DIR and --network-key are required, and the port 1..65535\n", me);
		usage(stderr, gateway);
		return 2;
	}
	if (!dev_token && strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 && strcmp(host, "::1") != 0) {
		fprintf(stderr, "%s: --host %s is not loopback: the API then needs --dev-token\n", me, host);
		return 2;
	}
	if (am_core_init() != 0 || am_netkey_parse(n.netkey, key) != 0) {
		fprintf(stderr, "%s: --network-key: %s\n", me, am_error_detail());
		return 2;
	}
	snprintf(path, sizeof(path), "%s/identity.pem", dir);
	if (am_identity_load_pem(&n.me, identity ? identity : path) != 0) {
		fprintf(stderr, "%s: %s (make the folder with: agent-mesh init --store %s)\n", me, am_error_detail(), dir);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	if (am_queue_open(&n.q, path, NULL) != 0) {
		fprintf(stderr, "%s: %s\n", me, am_error_detail());
		goto out;
	}
	am_node_id_format(n.node_id, am_identity_pk(n.me));
	if (dev_token) {
		uint8_t t[16];
		randombytes_buf(t, sizeof(t));
		sodium_bin2hex(n.api.token, sizeof(n.api.token), t, sizeof(t));
		printf("DEVELOPMENT TOKEN (full rights; capability tokens come later): %s\n", n.api.token);
	}
	/* signals are taken by sigwait below, never by the worker threads */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (http_start(&http, &n, host, port) != 0)
		goto out;
	printf("%s %s: http://%s:%d/health\n", me, n.node_id, host, port);
	fflush(stdout);
	if (n.listen != NULL)
		serving = pthread_create(&ts, NULL, serve, &n) == 0;
	if (n.npeers > 0)
		dialing = pthread_create(&td, NULL, dial, &n) == 0;
	{
		int sig = 0;
		sigwait(&sigs, &sig);
		printf("stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
		fflush(stdout);
	}
	n.stop = 1;
	if (serving)
		pthread_join(ts, NULL);
	if (dialing)
		pthread_join(td, NULL);
	rc = 0;
out:
	if (http != NULL) {
		nng_http_server_stop(http);
		nng_http_server_release(http);
	}
	am_queue_close(n.q);
	am_identity_free(n.me);
	sodium_memzero(n.netkey, sizeof(n.netkey));
	return rc;
}
