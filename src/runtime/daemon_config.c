/*
 * daemon_config.c — a daemon's configuration, in the order it counts:
 * flags, then the environment, then a .env file (--env-file, default
 * ./.env), then defaults; and --check-config, which reads what a start
 * would read and writes nothing. Everything here runs before any file of
 * the data folder is opened, so a bad flag costs nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- configuration ---- */

static void
usage(FILE *f, bool gateway)
{
	fprintf(f,
	    "usage: %s [--data DIR] [--network-key HEX|@FILE] [options]\n"
	    "  --data DIR            the data folder (MESH_DATA_DIR; default $STATE_DIRECTORY, else\n"
	    "                        ./agent-mesh-data/ROLE, made with its keys at the first start)\n"
	    "  --network-key K       the deployment's network key (MESH_NETWORK_KEY; default DIR/network.key)\n"
	    "  --listen URL          accept links (MESH_LISTEN; default ws://HOST:PORT/mesh on the HTTP port;\n"
	    "                        tcp://0.0.0.0:7400, ipc://..., or off)\n"
	    "  --peer URL            keep a link to this peer (repeatable)%s\n"
	    "  --name NAME           how peers know this node (NODE_NAME; default %s-<key prefix>)\n"
	    "  --position LAT,LON    this node's position; --zone TAG, --group NAME (repeatable)\n"
	    "  --host H --port N     HTTP API (%s, default 127.0.0.1:%s)\n"
	    "  --dev-token           print a bearer token the API requires (DEV_TOKEN_ENABLED=true); on loopback\n"
	    "                        it also opens /metrics and /v1/mesh_scan to this machine without a token\n"
	    "  --metrics-public      /metrics, /v1/metrics and /v1/mesh_scan need no token (METRICS_PUBLIC=true)\n"
	    "  --trust-mode tofu|pki pin each peer name's first key, or require a gateway's certificate (TRUST_MODE)\n"
	    "  --provision FILE      a provisioning bundle (agent-mesh provision): key, certificate, gateway, network key\n"
	    "%s"
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
	    gateway ? "gateway" : "node", gateway ? "GATEWAY_HOST/GATEWAY_PORT" : "NODE_PORT", gateway ? "8787" : "8000",
	    gateway ? "  --mcp-port 8790       serve the Model Context Protocol (streamable HTTP) on this port (MCP_PORT)\n"
	              "  --shared-state redis://[user:pass@]host:port[/db]\n"
	              "                        the state a gateway pair shares, in Redis (SHARED_STATE)\n"
	            : "  --join GW:PORT/CODE   join a gateway on another machine with the code agent-mesh pair printed\n");
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
listen_port(const char *url, bool *ws)
{
	const char *colon, *host;
	long v;

	*ws = false;
	if (url != NULL && strncmp(url, "ws://", 5) == 0) {
		/* ws://HOST:PORT/mesh, on an address others can reach: beacons
		 * announce it ("AMB2"); on loopback nobody else could dial it */
		host = url + 5;
		const char *slash = strchr(host, '/');
		if (slash == NULL || strcmp(slash, "/mesh") != 0 || strncmp(host, "127.", 4) == 0 ||
		    strncmp(host, "localhost:", 10) == 0 || strncmp(host, "[::1]:", 6) == 0)
			return 0;
		for (colon = slash; colon > host && *colon != ':'; colon--)
			;
		v = *colon == ':' ? strtol(colon + 1, NULL, 10) : 0;
		*ws = v > 0 && v < 65536;
		return *ws ? (uint16_t) v : 0;
	}
	if (url == NULL || strncmp(url, "tcp://", 6) != 0 || (colon = strrchr(url, ':')) == NULL)
		return 0;
	v = strtol(colon + 1, NULL, 10);
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

/* a repeatable flag's value into list (at most max of them) */
static int
add_value(const char *prog, const char *flag, const char **list, size_t *n, size_t max, const char *v)
{
	if (*n == max) {
		fprintf(stderr, "%s: at most %zu %s\n", prog, max, flag);
		return -1;
	}
	list[(*n)++] = v;
	return 0;
}

static int
parse_duration(const char *prog, const char *flag, const char *v, uint64_t lo, uint64_t hi, const char *want,
    uint64_t *out)
{
	if (am_duration_parse(out, v) != 0 || *out < lo || *out > hi) {
		fprintf(stderr, "%s: %s %s: %s\n", prog, flag, v, want);
		return -1;
	}
	return 0;
}

/* The flags; DAEMON_GO to go on, else the exit status (--help, --version
 * and bad flags end here). */
static int
parse_flags(struct node *n, struct daemon_config *c, int argc, char **argv)
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
	    {"mcp-port", required_argument, NULL, 'M'}, {"join", required_argument, NULL, 'J'},
	    {"shared-state", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'v'}, {"check-config", no_argument, NULL, 'C'}, {0, 0, 0, 0}};
	const char *prog = c->prog;
	uint64_t ms = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "d:k:l:p:g:H:P:e:ti:T:n:x:z:G:Db:E:L:K:V:M:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': c->dir = optarg; break;
		case 'k': c->key = optarg; break;
		case 'l': n->listen = optarg; break;
		case 'p':
		case 'g':
			if (add_value(prog, "--peer", c->peers, &c->npeers, MAX_DIALERS, optarg) != 0)
				return 2;
			break;
		case 'H': c->host = optarg; break;
		case 'P':
			if (parse_port(prog, "--port", optarg, &c->port) != 0)
				return 2;
			break;
		case 'e':
			if (parse_duration(prog, "--sync-every", optarg, 1000, UINT64_MAX,
			        "a duration of at least 1s (30s, 5m, 1h)", &n->resync_ms) != 0)
				return 2;
			break;
		case 't': c->dev_token = true; break;
		case 'm': n->monitor_public = true; break;
		case 'C': c->check_config = true; break;
		case 'i': c->identity = optarg; break;
		case 'T': c->trust_mode = optarg; break;
		case 'n': c->name = optarg; break;
		case 'x': c->position = optarg; break;
		case 'z':
			if (add_value(prog, "--zone", c->zones, &c->nzones, AM_GEO_MAX_TAGS, optarg) != 0)
				return 2;
			break;
		case 'G':
			if (add_value(prog, "--group", c->groups, &c->ngroups, AM_QUEUE_MAX_GROUPS, optarg) != 0)
				return 2;
			break;
		case 'D': c->no_discovery = true; break;
		case 'b':
			if (parse_duration(prog, "--beacon-every", optarg, 100, 3600000, "a duration from 100ms to 1h", &ms) != 0)
				return 2;
			n->beacon_ms = (int) ms;
			break;
		case 'E': c->env_file = optarg; break;
		case 'V': c->provision = optarg; break;
		case 'J':
			if (c->gateway) {
				fprintf(stderr, "%s: --join: a node joins a gateway (agent-mesh-node --join %s)\n", prog, optarg);
				return 2;
			}
			{
				/* a typo is told before anything is made */
				char url[160], host[96];
				uint8_t code[AM_PAIR_CODE_BYTES];
				if (am_pair_join_parse(optarg, url, host, code) != 0) {
					fprintf(stderr, "%s: %s\n", prog, am_error_detail());
					return 2;
				}
				sodium_memzero(code, sizeof(code));
			}
			c->join = optarg;
			break;
		case 'S':
			if (!c->gateway) {
				fprintf(stderr, "%s: --shared-state: the state a gateway pair shares is the gateways' "
				                "(agent-mesh-gateway --shared-state %s)\n", prog, optarg);
				return 2;
			}
			c->shared_state = optarg;
			break;
		case 'M':
			if (!c->gateway) {
				/* the node runs tools; calls, jobs and MCP are the gateway's */
				fprintf(stderr, "%s: --mcp-port: MCP is served by the gateway (agent-mesh-gateway --mcp-port %s)\n",
				    prog, optarg);
				return 2;
			}
			if (parse_port(prog, "--mcp-port", optarg, &n->mcp_port) != 0)
				return 2;
			break;
		case 'K':
			/* slot 0 is kept for the gateway's own key (am_daemon_open) */
			if (c->ntrust == 7) {
				fprintf(stderr, "%s: at most 7 --trust-key\n", prog);
				return 2;
			}
			if (am_node_id_parse(n->api.trusted + (1 + c->ntrust) * AM_PK_BYTES, optarg) != 0) {
				fprintf(stderr, "%s: --trust-key %s: a gateway's public key (64 hex; agent-mesh keygen prints it)\n",
				    prog, optarg);
				return 2;
			}
			c->ntrust++;
			break;
		case 'L':
			if (parse_duration(prog, "--link-timeout", optarg, 1000, 3600000, "a duration from 1s to 1h", &ms) != 0)
				return 2;
			n->link_timeout_ms = (int) ms;
			break;
		case 'h': usage(stdout, c->gateway); return 0;
		case 'v':
			printf("%s " AM_VERSION " (envelope v%d, store v%d)\n", prog, AM_ENVELOPE_VERSION, AM_QUEUE_VERSION);
			return 0;
		default: usage(stderr, c->gateway); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
		return 2;
	}
	return DAEMON_GO;
}

/* What the provisioning bundle gives (the network key, the name, the
 * gateway to trust, the certificate); flags still win. */
int
am_daemon_apply_provision(struct node *n, struct daemon_config *c)
{
	if (am_provision_load(&c->prov, c->provision) != 0) {
		fprintf(stderr, "%s: --provision %s\n", c->prog, am_error_detail());
		return 2;
	}
	if (c->key == NULL)
		memcpy(n->netkey, c->prov.netkey, 32);
	if (c->name == NULL)
		c->name = c->prov.name;
	if (c->ntrust == 7) {
		fprintf(stderr, "%s: at most 7 --trust-key with --provision\n", c->prog);
		return 2;
	}
	memcpy(n->api.trusted + (1 + c->ntrust) * AM_PK_BYTES, c->prov.gateway_pk, AM_PK_BYTES);
	c->ntrust++;
	snprintf(n->info.cert, sizeof(n->info.cert), "%s", c->prov.cert);
	return DAEMON_GO;
}

/* the link port's limits before a handshake (docs/OPERATIONS.md) */
static int
link_limits(struct node *n, const char *prog)
{
	long hs = AM_LINK_HANDSHAKE_MS / 1000, pmax = PREAUTH_MAX, pper = PREAUTH_PER_ADDR;

	if (am_env_long("AM_LINK_HANDSHAKE_TIMEOUT", 1, 300, &hs) != 0 ||
	    am_env_long("AM_LINK_PREAUTH_MAX", 1, PREAUTH_CAP, &pmax) != 0 ||
	    am_env_long("AM_LINK_PREAUTH_PER_ADDRESS", 1, PREAUTH_CAP, &pper) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 2;
	}
	n->handshake_ms = (int) hs * 1000;
	n->preauth_max = (int) pmax;
	n->preauth_per_addr = (int) (pper < pmax ? pper : pmax);
	return DAEMON_GO;
}

/* What the flags left open, from the environment (with .env) or the
 * defaults. */
static int
apply_environment(struct node *n, struct daemon_config *c)
{
	const char *prog = c->prog, *port_var = c->gateway ? "GATEWAY_PORT" : "NODE_PORT";
	int rc;

	if (am_env_file_load(c->env_file ? c->env_file : ".env", c->env_file != NULL) != 0) {
		fprintf(stderr, "%s: %s\n", prog, am_error_detail());
		return 2;
	}
	if (!c->dev_token)
		c->dev_token = env_true("DEV_TOKEN_ENABLED");
	if (c->host == NULL)
		c->host = c->gateway && getenv("GATEWAY_HOST") ? getenv("GATEWAY_HOST") : "127.0.0.1";
	if (c->port == 0) {
		c->port = c->gateway ? 8787 : 8000;
		if (getenv(port_var) != NULL && parse_port(prog, port_var, getenv(port_var), &c->port) != 0)
			return 2;
	}
	if (am_core_init() != 0) {
		fprintf(stderr, "%s: libsodium did not initialise\n", prog);
		return 1;
	}
	if (c->provision != NULL && (rc = am_daemon_apply_provision(n, c)) != DAEMON_GO)
		return rc;
	if (c->trust_mode == NULL && getenv("TRUST_MODE") != NULL)
		c->trust_mode = getenv("TRUST_MODE");
	if (c->trust_mode == NULL) {
		c->trust_mode = c->provision ? "pki" : "tofu";
		c->trust_mode_default = true;
	}
	if (strcmp(c->trust_mode, "tofu") != 0 && strcmp(c->trust_mode, "pki") != 0) {
		fprintf(stderr, "%s: trust mode \"%s\": tofu or pki\n", prog, c->trust_mode);
		return 2;
	}
	n->pki = strcmp(c->trust_mode, "pki") == 0;
	if (c->key == NULL)
		c->key = getenv("MESH_NETWORK_KEY");
	if (c->dir == NULL && getenv("MESH_DATA_DIR") != NULL && getenv("MESH_DATA_DIR")[0])
		c->dir = getenv("MESH_DATA_DIR");
	/* a node leaves SHARED_STATE and MCP_PORT to the gateway (one .env may serve both) */
	if (c->gateway && c->shared_state == NULL && getenv("SHARED_STATE") != NULL && getenv("SHARED_STATE")[0])
		c->shared_state = getenv("SHARED_STATE");
	if (c->shared_state != NULL) {
		am_shared_url u;
		int bad = am_shared_url_parse(&u, c->shared_state);
		sodium_memzero(u.pass, sizeof(u.pass));
		if (bad != 0) {
			fprintf(stderr, "%s: %s\n", prog, am_error_detail());
			return 2;
		}
	}
	if (c->gateway && n->mcp_port == 0 && getenv("MCP_PORT") != NULL && parse_port(prog, "MCP_PORT", getenv("MCP_PORT"), &n->mcp_port) != 0)
		return 2;
	if (n->listen == NULL)
		n->listen = getenv("MESH_LISTEN");
	/* links on the daemon's own HTTP port unless told otherwise, so the
	 * guide's firewall rules (8787, 8000-8010) are complete; "off": none */
	if (n->listen == NULL || n->listen[0] == '\0') {
		bool v6 = strchr(c->host, ':') != NULL; /* ::1 is [::1] in a URL */
		snprintf(c->listen_buf, sizeof(c->listen_buf), "ws://%s%s%s:%d/mesh", v6 ? "[" : "", c->host, v6 ? "]" : "",
		    c->port);
		n->listen = c->listen_buf;
	} else if (strcmp(n->listen, "off") == 0) {
		n->listen = NULL;
	}
	n->link_port = listen_port(n->listen, &n->link_ws);
	if (c->name == NULL)
		c->name = getenv("NODE_NAME");
	c->multicast_port = 9999;
	if (getenv("MESH_MULTICAST_PORT") != NULL &&
	    parse_port(prog, "MESH_MULTICAST_PORT", getenv("MESH_MULTICAST_PORT"), &c->multicast_port) != 0)
		return 2;
	if (env_false("MESH_DISCOVERY"))
		c->no_discovery = true;
	if (env_true("METRICS_PUBLIC"))
		n->monitor_public = true;
	n->gc_every_ms = 3600 * 1000;
	if (getenv("MESH_GC_EVERY") != NULL && getenv("MESH_GC_EVERY")[0]) {
		if (strcmp(getenv("MESH_GC_EVERY"), "off") == 0)
			n->gc_every_ms = 0;
		else if (parse_duration(prog, "MESH_GC_EVERY", getenv("MESH_GC_EVERY"), 1000, 7 * 24 * 3600 * 1000ull,
		             "a duration from 1s to 7d, or off", &n->gc_every_ms) != 0)
			return 2;
	}
	return link_limits(n, prog);
}

int
am_daemon_configure(struct node *n, struct daemon_config *c, const am_role *role, int argc, char **argv)
{
	bool gateway = role->gateway;
	int rc;

	n->role = role;
	c->gateway = n->gateway = gateway;
	c->prog = n->prog = gateway ? "agent-mesh-gateway" : "agent-mesh-node";
	n->resync_ms = 5 * 60 * 1000;
	n->link_timeout_ms = 30000;
	n->beacon_ms = 5000;
	if ((rc = parse_flags(n, c, argc, argv)) != DAEMON_GO || (rc = apply_environment(n, c)) != DAEMON_GO)
		return rc;
	if (c->dir == NULL)
		am_daemon_default_dir(c);
	if (c->name != NULL && am_tag_check("--name", c->name, strlen(c->name)) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 2;
	}
	if (c->key != NULL && am_netkey_parse(n->netkey, c->key) != 0) {
		fprintf(stderr, "%s: --network-key: %s\n", c->prog, am_error_detail());
		return 2;
	}
	return DAEMON_GO;
}

/* what a start would read, read and reported; nothing written, nothing
 * bound (flags, .env and the limits were checked by the configuration) */
int
am_daemon_check_config(struct node *n, struct daemon_config *c)
{
	am_identity *id = NULL;
	char path[4096], said[256] = "";
	int bad = 0;

	snprintf(path, sizeof(path), "%s/identity.pem", c->dir);
	struct stat st;
	bool first = c->auto_dir && c->identity == NULL && c->provision == NULL && stat(path, &st) != 0;
	if (first) {
		snprintf(said, sizeof(said), ", first start (the key%s made then)", c->key == NULL ? " and the network key" : "");
	} else if (c->provision == NULL && am_identity_load_pem(&id, c->identity ? c->identity : path) != 0) {
		fprintf(stderr, "%s: %s (make the folder with: agent-mesh init --store %s)\n", c->prog, am_error_detail(),
		    c->dir);
		bad = 1;
	}
	if (am_audit_syslog_check(getenv("AUDIT_SYSLOG")) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		bad = 1;
	}
	/* each feature checks what it will read (the node: its tool files) */
	for (size_t i = 0; i < n->role->nfeatures; i++) {
		const am_feature *f = n->role->features[i];
		char one[128] = "";
		size_t used = strlen(said);
		if (f->check == NULL)
			continue;
		if (f->check(c->dir, one, sizeof(one)) != 0) {
			fprintf(stderr, "%s: %s: %s\n", c->prog, f->name, am_error_detail());
			bad = 1;
		} else if (one[0] && used < sizeof(said))
			snprintf(said + used, sizeof(said) - used, ", %s", one);
	}
	if (!bad)
		printf("%s: configuration OK: data %s, HTTP %s:%d, trust %s%s%s%s\n", c->prog, c->dir, c->host, c->port,
		    c->trust_mode, said, n->listen ? ", links on " : "", n->listen ? n->listen : "");
	am_identity_free(id);
	return bad ? 2 : 0;
}
