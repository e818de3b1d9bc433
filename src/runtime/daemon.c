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
#include "owed.h"

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
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
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
	am_daemon_say("provisioned as \"%s\": key written to %s/identity.pem", p->name, dir);
	return 0;
}

/* ---- configuration ---- */

static void
usage(FILE *f, bool gateway)
{
	fprintf(f,
	    "usage: %s --data DIR --network-key HEX|@FILE [options]\n"
	    "  --listen URL          accept links (tcp://0.0.0.0:7400, ws://..., ipc://...)\n"
	    "  --peer URL            keep a link to this peer (repeatable)%s\n"
	    "  --name NAME           how peers know this node (NODE_NAME; default %s-<key prefix>)\n"
	    "  --position LAT,LON    this node's position; --zone TAG, --group NAME (repeatable)\n"
	    "  --host H --port N     HTTP API (%s, default 127.0.0.1:%s)\n"
	    "  --dev-token           print a bearer token the API requires (DEV_TOKEN_ENABLED=true); on loopback\n"
	    "                        it also opens /metrics and /v1/mesh_scan to this machine without a token\n"
	    "  --metrics-public      /metrics, /v1/metrics and /v1/mesh_scan need no token (METRICS_PUBLIC=true)\n"
	    "  --trust-mode tofu|pki pin each peer name's first key, or require a gateway's certificate (TRUST_MODE)\n"
	    "  --provision FILE      a provisioning bundle (agent-mesh provision): key, certificate, gateway, network key\n"
	    "  --mcp-port 8790       serve the Model Context Protocol (streamable HTTP) on this port (MCP_PORT)\n"
	    "  --trust-key KEY       a gateway whose capability tokens count (repeatable; a gateway trusts itself)\n"
	    "  --identity PEM        the key (default DIR/identity.pem)\n"
	    "  --sync-every 5m       reconcile on every link at least this often\n"
	    "  --link-timeout 30s    a silent link ends after this; a down peer is retried at least this often\n"
	    "  --no-discovery        no multicast beacons (MESH_DISCOVERY=off); static peers still work\n"
	    "  --beacon-every 5s     beacon interval; group MESH_MULTICAST_IP:MESH_MULTICAST_PORT\n"
	    "  --env-file FILE       KEY=VALUE defaults (default ./.env when present)\n"
	    "  --version             print the version and exit\n"
	    "  --check-config        check flags, .env, the key and tool files, then exit (0: OK)\n",
	    gateway ? "agent-mesh-gateway" : "agent-mesh-node", gateway ? "" : "\n  --gateway URL         the same, for the gateway",
	    gateway ? "gateway" : "node", gateway ? "GATEWAY_HOST/GATEWAY_PORT" : "NODE_PORT", gateway ? "8787" : "8000");
}

static int
parse_port(const char *prog, const char *what, const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1 || v > 65535) {
		fprintf(stderr, "%s: %s \"%s\" is not a port (1..65535)\n", prog, what, s);
		return -1;
	}
	*out = (int) v;
	return 0;
}

/* the tcp port of a listen URL, for beacons (0: not tcp) */
static uint16_t
listen_port(const char *url)
{
	const char *colon;

	if (url == NULL || strncmp(url, "tcp://", 6) != 0 || (colon = strrchr(url, ':')) == NULL)
		return 0;
	long v = strtol(colon + 1, NULL, 10);
	return v > 0 && v < 65536 ? (uint16_t) v : 0;
}

static bool
env_true(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "on") == 0);
}

static bool
env_false(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0 || strcmp(v, "off") == 0);
}

int
am_daemon_main(bool gateway, int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	    {"network-key", required_argument, NULL, 'k'}, {"listen", required_argument, NULL, 'l'},
	    {"peer", required_argument, NULL, 'p'}, {"gateway", required_argument, NULL, 'g'},
	    {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'P'},
	    {"sync-every", required_argument, NULL, 'e'}, {"dev-token", no_argument, NULL, 't'},
	    {"metrics-public", no_argument, NULL, 'm'},
	    {"identity", required_argument, NULL, 'i'}, {"trust-mode", required_argument, NULL, 'T'},
	    {"name", required_argument, NULL, 'n'}, {"position", required_argument, NULL, 'x'},
	    {"zone", required_argument, NULL, 'z'}, {"group", required_argument, NULL, 'G'},
	    {"no-discovery", no_argument, NULL, 'D'}, {"beacon-every", required_argument, NULL, 'b'},
	    {"env-file", required_argument, NULL, 'E'}, {"link-timeout", required_argument, NULL, 'L'},
	    {"trust-key", required_argument, NULL, 'K'}, {"provision", required_argument, NULL, 'V'},
	    {"mcp-port", required_argument, NULL, 'M'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'v'}, {"check-config", no_argument, NULL, 'C'}, {0, 0, 0, 0}};
	const char *prog = gateway ? "agent-mesh-gateway" : "agent-mesh-node";
	const char *identity = NULL, *dir = NULL, *key = NULL, *host = NULL, *name = NULL, *trust_mode = NULL;
	const char *provision = NULL;
	am_provision prov;
	const char *env_file = NULL, *peers[MAX_DIALERS], *position = NULL;
	const char *zones[AM_GEO_MAX_TAGS], *groups[AM_QUEUE_MAX_GROUPS];
	size_t npeers = 0, nzones = 0, ngroups = 0, ntrust = 0;
	bool dev_token = false, no_discovery = false, check_config = false;
	uint64_t beacon_ms = 5000;
	int port = 0, c, rc = 1;
	struct node n;
	char path[4096];
	pthread_t ts, tw;
	bool serving = false, watching = false;
	sigset_t sigs;

	memset(&n, 0, sizeof(n));
	memset(&prov, 0, sizeof(prov));
	n.gateway = gateway;
	n.prog = prog;
	n.resync_ms = 5 * 60 * 1000;
	n.link_timeout_ms = 30000;
	pthread_mutex_init(&n.mu, NULL);
	pthread_cond_init(&n.idle, NULL);
	while ((c = getopt_long(argc, argv, "d:k:l:p:g:H:P:e:ti:T:n:x:z:G:Db:E:L:K:V:M:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'k': key = optarg; break;
		case 'l': n.listen = optarg; break;
		case 'p':
		case 'g':
			if (npeers == MAX_DIALERS) {
				fprintf(stderr, "%s: at most %d --peer\n", prog, MAX_DIALERS);
				return 2;
			}
			peers[npeers++] = optarg;
			break;
		case 'H': host = optarg; break;
		case 'P':
			if (parse_port(prog, "--port", optarg, &port) != 0)
				return 2;
			break;
		case 'e':
			if (am_duration_parse(&n.resync_ms, optarg) != 0 || n.resync_ms < 1000) {
				fprintf(stderr, "%s: --sync-every %s: a duration of at least 1s (30s, 5m, 1h)\n", prog, optarg);
				return 2;
			}
			break;
		case 't': dev_token = true; break;
		case 'm': n.monitor_public = true; break;
		case 'C': check_config = true; break;
		case 'i': identity = optarg; break;
		case 'T': trust_mode = optarg; break;
		case 'n': name = optarg; break;
		case 'x': position = optarg; break;
		case 'z':
			if (nzones == AM_GEO_MAX_TAGS) {
				fprintf(stderr, "%s: at most %d --zone\n", prog, AM_GEO_MAX_TAGS);
				return 2;
			}
			zones[nzones++] = optarg;
			break;
		case 'G':
			if (ngroups == AM_QUEUE_MAX_GROUPS) {
				fprintf(stderr, "%s: at most %d --group\n", prog, AM_QUEUE_MAX_GROUPS);
				return 2;
			}
			groups[ngroups++] = optarg;
			break;
		case 'D': no_discovery = true; break;
		case 'b':
			if (am_duration_parse(&beacon_ms, optarg) != 0 || beacon_ms < 100 || beacon_ms > 3600000) {
				fprintf(stderr, "%s: --beacon-every %s: a duration from 100ms to 1h\n", prog, optarg);
				return 2;
			}
			break;
		case 'E': env_file = optarg; break;
		case 'V': provision = optarg; break;
		case 'M':
			if (parse_port(prog, "--mcp-port", optarg, &n.mcp_port) != 0)
				return 2;
			break;
		case 'K':
			if (ntrust == 7) {
				fprintf(stderr, "%s: at most 7 --trust-key\n", prog);
				return 2;
			}
			if (am_node_id_parse(n.api.trusted + (1 + ntrust) * AM_PK_BYTES, optarg) != 0) {
				fprintf(stderr, "%s: --trust-key %s: a gateway's public key (64 hex; agent-mesh keygen prints it)\n",
				    prog, optarg);
				return 2;
			}
			ntrust++;
			break;
		case 'L': {
			uint64_t ms = 0;
			if (am_duration_parse(&ms, optarg) != 0 || ms < 1000 || ms > 3600000) {
				fprintf(stderr, "%s: --link-timeout %s: a duration from 1s to 1h\n", prog, optarg);
				return 2;
			}
			n.link_timeout_ms = (int) ms;
			break;
		}
		case 'h': usage(stdout, gateway); return 0;
		case 'v':
			printf("%s " AM_VERSION " (envelope v%d, store v%d)\n", prog, AM_ENVELOPE_VERSION, AM_QUEUE_VERSION);
			return 0;
		default: usage(stderr, gateway); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
		return 2;
	}
	/* flags > environment > .env > defaults */
	if (am_env_file_load(env_file ? env_file : ".env", env_file != NULL) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 2;
	}
	if (!dev_token)
		dev_token = env_true("DEV_TOKEN_ENABLED");
	if (host == NULL)
		host = gateway && getenv("GATEWAY_HOST") ? getenv("GATEWAY_HOST") : "127.0.0.1";
	if (port == 0) {
		const char *pe = getenv(gateway ? "GATEWAY_PORT" : "NODE_PORT");
		port = gateway ? 8787 : 8000;
		if (pe != NULL && parse_port(prog, gateway ? "GATEWAY_PORT" : "NODE_PORT", pe, &port) != 0)
			return 2;
	}
	if (am_core_init() != 0) {
		fprintf(stderr, "%s: libsodium did not initialise\n", prog);
		return 1;
	}
	if (provision != NULL && am_provision_load(&prov, provision) != 0) {
		fprintf(stderr, "%s: --provision %s\n", prog, am_error_detail());
		return 2;
	}
	if (trust_mode == NULL)
		trust_mode = getenv("TRUST_MODE") ? getenv("TRUST_MODE") : provision ? "pki" : "tofu";
	if (strcmp(trust_mode, "tofu") != 0 && strcmp(trust_mode, "pki") != 0) {
		fprintf(stderr, "%s: trust mode \"%s\": tofu or pki\n", prog, trust_mode);
		am_provision_clear(&prov);
		return 2;
	}
	n.pki = strcmp(trust_mode, "pki") == 0;
	if (provision != NULL) {
		/* the bundle gives the network key, the name, the gateway to trust
		 * and the certificate; flags still win */
		if (key == NULL)
			memcpy(n.netkey, prov.netkey, 32);
		if (name == NULL)
			name = prov.name;
		if (ntrust == 7) {
			fprintf(stderr, "%s: at most 7 --trust-key with --provision\n", prog);
			return 2;
		}
		memcpy(n.api.trusted + (1 + ntrust) * AM_PK_BYTES, prov.gateway_pk, AM_PK_BYTES);
		ntrust++;
		snprintf(n.info.cert, sizeof(n.info.cert), "%s", prov.cert);
	}
	if (key == NULL)
		key = getenv("MESH_NETWORK_KEY");
	if (n.mcp_port == 0 && getenv("MCP_PORT") != NULL && parse_port(prog, "MCP_PORT", getenv("MCP_PORT"), &n.mcp_port) != 0)
		return 2;
	if (n.listen == NULL)
		n.listen = getenv("MESH_LISTEN");
	if (name == NULL)
		name = getenv("NODE_NAME");
	if (env_false("MESH_DISCOVERY"))
		no_discovery = true;
	n.beacon_ms = (int) beacon_ms;
	{ /* the link port's limits before a handshake (docs/OPERATIONS.md) */
		long hs = AM_LINK_HANDSHAKE_MS / 1000, pmax = PREAUTH_MAX, pper = PREAUTH_PER_ADDR;
		if (am_env_long("AM_LINK_HANDSHAKE_TIMEOUT", 1, 300, &hs) != 0 ||
		    am_env_long("AM_LINK_PREAUTH_MAX", 1, PREAUTH_CAP, &pmax) != 0 ||
		    am_env_long("AM_LINK_PREAUTH_PER_ADDRESS", 1, PREAUTH_CAP, &pper) != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			return 2;
		}
		n.handshake_ms = (int) hs * 1000;
		n.preauth_max = (int) pmax;
		n.preauth_per_addr = (int) (pper < pmax ? pper : pmax);
	}
	if (dir == NULL || (key == NULL && provision == NULL)) {
		fprintf(stderr, "%s: --data DIR and --network-key (or MESH_NETWORK_KEY, or --provision) are required\n", prog);
		usage(stderr, gateway);
		return 2;
	}

	if (name != NULL && am_tag_check("--name", name, strlen(name)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 2;
	}
	if (key != NULL && am_netkey_parse(n.netkey, key) != 0) {
		fprintf(stderr, "%s: --network-key: %s\n", prog, am_error_detail());
		return 2;
	}
	if (check_config) {
		/* what a start would read, read and reported; nothing written,
		 * nothing bound (flags, .env and the limits are checked above) */
		am_identity *id = NULL;
		am_toolbox *tb = NULL;
		char tdir[4096];
		int bad = 0;
		snprintf(path, sizeof(path), "%s/identity.pem", dir);
		if (provision == NULL && am_identity_load_pem(&id, identity ? identity : path) != 0) {
			fprintf(stderr, "%s: %s (make the folder with: agent-mesh init --store %s)\n", prog, am_error_detail(), dir);
			bad = 1;
		}
		snprintf(tdir, sizeof(tdir), "%s/tools", dir);
		if (am_toolbox_load(&tb, tdir) != 0) {
			fprintf(stderr, "%s: tools: %s\n", prog, am_error_detail());
			bad = 1;
		}
		if (!bad)
			printf("%s: configuration OK: data %s, HTTP %s:%d, trust %s, %zu tools%s%s\n", prog, dir, host, port,
			    trust_mode, am_toolbox_count(tb), n.listen ? ", links on " : "", n.listen ? n.listen : "");
		am_toolbox_free(tb);
		am_identity_free(id);
		am_provision_clear(&prov);
		return bad ? 2 : 0;
	}
	snprintf(path, sizeof(path), "%s/identity.pem", dir);
	if (provision != NULL && (rc = take_provision(prog, dir, identity, &prov)) != 0) {
		am_provision_clear(&prov);
		return rc;
	}
	if (am_identity_load_pem(&n.me, identity ? identity : path) != 0) {
		fprintf(stderr, "%s: %s (make the folder with: agent-mesh init --store %s)\n", prog, am_error_detail(), dir);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	if (am_queue_open(&n.q, path, NULL) != 0 || am_trust_open(&n.trust, dir) != 0 || am_hub_new(&n.hub, 65536) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		goto out;
	}
	am_node_id_format(n.node_id, am_identity_pk(n.me));
	/* slot 0: a gateway trusts its own tokens; a node only those of the
	 * gateways it is told of */
	if (gateway) {
		memcpy(n.api.trusted, am_identity_pk(n.me), AM_PK_BYTES);
		n.api.ntrusted = 1 + ntrust;
	} else {
		memmove(n.api.trusted, n.api.trusted + AM_PK_BYTES, ntrust * AM_PK_BYTES);
		n.api.ntrusted = ntrust;
	}
	{
		const char *ap = getenv("AUDIT_LOG_PATH");
		char apath[4096];
		snprintf(apath, sizeof(apath), "%s/audit/audit.log", dir);
		if (am_audit_open(&n.audit, ap && ap[0] ? ap : apath, n.me) != 0) {
			fprintf(stderr, "%s: audit log: %s\n", prog, am_error_detail());
			goto out;
		}
		n.api.audit = n.audit;
		if (am_audit_limiter_new(&n.api.refusals, n.audit) != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			goto out;
		}
	}
	{
		char tdir[4096], jdir[4096];
		snprintf(tdir, sizeof(tdir), "%s/tools", dir);
		snprintf(jdir, sizeof(jdir), "%s/jobs", dir);
		if (am_toolbox_load(&n.tools, tdir) != 0) {
			fprintf(stderr, "%s: tools: %s\n", prog, am_error_detail());
			rc = 2;
			goto out;
		}
		if (am_jobs_open(&n.jobs, jdir) != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			goto out;
		}
		n.api.tools = n.tools;
		n.api.jobs = n.jobs;
		n.api.data_dir = dir;
	}
	/* a non-loopback API must be able to check tokens */
	if (!dev_token && n.api.ntrusted == 0 && strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 &&
	    strcmp(host, "::1") != 0) {
		fprintf(stderr, "%s: --host %s is not loopback: the API then needs --trust-key (capability tokens) or "
		                "--dev-token\n", prog, host);
		rc = 2;
		goto out;
	}
	/* position, zones and groups given here are kept in the store */
	if (position != NULL || nzones > 0) {
		am_position pos = {0};
		(void) am_queue_get_position(n.q, &pos);
		if (position != NULL) {
			char *end;
			pos.lat = strtod(position, &end);
			if (*end != ',' || (pos.lon = strtod(end + 1, &end), *end != '\0') || !(pos.lat >= -90 && pos.lat <= 90) ||
			    !(pos.lon >= -180 && pos.lon <= 180)) {
				fprintf(stderr, "%s: --position \"%s\": want LAT,LON in degrees (52.52,13.405)\n", prog, position);
				rc = 2;
				goto out;
			}
			pos.has_fix = true;
		}
		if (nzones > 0) {
			pos.ntags = 0;
			for (size_t i = 0; i < nzones; i++) {
				if (am_tag_check("--zone", zones[i], strlen(zones[i])) != 0) {
					fprintf(stderr, "%s: %s\n", prog, am_error_detail());
					rc = 2;
					goto out;
				}
				snprintf(pos.tags[pos.ntags++], AM_TAG_MAX + 1, "%s", zones[i]);
			}
		}
		if (am_queue_set_position(n.q, &pos) != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			goto out;
		}
	}
	if (ngroups > 0) {
		char g[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
		for (size_t i = 0; i < ngroups; i++)
			snprintf(g[i], sizeof(g[i]), "%s", groups[i]);
		if (am_queue_set_groups(n.q, g, ngroups) != 0) {
			fprintf(stderr, "%s: --group: %s\n", prog, am_error_detail());
			rc = 2;
			goto out;
		}
	}
	snprintf(n.info.name, sizeof(n.info.name), "%s", name ? name : "");
	if (name == NULL)
		snprintf(n.info.name, sizeof(n.info.name), "%s-%.16s", gateway ? "gateway" : "node", n.node_id);
	snprintf(n.info.role, sizeof(n.info.role), "%s", gateway ? "gateway" : "node");
	snprintf(n.info.listen, sizeof(n.info.listen), "%s", n.listen ? n.listen : "");
	(void) am_queue_get_position(n.q, &n.info.pos);
	{
		size_t ng = 0;
		if (am_queue_get_groups(n.q, n.info.groups, &ng) == 0)
			n.info.ngroups = (uint8_t) ng;
	}
	{
		uint64_t made = 0;
		if (am_owed_recover(n.q, n.me, am_now_ms(), n.hub, &made) != 0)
			am_daemon_say("receipts owed from before a crash: %s", am_error_detail());
		else if (made > 0)
			am_daemon_say("made %llu receipts owed from before a crash", (unsigned long long) made);
	}
	/* the guide's monitoring lines (curl .../health, /v1/mesh_scan,
	 * /v1/metrics, /metrics) work as written in development: a daemon
	 * with --dev-token whose API only this machine can reach. Elsewhere
	 * they need a token, unless --metrics-public says otherwise. */
	if (env_true("METRICS_PUBLIC"))
		n.monitor_public = true;
	if (dev_token && (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0))
		n.monitor_public = true;
	if (n.monitor_public)
		am_daemon_say("metrics and mesh_scan are readable without a token (%s)",
		    dev_token ? "development token on loopback" : "--metrics-public");
	if (dev_token) {
		uint8_t t[16];
		char tpath[4096];
		randombytes_buf(t, sizeof(t));
		sodium_bin2hex(n.api.token, sizeof(n.api.token), t, sizeof(t));
		printf("DEVELOPMENT TOKEN (full rights): %s\n", n.api.token);
		printf("WARNING: --dev-token gives anyone holding this token every right on this daemon's API. "
		       "For development only; in the field issue capability tokens (agent-mesh token issue).\n");
		/* for local scripts: readable by this user only */
		snprintf(tpath, sizeof(tpath), "%s/dev-token", dir);
		if (am_file_write_atomic(tpath, n.api.token, strlen(n.api.token), 0600, true) != 0)
			am_daemon_say("could not write %s: %s", tpath, am_error_detail());
		(void) am_audit_log(n.audit, "dev_token_enabled", "dev-token", NULL, NULL);
	}
	(void) am_audit_log(n.audit, "daemon_start", n.info.name[0] ? n.info.name : n.node_id, NULL,
	    json_pack("{s:s, s:s, s:I}", "role", gateway ? "gateway" : "node", "trust_mode", trust_mode,
	        "trusted_gateways", (json_int_t) n.api.ntrusted));
	/* a tool that exits without reading its input must not take the
	 * daemon with it: writes to a closed pipe fail with EPIPE instead */
	signal(SIGPIPE, SIG_IGN);
	/* signals are taken by sigwait below, never by the worker threads */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	n.api.name = n.info.name;
	{
		am_runner_config rcfg = {n.q, n.me, n.hub, n.audit, n.tools, n.jobs, n.api.trusted, n.api.ntrusted,
		    n.info.name, dir, n.pki, n.info.cert};
		if (am_runner_start(&n.runner, &rcfg) != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			goto out;
		}
		if (am_toolbox_count(n.tools) > 0)
			am_daemon_say("%zu tools from %s/tools", am_toolbox_count(n.tools), dir);
	}
	{
		/* links on the HTTP port (ws://HOST:PORT/PATH): the HTTP server
		 * relays their upgrades to a loopback link listener */
		const char *path = NULL;
		if (n.listen != NULL && strncmp(n.listen, "ws://", 5) == 0) {
			const char *slash = strchr(n.listen + 5, '/'), *colon;
			size_t hl = slash ? (size_t) (slash - n.listen) : strlen(n.listen);
			char hp[160];
			snprintf(hp, sizeof(hp), "%.*s", (int) hl, n.listen);
			if ((colon = strrchr(hp, ':')) != NULL && atoi(colon + 1) == port) {
				path = slash ? slash : "/";
				snprintf(n.link_inner, sizeof(n.link_inner), "ws://127.0.0.1:0%s", path);
			}
		}
		if (am_daemon_http_start(&n, host, port, path) != 0)
			goto out;
	}
	if (n.mcp_port > 0 && am_mcp_start(&n.mcp, &n.api, host, n.mcp_port) != 0) {
		fprintf(stderr, "%s: MCP on port %d: %s\n", prog, n.mcp_port, am_error_detail());
		goto out;
	}
	if (n.mcp != NULL)
		am_daemon_say("MCP server on http://%s:%d/mcp", host, n.mcp_port);
	am_daemon_say("%s %s \"%s\": http://%s:%d/health (trust store %s)", prog, n.node_id, n.info.name, host, port,
	    am_trust_path(n.trust));
	if (n.listen != NULL)
		serving = pthread_create(&ts, NULL, am_daemon_serve, &n) == 0;
	watching = pthread_create(&tw, NULL, watch, &n) == 0;
	for (size_t i = 0; i < npeers; i++)
		if (am_daemon_add_dialer(&n, peers[i], "static", NULL) != 0)
			fprintf(stderr, "%s: --peer %s: %s\n", prog, peers[i], am_error_detail());
	if (!no_discovery) {
		const char *ip = getenv("MESH_MULTICAST_IP"), *mp = getenv("MESH_MULTICAST_PORT");
		int mport = 9999;
		if (mp != NULL && parse_port(prog, "MESH_MULTICAST_PORT", mp, &mport) != 0)
			goto stop;
		am_discovery_options d = {ip ? ip : "239.255.42.99", (uint16_t) mport, getenv("MESH_MULTICAST_IF"), n.me,
		    n.netkey, n.info.name, listen_port(n.listen), n.beacon_ms};
		/* discovery is a convenience: without a multicast route the
		 * daemon still runs on its static peers */
		if (am_discovery_start(&n.disc, &d, am_daemon_discovered, &n) != 0)
			am_daemon_say("discovery off: %s", am_error_detail());
		else
			am_daemon_say("discovery on %s:%d%s", d.group_ip, mport, d.link_port ? "" : " (listening only: no tcp --listen)");
	}
	{
		int sig = 0;
		sigwait(&sigs, &sig);
		am_daemon_say("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
	}
stop:
	n.stop = 1;
	am_runner_stop(n.runner); /* a tool running now is reported interrupted at the next start */
	n.runner = NULL;
	am_discovery_stop(n.disc);
	n.disc = NULL;
	am_hub_stop(n.hub); /* closes every open link */
	if (serving)
		pthread_join(ts, NULL);
	if (watching)
		pthread_join(tw, NULL);
	for (size_t i = 0; i < n.ndialers; i++) {
		pthread_join(n.dialers[i]->th, NULL);
		free(n.dialers[i]);
	}
	{
		/* inbound sessions end once their streams are closed */
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 10;
		pthread_mutex_lock(&n.mu);
		while (n.sessions > 0)
			if (pthread_cond_timedwait(&n.idle, &n.mu, &dl) != 0)
				break;
		pthread_mutex_unlock(&n.mu);
	}
	rc = 0;
out:
	am_runner_stop(n.runner);
	/* waiting requests are answered before their servers stop */
	am_jobs_close(n.jobs);
	n.jobs = NULL;
	am_mcp_stop(n.mcp);
	n.mcp = NULL;
	am_http_server_free(n.http);
	n.http = NULL;
	/* a session that did not end in time still uses these: the process
	 * exits anyway */
	if (n.sessions == 0) {
		am_queue_close(n.q);
		am_hub_free(n.hub);
		am_trust_close(n.trust);
		am_audit_limiter_free(n.api.refusals);
		am_audit_close(n.audit);
		am_provision_clear(&prov);
		am_toolbox_free(n.tools);
		am_identity_free(n.me);
	}
	sodium_memzero(n.netkey, sizeof(n.netkey));
	return rc;
}
