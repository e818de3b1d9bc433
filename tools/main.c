/*
 * main.c — the agent-mesh CLI: dispatch from a {name, fn, help} table and
 * the helpers every subcommand shares.
 *
 * Exit status: 0 success, 1 the operation failed (one line on stderr
 * naming the problem), 2 the command line was wrong.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_runtime.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *cli_prog = "agent-mesh";
const char *cli_usage = "agent-mesh COMMAND [OPTIONS]";

static const cli_cmd commands[] = {
    {"keygen", cmd_keygen, "make an Ed25519 identity (PKCS#8 PEM, mode 0600), or a network key",
        "agent-mesh keygen --output FILE [--force] [--network-key]"},
    {"init", cmd_init, "create a node folder: identity and store",
        "agent-mesh init --store DIR [--identity PEM] [--position LAT,LON] [--zone TAG]... [--group G]..."},
    {"send", cmd_send, "sign an envelope and put it in the store's outbox",
        "agent-mesh send --store DIR (--to NODE_ID | --group G | --broadcast)\n"
        "                [--geo circle:LAT,LON,R | polygon:LAT,LON;... | geohash:P | zone:TAG[,TAG]] [--zone TAG]\n"
        "                [--ttl 2h] [--priority 0-3] [--type T] [--content-type CT] [--ref ID]\n"
        "                [--workflow W] [--seal] [--no-compress] [--text STRING | --file F | -]"},
    {"inbox", cmd_inbox, "list (and with --ack, consume) what arrived for this node",
        "agent-mesh inbox --store DIR [--ack] [--json] [--limit N]"},
    {"store stats", cmd_store_stats, "counts, sizes and map usage of a store",
        "agent-mesh store stats --store DIR [--json]"},
    {"store gc", cmd_store_gc, "drop expired envelopes and old tombstones",
        "agent-mesh store gc --store DIR [--json]"},
    {"store copy", cmd_store_copy, "carry what the second store lacks from the first (local sync)",
        "agent-mesh store copy --from DIR --to DIR [--json]"},
    {"store set", cmd_store_set, "set this node's position, zone tags and groups",
        "agent-mesh store set --store DIR [--position LAT,LON | --no-position] [--zone TAG]... [--group G]..."},
    {"store get", cmd_store_get, "write one stored envelope's bytes to a file or stdout",
        "agent-mesh store get --store DIR --id ID [--output FILE]"},
    {"envelope inspect", cmd_envelope_inspect, "decode, verify and print an envelope file",
        "agent-mesh envelope inspect [--json] [--identity PEM] FILE|-"},
    {"bundle sync", cmd_bundle_sync, "sync with a USB stick: import what it carries, write what it lacks",
        "agent-mesh bundle sync --store DIR [--max-size 64M] [--import-only] [--json] PATH"},
    {"bundle export", cmd_bundle_export, "write one bundle file (one-way, for data diodes)",
        "agent-mesh bundle export --store DIR --output FILE|- [--since ID|TIME|2h] [--to NODE_ID] [--max-size N] [--json]"},
    {"bundle import", cmd_bundle_import, "import one bundle file (one-way)",
        "agent-mesh bundle import --store DIR [--json] FILE|-"},
    {"bundle inspect", cmd_bundle_inspect, "show what a stick or bundle carries and verify every signature",
        "agent-mesh bundle inspect [--json] PATH"},
    {"link sync", cmd_link_sync, "sync once with another node over tcp/ipc/ws (handshake, reconcile, push)",
        "agent-mesh link sync --store DIR (--listen URL | --dial URL) --network-key HEX|@FILE [--timeout 30s] [--json]"},
    {"provision", cmd_provision, "make a node's PKI provisioning bundle (certificate, keys, network key) with the gateway key",
        "agent-mesh provision --gateway-key PEM --node-id NAME --output bundle.json [--network-key HEX|@FILE]\n"
        "                [--roles R1,R2] [--valid 365d] [--node-pubkey HEX] [--force]\n"
        "  without --network-key: network.key beside the gateway key (made there if missing)"},
    {"pair", cmd_pair, "on the gateway's machine: a single-use code a node on another machine joins with",
        "agent-mesh pair [--data GATEWAY_DIR | --gateway-key PEM] [--gateway http://127.0.0.1:8787] [--name NODE_NAME] [--valid 15m]\n"
        "                [--roles R1,R2] [--json]"},
    {"mcp", cmd_mcp, "a stdio MCP server for local-only clients: forwards to the gateway's MCP endpoint",
        "agent-mesh mcp [--gateway http://127.0.0.1:8790/mcp] [--token TOKEN|@FILE|-] [--max-inflight 16]\n"
        "  the token may also come from AGENT_MESH_TOKEN; JSON-RPC lines on stdin, answers on stdout"},
    {"backup", cmd_backup, "archive what the mesh cannot give back: identity key, trust store, audit log, config",
        "agent-mesh backup --data DIR --output FILE.tar.gz [--include FILE]..."},
    {"restore", cmd_restore, "restore a backup into a node folder (keys kept 0600)",
        "agent-mesh restore --input FILE.tar.gz --data DIR [--force]"},
    {"trust list", cmd_trust_list, "the names and keys this node has pinned (TOFU)",
        "agent-mesh trust list --data DIR [--json]"},
    {"trust forget", cmd_trust_forget, "forget a pinned name (or key), to accept a replaced or renamed device",
        "agent-mesh trust forget --data DIR NAME|KEY"},
    {"token issue", cmd_token_issue, "issue a capability token with a gateway key",
        "agent-mesh token issue (--gateway-key PEM | --data GATEWAY_DIR) (--right R... | --role ROLE [--roles FILE])\n"
        "                [--subject bearer|NODE_ID] [--valid 24h] [--output FILE]"},
    {"token attenuate", cmd_token_attenuate, "derive a narrower token, offline, without the gateway",
        "agent-mesh token attenuate --token TOKEN|@FILE|- --right R... [--valid 1h]"},
    {"token inspect", cmd_token_inspect, "show a token's blocks (and with --trust-key, whether it is valid now)",
        "agent-mesh token inspect [--json] [--trust-key GATEWAY_ID [--action A]] TOKEN|@FILE|-"},
    {"token revoke", cmd_token_revoke, "make a signed revocation (of tokens or node keys) that travels to every node",
        "agent-mesh token revoke --gateway-key PEM --store DIR (--token T | --id TOKEN_ID | --node NODE_ID)..."},
    {"audit verify", cmd_audit_verify, "check an audit log's hash chain and signatures; names the first bad line",
        "agent-mesh audit verify [--json] [--node NODE_ID] [--continued] FILE... (rotated files oldest first)"},
    {"envelope import", cmd_envelope_import, "verify envelope files and add them to a store",
        "agent-mesh envelope import --store DIR [--json] FILE...|-"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static char prog_buf[64];

int
cli_fail(int rc, const char *what)
{
	(void) rc;
	fprintf(stderr, "%s: %s: %s\n", cli_prog, what, am_error_detail());
	return 1;
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* one line: scripts and people both read the first line of stderr */
	fprintf(stderr, " (usage: %s --help)\n", cli_prog);
	return EXIT_USAGE;
}

int
cli_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: %s\n", usage);
			return 1;
		}
	return 0;
}

int
cli_opt_error(int c, char **argv)
{
	extern int optind, optopt;
	const char *arg = argv[optind - 1];

	if (c == ':')
		return cli_usage_error("option %s needs a value", arg);
	if (optopt != 0 && strncmp(arg, "--", 2) != 0)
		return cli_usage_error("unknown option -%c", optopt);
	return cli_usage_error("unknown option %s", arg);
}

int
cli_parse_position(am_position *pos, const char *text)
{
	char buf[96];
	am_geo g;
	int rc;

	snprintf(buf, sizeof(buf), "circle:%s,1", text);
	if ((rc = am_geo_parse(&g, buf)) != 0 || g.kind != AM_GEO_CIRCLE)
		return cli_usage_error("--position %s: %s", text, rc ? am_error_detail() : "expected LAT,LON");
	pos->has_fix = true;
	pos->lat = g.lat;
	pos->lon = g.lon;
	return 0;
}

int
cli_add_tag(char tags[][AM_TAG_MAX + 1], size_t max, size_t *n, const char *what, const char *tag)
{
	if (am_tag_check(what, tag, strlen(tag)) != 0)
		return cli_usage_error("%s", am_error_detail());
	if (*n >= max)
		return cli_usage_error("at most %zu %ss", max, what);
	snprintf(tags[*n], AM_TAG_MAX + 1, "%s", tag);
	(*n)++;
	return 0;
}

void
cli_store_path(char *out, size_t cap, const char *dir)
{
	snprintf(out, cap, "%s/store", dir);
}

void
cli_key_path(char *out, size_t cap, const char *dir)
{
	snprintf(out, cap, "%s/identity.pem", dir);
}

int
cli_node_open(cli_node *n, const char *dir, int need_key)
{
	char path[4096];
	int rc;

	n->q = NULL;
	n->id = NULL;
	cli_store_path(path, sizeof(path), dir);
	if ((rc = am_queue_open(&n->q, path, NULL)) != 0)
		return cli_fail(rc, "opening the store");
	if (need_key) {
		cli_key_path(path, sizeof(path), dir);
		if ((rc = am_identity_load_pem(&n->id, path)) != 0) {
			am_queue_close(n->q);
			n->q = NULL;
			return cli_fail(rc, "loading the node key");
		}
	}
	return 0;
}

void
cli_node_close(cli_node *n)
{
	am_queue_close(n->q);
	am_identity_free(n->id);
	n->q = NULL;
	n->id = NULL;
}

void
cli_json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));

	if (s != NULL) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

void
cli_time(char *out, size_t cap, uint64_t ms)
{
	time_t t = (time_t) (ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned) (ms % 1000));
}

static void
print_help(FILE *f)
{
	fprintf(f, "agent-mesh — offline-first store-and-forward mesh\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'agent-mesh COMMAND --help' shows a command's options.\n");
}

int
main(int argc, char **argv)
{
	if (am_core_init() != 0) {
		fprintf(stderr, "agent-mesh: %s\n", am_error_detail());
		return 1;
	}
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		print_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("agent-mesh " AM_VERSION " (envelope v%d, store v%d)\n", AM_ENVELOPE_VERSION, AM_QUEUE_VERSION);
		return 0;
	}
	/* Two-word commands first ("store stats"), then one-word ones. */
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *sp = strchr(commands[i].name, ' ');
		int words = sp ? 2 : 1;
		if (words == 2 && (argc < 3 || strncmp(argv[1], commands[i].name, (size_t) (sp - commands[i].name)) != 0 ||
		                      argv[1][sp - commands[i].name] != '\0' || strcmp(argv[2], sp + 1) != 0))
			continue;
		if (words == 1 && strcmp(argv[1], commands[i].name) != 0)
			continue;
		snprintf(prog_buf, sizeof(prog_buf), "agent-mesh %s", commands[i].name);
		cli_prog = prog_buf;
		cli_usage = commands[i].usage;
		if (cli_help(argc - words, argv + words, commands[i].usage))
			return 0;
		return commands[i].fn(argc - words, argv + words);
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *sp = strchr(commands[i].name, ' ');
		if (sp && strncmp(argv[1], commands[i].name, (size_t) (sp - commands[i].name)) == 0 &&
		    argv[1][sp - commands[i].name] == '\0') {
			fprintf(stderr, "agent-mesh: '%s' needs a subcommand:\n", argv[1]);
			for (size_t j = 0; j < NCOMMANDS; j++)
				if (strncmp(commands[j].name, commands[i].name, (size_t) (sp - commands[i].name) + 1) == 0)
					fprintf(stderr, "  %-18s %s\n", commands[j].name, commands[j].summary);
			return EXIT_USAGE;
		}
	}
	fprintf(stderr, "agent-mesh: unknown command '%s' (try agent-mesh --help)\n", argv[1]);
	return EXIT_USAGE;
}

void
cli_audit(const char *dir, const am_identity *me, const char *event, const char *subject, json_t *details)
{
	const char *ap = getenv("AUDIT_LOG_PATH");
	char path[4096];
	am_audit *a = NULL;

	snprintf(path, sizeof(path), "%s/audit/audit.log", dir);
	if (am_audit_open(&a, ap && ap[0] ? ap : path, me) != 0) {
		fprintf(stderr, "%s: audit log: %s\n", cli_prog, am_error_detail());
		json_decref(details);
		return;
	}
	if (am_audit_log(a, event, subject, NULL, details) != 0)
		fprintf(stderr, "%s: audit log: %s\n", cli_prog, am_error_detail());
	am_audit_close(a);
}
