/*
 * cmd_token.c — `token issue|attenuate|inspect|revoke` and `audit verify`:
 * capability tokens made with a gateway key, narrowed by any holder
 * offline, read back, and revoked by an envelope that travels like any
 * other; and the check of an audit log's chain.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_runtime.h"

#include <getopt.h>
#include <sys/stat.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Role templates when no --roles file is given (docs/OPERATIONS.md). */
static const struct {
	const char *role;
	const char *rights[6];
} builtin_roles[] = {
    {"admin", {"*"}},
    {"operator", {"send:*", "read:*", "call:*", "scan", "metrics"}},
    {"viewer", {"scan", "metrics", "read:messages"}},
    {"node", {"send:*", "read:inbox", "read:messages"}},
};

/* TEXT, @FILE or - : the token text, trimmed (malloc'd); also agent-mesh mcp's */
#define read_token_arg cli_token_arg
char *
cli_token_arg(const char *arg)
{
	char *text = NULL;
	size_t len = 0;

	if (arg[0] == '@' || strcmp(arg, "-") == 0) {
		if (am_file_read(&text, &len, arg[0] == '@' ? arg + 1 : "-", 1 << 16) != 0) {
			cli_fail(AM_EIO, "reading the token");
			return NULL;
		}
	} else if ((text = strdup(arg)) == NULL) {
		return NULL;
	}
	len = strlen(text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	return text;
}

static int
load_key(am_identity **id, const char *path)
{
	if (path == NULL)
		return cli_usage_error("--gateway-key PEM is required (the gateway's identity)");
	if (am_identity_load_pem(id, path) != 0)
		return cli_fail(AM_EPEM, "--gateway-key");
	return 0;
}

/* rights from a role: the roles file's entry, else the built-in one */
static int
role_rights(const char *role, const char *file, const char **out, size_t *n, json_t **keep)
{
	if (file != NULL) {
		json_error_t jerr;
		json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr), *r, *v;
		size_t i;
		if (j == NULL)
			return cli_usage_error("--roles %s: line %d: %s", file, jerr.line, jerr.text);
		if (!json_is_array(r = json_object_get(j, role))) {
			json_decref(j);
			return cli_usage_error("--roles %s has no role \"%s\" (a list of rights)", file, role);
		}
		json_array_foreach(r, i, v) {
			if (!json_is_string(v) || *n == AM_TOKEN_MAX_RIGHTS) {
				json_decref(j);
				return cli_usage_error("--roles %s: role \"%s\" must list at most %d rights as strings", file, role,
				    AM_TOKEN_MAX_RIGHTS);
			}
			out[(*n)++] = json_string_value(v);
		}
		*keep = j;
		return 0;
	}
	for (size_t i = 0; i < sizeof(builtin_roles) / sizeof(builtin_roles[0]); i++)
		if (strcmp(builtin_roles[i].role, role) == 0) {
			for (size_t k = 0; k < 6 && builtin_roles[i].rights[k] && *n < AM_TOKEN_MAX_RIGHTS; k++)
				out[(*n)++] = builtin_roles[i].rights[k];
			return 0;
		}
	return cli_usage_error("unknown role \"%s\" (built in: admin, operator, viewer, node; or give --roles FILE)", role);
}

int
cmd_token_issue(int argc, char **argv)
{
	static const struct option opts[] = {{"gateway-key", required_argument, NULL, 'k'},
	    {"subject", required_argument, NULL, 's'}, {"right", required_argument, NULL, 'r'},
	    {"role", required_argument, NULL, 'R'}, {"roles", required_argument, NULL, 'f'},
	    {"valid", required_argument, NULL, 'v'}, {"output", required_argument, NULL, 'o'},
	    {"data", required_argument, NULL, 'd'}, {0, 0, 0, 0}};
	const char *data = NULL;
	char keybuf[4096], rolesbuf[4096];
	const char *key = NULL, *subject = "bearer", *rights[AM_TOKEN_MAX_RIGHTS], *role = NULL, *roles = NULL,
	           *output = NULL;
	size_t n = 0;
	uint64_t valid = 24ull * 3600 * 1000, now = am_now_ms();
	am_identity *gw = NULL;
	json_t *keep = NULL;
	char *text = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":k:s:r:R:f:v:o:d:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'k': key = optarg; break;
		case 's': subject = optarg; break;
		case 'r':
			if (n == AM_TOKEN_MAX_RIGHTS)
				return cli_usage_error("at most %d --right", AM_TOKEN_MAX_RIGHTS);
			rights[n++] = optarg;
			break;
		case 'R': role = optarg; break;
		case 'f': roles = optarg; break;
		case 'v':
			if (am_duration_parse(&valid, optarg) != 0 || valid == 0 || valid > AM_MAX_LIFETIME_MS - 86400000ull)
				return cli_usage_error("--valid %s: a duration (24h, 30d; at most 3652d)", optarg);
			break;
		case 'o': output = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	/* --data: the gateway's folder gives its key and its roles.json */
	if (data != NULL) {
		struct stat st;
		snprintf(keybuf, sizeof(keybuf), "%s/identity.pem", data);
		snprintf(rolesbuf, sizeof(rolesbuf), "%s/roles.json", data);
		if (key == NULL)
			key = keybuf;
		if (roles == NULL && stat(rolesbuf, &st) == 0)
			roles = rolesbuf;
	}
	if (role != NULL && (rc = role_rights(role, roles, rights, &n, &keep)) != 0)
		return rc;
	if (n == 0)
		return cli_usage_error("give the rights: --right R (repeatable) or --role ROLE");
	if ((rc = load_key(&gw, key)) != 0) {
		json_decref(keep);
		return rc;
	}
	am_token issued = {0};
	rc = am_token_issue(&text, gw, subject, rights, n, now, now + valid, &issued);
	if (rc == 0 && (data != NULL || (getenv("AUDIT_LOG_PATH") && getenv("AUDIT_LOG_PATH")[0]))) {
		/* who got what, by id (never the token): the gateway's folder's log */
		char id[2 * AM_TOKEN_ID_BYTES + 1];
		json_t *r = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(r, json_string(rights[i]));
		am_token_id_hex(id, &issued);
		cli_audit(data ? data : ".", gw, "token_issued", subject,
		    json_pack("{s:s, s:o, s:I, s:s}", "token_id", id, "rights", r, "expires_ms", (json_int_t) (now + valid),
		        "by", "agent-mesh token issue"));
	}
	am_token_clear(&issued);
	am_identity_free(gw);
	json_decref(keep);
	if (rc != 0)
		return cli_fail(rc, "issuing");
	if (output != NULL) {
		size_t len = strlen(text);
		text[len] = '\n';
		rc = am_file_write_atomic(output, text, len + 1, 0600, false);
		text[len] = '\0';
		if (rc != 0) {
			free(text);
			return cli_fail(rc, output);
		}
	} else {
		printf("%s\n", text);
	}
	free(text);
	return 0;
}

int
cmd_token_attenuate(int argc, char **argv)
{
	static const struct option opts[] = {{"token", required_argument, NULL, 't'},
	    {"right", required_argument, NULL, 'r'}, {"valid", required_argument, NULL, 'v'}, {0, 0, 0, 0}};
	const char *tok = NULL, *rights[AM_TOKEN_MAX_RIGHTS];
	size_t n = 0;
	uint64_t valid = 0;
	am_token t;
	char *text, *out = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":t:r:v:", opts, NULL)) != -1) {
		switch (c) {
		case 't': tok = optarg; break;
		case 'r':
			if (n == AM_TOKEN_MAX_RIGHTS)
				return cli_usage_error("at most %d --right", AM_TOKEN_MAX_RIGHTS);
			rights[n++] = optarg;
			break;
		case 'v':
			if (am_duration_parse(&valid, optarg) != 0 || valid == 0 || valid > AM_MAX_LIFETIME_MS - 86400000ull)
				return cli_usage_error("--valid %s: a duration (1h, 2d)", optarg);
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (tok == NULL || n == 0)
		return cli_usage_error("give --token TOKEN|@FILE|- and the narrower rights (--right R, repeatable)");
	if ((text = read_token_arg(tok)) == NULL)
		return 1;
	rc = am_token_parse(&t, text);
	free(text);
	if (rc != 0)
		return cli_fail(rc, "--token");
	rc = am_token_attenuate(&out, &t, rights, n, valid ? am_now_ms() + valid : 0);
	am_token_clear(&t);
	if (rc != 0)
		return cli_fail(rc, "attenuating");
	printf("%s\n", out);
	free(out);
	return 0;
}

int
cmd_token_inspect(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	    {"trust-key", required_argument, NULL, 'k'}, {"action", required_argument, NULL, 'a'}, {0, 0, 0, 0}};
	const char *trust = NULL, *action = NULL;
	bool as_json = false;
	am_token t;
	char *text, id[2 * AM_TOKEN_ID_BYTES + 1], iss[AM_NODE_ID_LEN + 1];
	uint8_t tk[AM_PK_BYTES];
	int c, rc, crc = 0;

	while ((c = getopt_long(argc, argv, ":jk:a:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		case 'k': trust = optarg; break;
		case 'a': action = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("give one TOKEN, @FILE or -");
	if (trust != NULL && am_node_id_parse(tk, trust) != 0)
		return cli_usage_error("--trust-key must be the gateway's public key (64 hex)");
	if ((text = read_token_arg(argv[optind])) == NULL)
		return 1;
	/* a call grant (read from a tool call) is inspected the same way */
	rc = strncmp(text, "amg1.", 5) == 0 ? am_grant_parse(&t, text) : am_token_parse(&t, text);
	free(text);
	if (rc != 0)
		return cli_fail(rc, "token");
	am_token_id_hex(id, &t);
	am_node_id_format(iss, t.issuer);
	if (trust != NULL)
		crc = am_token_check(&t, tk, 1, am_now_ms(), action);
	json_t *blocks = json_array();
	for (size_t i = 0; i < t.nblocks; i++) {
		json_t *r = json_array();
		char nbf[40], exp[40];
		for (size_t k = 0; k < t.blocks[i].nrights; k++)
			json_array_append_new(r, json_string(t.blocks[i].rights[k]));
		cli_time(nbf, sizeof(nbf), t.blocks[i].nbf_ms);
		cli_time(exp, sizeof(exp), t.blocks[i].exp_ms);
		uint8_t rid[AM_TOKEN_ID_BYTES];
		char ridhex[2 * AM_TOKEN_ID_BYTES + 1];
		am_token_revocation_id(rid, &t, i);
		sodium_bin2hex(ridhex, sizeof(ridhex), rid, sizeof(rid));
		json_array_append_new(blocks, json_pack("{s:o, s:s, s:s, s:s}", "rights", r, "not_before", nbf, "expires", exp,
		    "revocation_id", ridhex));
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "issuer", iss, "subject", t.subject, "blocks", blocks);
	if (t.grant) {
		char signer[AM_NODE_ID_LEN + 1];
		am_node_id_format(signer, t.blocks[t.nblocks - 1].next_pk);
		json_object_set_new(j, "grant_for_calls_signed_by", json_string(signer));
	}
	if (trust != NULL) {
		json_object_set_new(j, "valid", json_boolean(crc == 0));
		if (crc != 0)
			json_object_set_new(j, "problem", json_string(am_error_detail()));
	}
	if (as_json) {
		cli_json_print(j);
	} else {
		printf("%s %s\nissuer  %s\nsubject %s\n", t.grant ? "grant" : "token", id, iss, t.subject);
		if (t.grant)
			printf("valid only inside a call signed by %s\n",
			    json_string_value(json_object_get(j, "grant_for_calls_signed_by")));
		for (size_t i = 0; i < t.nblocks; i++) {
			json_t *b = json_array_get(blocks, i);
			char *r = json_dumps(json_object_get(b, "rights"), JSON_COMPACT);
			printf("block %zu: %s, %s .. %s (revocation id %s)\n", i, r ? r : "?",
			    json_string_value(json_object_get(b, "not_before")), json_string_value(json_object_get(b, "expires")),
			    json_string_value(json_object_get(b, "revocation_id")));
			free(r);
		}
		if (trust != NULL)
			printf("%s\n", crc == 0 ? "valid now" : am_error_detail());
		json_decref(j);
	}
	am_token_clear(&t);
	return crc == 0 ? 0 : 1;
}

int
cmd_token_revoke(int argc, char **argv)
{
	static const struct option opts[] = {{"gateway-key", required_argument, NULL, 'k'},
	    {"store", required_argument, NULL, 's'}, {"token", required_argument, NULL, 't'},
	    {"id", required_argument, NULL, 'i'}, {"node", required_argument, NULL, 'n'}, {0, 0, 0, 0}};
	const char *key = NULL, *dir = NULL;
	uint8_t recs[16 * AM_REVOCATION_RECORD];
	size_t n = 0;
	uint64_t until = 0;
	am_identity *gw = NULL;
	am_envelope env = {0};
	am_queue_result res;
	cli_node node;
	char idhex[AM_ID_HEX_LEN + 1];
	int c, rc;

	memset(recs, 0, sizeof(recs));
	while ((c = getopt_long(argc, argv, ":k:s:t:i:n:", opts, NULL)) != -1) {
		uint8_t *rec = recs + n * AM_REVOCATION_RECORD;
		if ((c == 't' || c == 'i' || c == 'n') && n == 16)
			return cli_usage_error("at most 16 things to revoke at once");
		switch (c) {
		case 'k': key = optarg; break;
		case 's': dir = optarg; break;
		case 't': {
			char *text = read_token_arg(optarg);
			am_token t;
			if (text == NULL)
				return 1;
			rc = am_token_parse(&t, text);
			free(text);
			if (rc != 0)
				return cli_fail(rc, "--token");
			/* this token and what is attenuated from it, not its parent */
			rec[0] = AM_REVOKE_TOKEN;
			am_token_revocation_id(rec + 1, &t, t.nblocks - 1);
			if (t.blocks[0].exp_ms > until)
				until = t.blocks[0].exp_ms;
			am_token_clear(&t);
			n++;
			break;
		}
		case 'i': {
			size_t got = 0;
			if (strlen(optarg) != 2 * AM_TOKEN_ID_BYTES ||
			    sodium_hex2bin(rec + 1, AM_TOKEN_ID_BYTES, optarg, strlen(optarg), NULL, &got, NULL) != 0)
				return cli_usage_error("--id must be a token id or a block's revocation id (32 hex, from token inspect)");
			rec[0] = AM_REVOKE_TOKEN;
			n++;
			break;
		}
		case 'n':
			if (am_node_id_parse(rec + 1, optarg) != 0)
				return cli_usage_error("--node must be a node id (64 hex)");
			rec[0] = AM_REVOKE_KEY;
			n++;
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (dir == NULL || n == 0)
		return cli_usage_error("give --store DIR (where the revocation starts travelling), --gateway-key, and "
		                       "what to revoke: --token T, --id TOKEN_ID or --node NODE_ID");
	if ((rc = load_key(&gw, key)) != 0)
		return rc;
	rc = am_revocation_create(&env, recs, n, until, gw, am_now_ms());
	if (rc == 0 && cli_node_open(&node, dir, 0) == 0) {
		rc = am_queue_put_own(node.q, &env, 1, am_now_ms(), &res);
		if (rc == 0)
			rc = res.rc;
		cli_node_close(&node);
	} else if (rc == 0) {
		rc = AM_ENOSTORE;
	}
	am_id_format(idhex, env.id);
	am_envelope_clear(&env);
	if (rc == 0) {
		json_t *what = json_array();
		for (size_t i = 0; i < n; i++) {
			char hex[65];
			const uint8_t *rec = recs + i * AM_REVOCATION_RECORD;
			sodium_bin2hex(hex, sizeof(hex), rec + 1, rec[0] == AM_REVOKE_TOKEN ? AM_TOKEN_ID_BYTES : AM_PK_BYTES);
			json_array_append_new(what, json_pack("{s:s, s:s}", "kind", rec[0] == AM_REVOKE_TOKEN ? "token" : "key",
			    "id", hex));
		}
		cli_audit(dir, gw, "revocation", idhex, json_pack("{s:o}", "revoked", what));
	}
	am_identity_free(gw);
	if (rc != 0)
		return cli_fail(rc, "storing the revocation");
	printf("revocation %s stored in %s: %zu revoked; it travels with the next link or stick\n", idhex, dir, n);
	return 0;
}

int
cmd_audit_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {"node", required_argument, NULL, 'n'},
	    {"continued", no_argument, NULL, 'c'}, {0, 0, 0, 0}};
	uint8_t pk[AM_PK_BYTES];
	const uint8_t *want = NULL;
	bool as_json = false, continued = false;
	am_audit_report r = {0};
	char last_hash[65] = "";
	uint64_t lines = 0, last_seq = 0, first_seq = 0;
	const char *bad_file = NULL;
	struct timespec t0, t1;
	double secs;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, ":jn:c", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		case 'c': continued = true; break;
		case 'n':
			if (am_node_id_parse(pk, optarg) != 0)
				return cli_usage_error("--node must be a node id (64 hex)");
			want = pk;
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind == argc)
		return cli_usage_error("give the audit log FILE, or rotated files in order, oldest first");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* rotated files: each one's first line continues the one before */
	for (int i = optind; i < argc && rc == 0; i++) {
		rc = am_audit_verify_after(argv[i], want, i == optind ? NULL : last_hash, last_seq, continued, &r);
		lines += r.lines;
		if (i == optind)
			first_seq = r.first_seq;
		if (rc != 0)
			bad_file = argv[i];
		memcpy(last_hash, r.last_hash, sizeof(last_hash));
		last_seq = r.last_seq;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (as_json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:i, s:f}", "ok", rc == 0, "lines", (json_int_t) lines, "first_seq",
		    (json_int_t) first_seq, "last_seq", (json_int_t) last_seq, "files", argc - optind, "seconds", secs);
		if (rc != 0) {
			json_object_set_new(j, "file", json_string(bad_file));
			json_object_set_new(j, "bad_line", json_integer((json_int_t) r.bad_line));
			json_object_set_new(j, "problem", json_string(am_error_detail()));
		}
		cli_json_print(j);
	} else if (rc == 0) {
		printf("ok: %llu lines, chain and signatures intact (%.3f s)", (unsigned long long) lines, secs);
		if (argc - optind > 1)
			printf("; %d files, seq %llu to %llu, every joint continues", argc - optind, (unsigned long long) first_seq,
			    (unsigned long long) last_seq);
		else if (first_seq > 1)
			printf("; seq %llu to %llu (continues an earlier file)", (unsigned long long) first_seq,
			    (unsigned long long) last_seq);
		printf("\n");
	}
	if (rc != 0) {
		if (!as_json)
			fprintf(stderr, "%s: %s: %s\n", cli_prog, bad_file, am_error_detail());
		return 1;
	}
	return 0;
}

/* The deployment's network key where the guide's three lines (keygen,
 * provision, gateway --identity) all find it: network.key beside the
 * gateway's key, made there by whichever of provision and the gateway
 * comes first. Prints; 0 or 1. */
static int
deployment_key(uint8_t key[32], const char *gateway_key)
{
	char path[4200], arg[4210], fp[17];
	struct stat st;

	if (am_netkey_beside(path, sizeof(path), gateway_key) != 0)
		return cli_fail(AM_ETOOBIG, "--gateway-key");
	snprintf(arg, sizeof(arg), "@%s", path);
	if (stat(path, &st) == 0) {
		if (am_netkey_parse(key, arg) != 0)
			return cli_fail(AM_EFIELD, path);
		return 0;
	}
	randombytes_buf(key, 32);
	if (am_netkey_save(path, key, false) != 0)
		return cli_fail(AM_EIO, path);
	am_key_fingerprint(fp, key);
	printf("made the network key %s (fingerprint %s), beside the gateway key: agent-mesh-gateway --identity %s "
	       "reads it from there\n", path, fp, gateway_key);
	return 0;
}

int
cmd_provision(int argc, char **argv)
{
	static const struct option opts[] = {{"gateway-key", required_argument, NULL, 'k'},
	    {"node-id", required_argument, NULL, 'n'}, {"output", required_argument, NULL, 'o'},
	    {"roles", required_argument, NULL, 'r'}, {"valid", required_argument, NULL, 'v'},
	    {"node-pubkey", required_argument, NULL, 'p'}, {"network-key", required_argument, NULL, 'N'},
	    {"force", no_argument, NULL, 'f'}, {0, 0, 0, 0}};
	const char *key = NULL, *name = NULL, *output = NULL, *roles_arg = NULL, *pub = NULL, *net = NULL;
	const char *roles[AM_TOKEN_MAX_RIGHTS];
	char rolebuf[1024], *pem = NULL, *text = NULL;
	size_t nroles = 0;
	uint64_t valid = 365ull * 24 * 3600 * 1000;
	uint8_t netkey[32], node_pk[AM_PK_BYTES];
	am_identity *gw = NULL, *node = NULL;
	bool force = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":k:n:o:r:v:p:N:f", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'n': name = optarg; break;
		case 'o': output = optarg; break;
		case 'r': roles_arg = optarg; break;
		case 'v':
			if (am_duration_parse(&valid, optarg) != 0 || valid == 0 || valid > AM_MAX_LIFETIME_MS - 86400000ull)
				return cli_usage_error("--valid %s: a duration (365d, 90d, 12h)", optarg);
			break;
		case 'p': pub = optarg; break;
		case 'N': net = optarg; break;
		case 'f': force = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (name == NULL || output == NULL || key == NULL)
		return cli_usage_error("give --gateway-key PEM, --node-id NAME and --output FILE (and --network-key HEX|@FILE "
		                       "unless it is network.key beside the gateway key)");
	if (am_tag_check("--node-id", name, strlen(name)) != 0)
		return cli_usage_error("%s", am_error_detail());
	if (net != NULL ? am_netkey_parse(netkey, net) != 0 : deployment_key(netkey, key) != 0)
		return net != NULL ? cli_usage_error("--network-key: %s", am_error_detail()) : 1;
	if (roles_arg != NULL) {
		snprintf(rolebuf, sizeof(rolebuf), "%s", roles_arg);
		for (char *save = NULL, *r = strtok_r(rolebuf, ",", &save); r != NULL; r = strtok_r(NULL, ",", &save)) {
			if (nroles == AM_TOKEN_MAX_RIGHTS - 1)
				return cli_usage_error("at most %d roles", AM_TOKEN_MAX_RIGHTS - 1);
			if (am_tag_check("role", r, strlen(r)) != 0)
				return cli_usage_error("--roles: %s", am_error_detail());
			roles[nroles++] = r;
		}
	}
	if (pub != NULL) {
		if (am_node_id_parse(node_pk, pub) != 0)
			return cli_usage_error("--node-pubkey must be the node's public key (64 hex, from its keygen)");
	} else {
		/* a fresh key for the node, carried in the bundle */
		if ((rc = am_identity_generate(&node)) != 0 || (rc = am_identity_to_pem(&pem, node)) != 0)
			return cli_fail(rc, "making the node's key");
		memcpy(node_pk, am_identity_pk(node), AM_PK_BYTES);
	}
	if ((rc = load_key(&gw, key)) != 0)
		goto out;
	if ((rc = am_provision_create(&text, gw, name, node_pk, pem, netkey, roles, nroles, am_now_ms(), valid)) != 0) {
		rc = cli_fail(rc, "provisioning");
		goto out;
	}
	{
		size_t len = strlen(text);
		char *withnl = malloc(len + 2);
		if (withnl == NULL) {
			rc = cli_fail(AM_ENOMEM, "provisioning");
			goto out;
		}
		memcpy(withnl, text, len);
		withnl[len] = '\n';
		rc = am_file_write_atomic(output, withnl, len + 1, 0600, force);
		sodium_memzero(withnl, len + 1);
		free(withnl);
		if (rc != 0) {
			rc = cli_fail(rc, output);
			goto out;
		}
	}
	{
		char id[AM_NODE_ID_LEN + 1];
		am_node_id_format(id, node_pk);
		printf("provisioned %s (key %s) in %s: give it to the node as agent-mesh-node --provision %s\n", name, id,
		    output, output);
	}
out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	if (pem != NULL)
		am_pem_free(pem);
	am_identity_free(node);
	am_identity_free(gw);
	sodium_memzero(netkey, sizeof(netkey));
	return rc;
}
