/*
 * daemon.c — what agent-mesh-node and agent-mesh-gateway run: accept link
 * sessions on --listen (each on its own thread, many at once), keep a
 * link to every --peer / --gateway and to every node discovery finds
 * (one thread each, reconnecting with backoff), and serve HTTP (status.c
 * and the messages API, api.c). Links are live: after the first sync a
 * link stays open and carries what is stored next within milliseconds
 * (the hub), and ends every --sync-every so a reconciliation catches what
 * came in by other ways (a stick imported by another process).
 *
 * Every peer's name is checked against the TOFU trust store
 * (DATA/trust/trust_store.json). Configuration: flags, then the
 * environment, then a .env file (--env-file, default ./.env), then
 * defaults. Without --dev-token the API is served on loopback only. Stops
 * cleanly on SIGINT or SIGTERM.
 *
 * This file: configuration, start-up and shutdown, and the watch for
 * other writers; the links themselves are daemon_links.c.
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
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* ---- other writers ---- */

/* The CLI (send, token revoke, bundle sync) may write to a running
 * daemon's store from another process. Whenever the store's generation
 * moves, walk what was created after the last envelope seen, and hand
 * what the hub has not seen to the live links. Envelopes that arrive with
 * an older creation time (a stick's) are left to reconciliation. */
struct watch_state {
	uint64_t created;
	uint8_t id[AM_ID_BYTES];
	uint64_t limit;
	uint8_t ids[256 * AM_ID_BYTES];
	size_t n;
	am_hub *hub;
};

static int
watch_visit(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct watch_state *w = ctx;

	if (m->created_ms <= w->limit) { /* a clock far ahead must not blind us */
		w->created = m->created_ms;
		memcpy(w->id, id, AM_ID_BYTES);
	}
	if (!am_hub_seen(w->hub, id) && (m->flags & AM_QF_OUTBOX)) {
		memcpy(w->ids + w->n * AM_ID_BYTES, id, AM_ID_BYTES);
		w->n++;
		if (w->n == 256) {
			am_hub_note(w->hub, w->ids, w->n, 0, 0);
			w->n = 0;
		}
	}
	return 0;
}

static void *
watch(void *arg)
{
	struct node *n = arg;
	struct watch_state *w = calloc(1, sizeof(*w));
	uint64_t gen = am_queue_generation(n->q);

	if (w == NULL)
		return NULL;
	w->hub = n->hub;
	w->created = am_now_ms();
	while (!n->stop) {
		am_daemon_nap(n, 300);
		uint64_t g = am_queue_generation(n->q);
		if (g == gen)
			continue;
		gen = g;
		w->limit = am_now_ms() + 60000;
		w->n = 0;
		(void) am_queue_each_after(n->q, w->created, w->id, watch_visit, w);
		if (w->n > 0)
			am_hub_note(w->hub, w->ids, w->n, 0, 0);
	}
	free(w);
	return NULL;
}

/* ---- provisioning ---- */

/* The node's key: the folder's, which must be the bundle's, or the
 * bundle's written into a new folder (with its store). */
static int
take_provision(const char *prog, const char *dir, const char *identity, const am_provision *p)
{
	char path[4096];
	am_identity *have = NULL;
	am_queue *q = NULL;
	am_queue_options o = {0};

	snprintf(path, sizeof(path), "%s/identity.pem", dir);
	if (identity != NULL)
		snprintf(path, sizeof(path), "%s", identity);
	if (am_identity_load_pem(&have, path) == 0) {
		bool same = memcmp(am_identity_pk(have), p->node_pk, AM_PK_BYTES) == 0;
		am_identity_free(have);
		if (!same) {
			fprintf(stderr, "%s: --provision: the bundle is for another key than %s\n", prog, path);
			return 2;
		}
		return 0;
	}
	if (p->node_key_pem == NULL) {
		fprintf(stderr, "%s: --provision: the bundle holds no key (made on the device) and %s is missing\n", prog,
		    path);
		return 2;
	}
	if (am_daemon_make_dir(dir) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 1;
	}
	if (am_file_write_atomic(path, p->node_key_pem, strlen(p->node_key_pem), 0600, false) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	o.create = true;
	if (am_queue_open(&q, path, &o) != 0 || am_queue_set_self(q, p->node_pk) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		am_queue_close(q);
		return 1;
	}
	am_queue_close(q);
	am_say("provisioned as \"%s\": key written to %s/identity.pem", p->name, dir);
	return 0;
}

/* ---- open ---- */

bool
am_daemon_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0;
}

/* The key, the store, the trust store, the hub and the audit log; 0, or
 * the exit status with the error printed. */
static int
open_state(struct node *n, struct daemon_config *c)
{
	char path[4096];
	int rc;

	if ((rc = am_daemon_first_start(n, c)) != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/identity.pem", c->dir);
	if (c->provision != NULL && (rc = take_provision(c->prog, c->dir, c->identity, &c->prov)) != 0)
		return rc;
	if (am_identity_load_pem(&n->me, c->identity ? c->identity : path) != 0) {
		fprintf(stderr, "%s: %s (make the folder with: agent-mesh init --store %s)\n", c->prog, am_error_detail(),
		    c->dir);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store", c->dir);
	if (am_queue_open(&n->q, path, NULL) != 0 || am_trust_open(&n->trust, c->dir) != 0 ||
	    am_hub_new(&n->hub, 65536) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 1;
	}
	am_node_id_format(n->node_id, am_identity_pk(n->me));
	/* slot 0: a gateway trusts its own tokens; a node only those of the
	 * gateways it is told of */
	if (c->gateway) {
		memcpy(n->api.trusted, am_identity_pk(n->me), AM_PK_BYTES);
		n->api.ntrusted = 1 + c->ntrust;
	} else {
		memmove(n->api.trusted, n->api.trusted + AM_PK_BYTES, c->ntrust * AM_PK_BYTES);
		n->api.ntrusted = c->ntrust;
	}
	const char *ap = getenv("AUDIT_LOG_PATH");
	snprintf(path, sizeof(path), "%s/audit/audit.log", c->dir);
	if ((rc = am_audit_open(&n->audit, ap && ap[0] ? ap : path, n->me)) != 0) {
		fprintf(stderr, "%s: audit log: %s\n", c->prog, am_error_detail());
		return rc == AM_EINVAL ? 2 : 1; /* AUDIT_SYSLOG, as written, cannot work */
	}
	n->api.audit = n->audit;
	if (am_audit_limiter_new(&n->api.refusals, n->audit) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 1;
	}
	n->api.data_dir = c->dir;
	/* a non-loopback API must be able to check tokens */
	if (!c->dev_token && n->api.ntrusted == 0 && !am_daemon_loopback(c->host)) {
		fprintf(stderr, "%s: --host %s is not loopback: the API then needs --trust-key (capability tokens) or "
		                "--dev-token\n", c->prog, c->host);
		return 2;
	}
	return 0;
}

/* --position and --zone: kept in the store, so they hold across restarts */
static int
set_position(struct node *n, const struct daemon_config *c)
{
	am_position pos = {0};
	char *end;

	(void) am_queue_get_position(n->q, &pos);
	if (c->position != NULL) {
		pos.lat = strtod(c->position, &end);
		if (*end != ',' || (pos.lon = strtod(end + 1, &end), *end != '\0') || !(pos.lat >= -90 && pos.lat <= 90) ||
		    !(pos.lon >= -180 && pos.lon <= 180)) {
			fprintf(stderr, "%s: --position \"%s\": want LAT,LON in degrees (52.52,13.405)\n", c->prog, c->position);
			return 2;
		}
		pos.has_fix = true;
	}
	if (c->nzones > 0) {
		pos.ntags = 0;
		for (size_t i = 0; i < c->nzones; i++) {
			if (am_tag_check("--zone", c->zones[i], strlen(c->zones[i])) != 0) {
				fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
				return 2;
			}
			snprintf(pos.tags[pos.ntags++], AM_TAG_MAX + 1, "%s", c->zones[i]);
		}
	}
	if (am_queue_set_position(n->q, &pos) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 1;
	}
	return 0;
}

/* Where and what this node is (position, zones, groups, name, role), as
 * its peers will be told. */
static int
describe_self(struct node *n, const struct daemon_config *c)
{
	int rc;
	size_t ng = 0;

	if ((c->position != NULL || c->nzones > 0) && (rc = set_position(n, c)) != 0)
		return rc;
	if (c->ngroups > 0) {
		char g[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
		for (size_t i = 0; i < c->ngroups; i++)
			snprintf(g[i], sizeof(g[i]), "%s", c->groups[i]);
		if (am_queue_set_groups(n->q, g, c->ngroups) != 0) {
			fprintf(stderr, "%s: --group: %s\n", c->prog, am_error_detail());
			return 2;
		}
	}
	if (c->name != NULL)
		snprintf(n->info.name, sizeof(n->info.name), "%s", c->name);
	else
		snprintf(n->info.name, sizeof(n->info.name), "%s-%.16s", c->gateway ? "gateway" : "node", n->node_id);
	snprintf(n->info.role, sizeof(n->info.role), "%s", c->gateway ? "gateway" : "node");
	{ /* this run: the other gateway of a pair has our key, not our instance */
		uint8_t r[8];
		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(n->info.instance, sizeof(n->info.instance), r, sizeof(r));
	}
	n->in_pair = c->gateway && c->shared_state != NULL;
	snprintf(n->info.listen, sizeof(n->info.listen), "%s", n->listen ? n->listen : "");
	(void) am_queue_get_position(n->q, &n->info.pos);
	if (am_queue_get_groups(n->q, n->info.groups, &ng) == 0)
		n->info.ngroups = (uint8_t) ng;
	n->api.name = n->info.name;
	return 0;
}

/* Receipts owed from before a crash, who may read the monitoring lines,
 * the development token, and the start in the audit log. */
static void
announce(struct node *n, const struct daemon_config *c)
{
	uint64_t made = 0;

	if (am_owed_recover(n->q, n->me, am_now_ms(), n->hub, &made) != 0)
		am_say("receipts owed from before a crash: %s", am_error_detail());
	else if (made > 0)
		am_say("made %llu receipts owed from before a crash", (unsigned long long) made);
	/* the guide's monitoring lines (curl .../health, /v1/mesh_scan,
	 * /v1/metrics, /metrics) work as written in development: a daemon
	 * with --dev-token, or a node joined to a development gateway, whose
	 * API only this machine can reach. Elsewhere
	 * they need a token, unless --metrics-public says otherwise. */
	bool dev = (c->dev_token || c->dev_joined) && am_daemon_loopback(c->host);
	if (dev)
		n->monitor_public = true;
	if (n->monitor_public)
		am_say("metrics and mesh_scan are readable without a token (%s)",
		    !dev ? "--metrics-public" : c->dev_token ? "development token on loopback" : "development join on loopback");
	if (c->dev_token) {
		uint8_t t[16];
		char tpath[4096];
		randombytes_buf(t, sizeof(t));
		sodium_bin2hex(n->api.token, sizeof(n->api.token), t, sizeof(t));
		printf("DEVELOPMENT TOKEN (full rights): %s\n", n->api.token);
		printf("WARNING: --dev-token gives anyone holding this token every right on this daemon's API. "
		       "For development only; in the field issue capability tokens (agent-mesh token issue).\n");
		/* for local scripts: readable by this user only */
		snprintf(tpath, sizeof(tpath), "%s/dev-token", c->dir);
		if (am_file_write_atomic(tpath, n->api.token, strlen(n->api.token), 0600, true) != 0)
			am_say("could not write %s: %s", tpath, am_error_detail());
		(void) am_audit_log(n->audit, "dev_token_enabled", "dev-token", NULL, NULL);
	}
	(void) am_audit_log(n->audit, "daemon_start", n->info.name[0] ? n->info.name : n->node_id, NULL,
	    json_pack("{s:s, s:s, s:I}", "role", c->gateway ? "gateway" : "node", "trust_mode", c->trust_mode,
	        "trusted_gateways", (json_int_t) n->api.ntrusted));
}

/* ---- run ---- */

/* The role's features, each given the daemon's view, opened in order
 * (routes added to the HTTP server before it serves); 0, or the exit
 * status with the error printed. */
static int
open_features(struct node *n, const struct daemon_config *c)
{
	n->view = (am_daemon_view){c->prog, c->dir, c->host, n->mcp_port, c->shared_state, n->q, n->me, &n->info, n->hub,
	    n->audit, n->trust, &n->api, n->http, n->pki, &n->results_refused};
	for (size_t i = 0; i < n->role->nfeatures && i < MAX_FEATURES; i++, n->fopened++) {
		const am_feature *f = n->role->features[i];
		int rc = f->open != NULL ? f->open(&n->fstate[i], &n->view) : 0;
		if (rc != 0) {
			fprintf(stderr, "%s: %s: %s\n", c->prog, f->name, am_error_detail());
			return rc == AM_EFIELD || rc == AM_EMALFORMED ? 2 : 1;
		}
	}
	return 0;
}

/* The HTTP API (with the links on its port when --listen names it), the
 * role's features, the dispatcher; 0, or the exit status with the error
 * printed. */
static int
start_services(struct node *n, const struct daemon_config *c)
{
	const char *path = NULL;
	int rc;

	/* links on the HTTP port (ws://HOST:PORT/PATH): the HTTP server
	 * relays their upgrades to a loopback link listener */
	if (n->listen != NULL && strncmp(n->listen, "ws://", 5) == 0) {
		const char *slash = strchr(n->listen + 5, '/'), *colon;
		size_t hl = slash ? (size_t) (slash - n->listen) : strlen(n->listen);
		char hp[160];
		snprintf(hp, sizeof(hp), "%.*s", (int) hl, n->listen);
		if ((colon = strrchr(hp, ':')) != NULL && atoi(colon + 1) == c->port) {
			path = slash ? slash : "/";
			snprintf(n->link_inner, sizeof(n->link_inner), "ws://127.0.0.1:0%s", path);
		}
	}
	if (am_daemon_http_open(n, c->host, c->port, path) != 0)
		return 1;
	if (am_daemon_join_register(n, c) != 0 || am_daemon_pair_register(n, c) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 1;
	}
	if ((rc = open_features(n, c)) != 0)
		return rc;
	if (am_daemon_dispatch_start(n) != 0 || am_http_server_start(n->http) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 1;
	}
	am_say("%s %s \"%s\": http://%s:%d/health (trust store %s)", c->prog, n->node_id, n->info.name, c->host,
	    c->port, am_trust_path(n->trust));
	return 0;
}

/* The link listener, the watch for other writers, a dialer per --peer,
 * discovery. */
static void
start_links(struct node *n, const struct daemon_config *c)
{
	const char *ip = getenv("MESH_MULTICAST_IP");

	if (n->listen != NULL)
		n->serving = pthread_create(&n->serve_th, NULL, am_daemon_serve, n) == 0;
	n->watching = pthread_create(&n->watch_th, NULL, watch, n) == 0;
	for (size_t i = 0; i < c->npeers; i++)
		if (am_daemon_add_dialer(n, c->peers[i], "static", NULL) != 0)
			fprintf(stderr, "%s: --peer %s: %s\n", c->prog, c->peers[i], am_error_detail());
	if (c->no_discovery)
		return;
	am_discovery_options d = {ip ? ip : "239.255.42.99", (uint16_t) c->multicast_port, getenv("MESH_MULTICAST_IF"), n->me,
	    n->netkey, n->info.name, n->link_port, n->link_ws, n->beacon_ms};
	/* discovery is a convenience: without a multicast route the daemon
	 * still runs on its static peers */
	am_discovery *disc = NULL;
	if (am_discovery_start(&disc, &d, am_daemon_discovered, n) != 0) {
		am_say("discovery off: %s", am_error_detail());
		return;
	}
	/* the metrics read it under n->mu, from the HTTP threads */
	pthread_mutex_lock(&n->mu);
	n->disc = disc;
	pthread_mutex_unlock(&n->mu);
	am_say("discovery on %s:%d%s", d.group_ip, c->multicast_port,
	    d.link_port ? (d.link_ws ? ", announcing ws links on the HTTP port" : "")
	                : " (listening only: links on loopback, or none; --host 0.0.0.0 or a tcp --listen announces them)");
}

/* The features asked to stop (their threads ended, what waits
 * answered), the dispatcher joined, discovery stopped and freed: let go
 * under n->mu first, as the metrics, on HTTP threads still serving, read
 * it under it. */
static void
stop_features_and_discovery(struct node *n)
{
	am_discovery *disc;

	for (size_t i = n->fopened; i-- > 0 && !n->features_stopped;)
		if (n->role->features[i]->stop != NULL)
			n->role->features[i]->stop(n->fstate[i]);
	n->features_stopped = true;
	am_daemon_dispatch_stop(n);
	pthread_mutex_lock(&n->mu);
	disc = n->disc;
	n->disc = NULL;
	pthread_mutex_unlock(&n->mu);
	am_discovery_stop(disc);
}

/* Every thread ended (inbound sessions given 10 s), in the order that
 * lets each finish what it holds. */
static void
stop_all(struct node *n)
{
	struct timespec dl;

	n->stop = 1;
	stop_features_and_discovery(n);
	am_hub_stop(n->hub); /* closes every open link */
	if (n->serving)
		pthread_join(n->serve_th, NULL);
	if (n->watching)
		pthread_join(n->watch_th, NULL);
	n->serving = n->watching = false;
	for (size_t i = 0; i < n->ndialers; i++) {
		pthread_join(n->dialers[i]->th, NULL);
		free(n->dialers[i]);
	}
	n->ndialers = 0;
	/* inbound sessions end once their streams are closed */
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&n->mu);
	while (n->sessions > 0)
		if (pthread_cond_timedwait(&n->idle, &n->mu, &dl) != 0)
			break;
	pthread_mutex_unlock(&n->mu);
}

/* ---- close ---- */

static void
close_all(struct node *n)
{
	stop_features_and_discovery(n);
	/* waiting requests were answered (the features' stop) before the
	 * server stops; no route is called once it is freed */
	am_http_server_free(n->http);
	for (size_t i = n->fopened; i-- > 0;)
		if (n->role->features[i]->close != NULL)
			n->role->features[i]->close(n->fstate[i]);
	/* a session that did not end in time still uses these: the process
	 * exits anyway */
	if (n->sessions == 0) {
		am_queue_close(n->q);
		am_hub_free(n->hub);
		am_trust_close(n->trust);
		am_audit_limiter_free(n->api.refusals);
		am_audit_close(n->audit);
		am_identity_free(n->me);
	}
}

/* configure → open → run → close. The node (about 2 MB: its peer and
 * pre-handshake tables) lives on the heap, not on main's stack. */
int
am_daemon_main(const am_role *role, int argc, char **argv)
{
	bool gateway = role->gateway;
	struct daemon_config *c = calloc(1, sizeof(*c));
	struct node *n = calloc(1, sizeof(*n));
	sigset_t sigs;
	int rc = 1, sig = 0;

	if (c == NULL || n == NULL) {
		fprintf(stderr, "%s: out of memory\n", gateway ? "agent-mesh-gateway" : "agent-mesh-node");
		free(c);
		free(n);
		return 1;
	}
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->idle, NULL);
	if ((rc = am_daemon_configure(n, c, role, argc, argv)) != DAEMON_GO)
		goto done;
	if (c->check_config) {
		rc = am_daemon_check_config(n, c);
		goto done;
	}
	if ((rc = open_state(n, c)) != 0 || (rc = describe_self(n, c)) != 0)
		goto out;
	announce(n, c);
	/* a tool that exits without reading its input must not take the
	 * daemon with it: writes to a closed pipe fail with EPIPE instead */
	signal(SIGPIPE, SIG_IGN);
	/* signals are taken by sigwait below, never by the worker threads */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if ((rc = start_services(n, c)) != 0)
		goto out;
	start_links(n, c);
	/* SIGHUP: logrotate moved the audit log (field-kit/logrotate) */
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
		if (am_audit_reopen(n->audit) != 0)
			am_say("SIGHUP: the audit log stays where it was: %s", am_error_detail());
		else
			(void) am_audit_log(n->audit, "audit_reopened", am_audit_path(n->audit), NULL,
			    json_pack("{s:s}", "why", "SIGHUP (log rotation)"));
	}
	am_say("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
	stop_all(n);
	rc = 0;
out:
	close_all(n);
done:
	am_provision_clear(&c->prov);
	sodium_memzero(n->netkey, sizeof(n->netkey));
	/* a session still running past the 10 s uses the node: the process
	 * exits anyway */
	if (n->sessions == 0) {
		pthread_cond_destroy(&n->idle);
		pthread_mutex_destroy(&n->mu);
		free(n);
	}
	free(c);
	return rc;
}
