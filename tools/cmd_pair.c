/*
 * cmd_pair.c — `agent-mesh pair`: run on the gateway's machine, asks the
 * running gateway for a single-use pairing code and prints the one
 * command the new node's machine runs (docs/OPERATIONS.md "A second
 * machine"). It signs itself a one-minute token with the right "pair"
 * from the gateway's key, so whoever can read the gateway's folder can
 * pair, and nobody else.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_runtime.h"

#include <getopt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* the gateway folder: --data, MESH_DATA_DIR, $STATE_DIRECTORY, or the
 * default one in this folder */
static const char *
gateway_dir(const char *given)
{
	const char *v;
	struct stat st;

	if (given != NULL)
		return given;
	if ((v = getenv("MESH_DATA_DIR")) != NULL && v[0])
		return v;
	if ((v = getenv("STATE_DIRECTORY")) != NULL && v[0])
		return v;
	return stat("agent-mesh-data/gateway", &st) == 0 ? "agent-mesh-data/gateway" : NULL;
}

static int
ask(const char *url, const char *keyfile, const char *body, json_t **answer)
{
	const char *rights[] = {"pair"};
	char key[4200], *token = NULL, auth[2048], *reply = NULL;
	am_identity *gw = NULL;
	size_t rlen = 0;
	unsigned status = 0;
	uint64_t now = am_now_ms();
	int rc;

	snprintf(key, sizeof(key), "%s", keyfile);
	if ((rc = am_identity_load_pem(&gw, key)) != 0)
		return cli_fail(rc, "the gateway's key");
	rc = am_token_issue(&token, gw, "agent-mesh pair", rights, 1, now, now + 60000, NULL);
	am_identity_free(gw);
	if (rc != 0)
		return cli_fail(rc, "a token for the pairing");
	snprintf(auth, sizeof(auth), "Bearer %s", token);
	free(token);
	rc = am_http_fetch("POST", url, "application/json", body, strlen(body), auth, 64u << 10, 10000, &status, &reply,
	    &rlen);
	if (rc != 0)
		return cli_fail(rc, "is the gateway running? asking it");
	*answer = json_loadb(reply, rlen, 0, NULL);
	if (status != 201) {
		const char *e = json_string_value(json_object_get(*answer, "error"));
		fprintf(stderr, "%s: the gateway said %u: %.300s\n", cli_prog, status, e ? e : reply);
		json_decref(*answer);
		free(reply);
		return 1;
	}
	free(reply);
	if (json_string_value(json_object_get(*answer, "join")) == NULL) {
		json_decref(*answer);
		fprintf(stderr, "%s: the gateway's answer holds no code\n", cli_prog);
		return 1;
	}
	return 0;
}

int
cmd_pair(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	    {"gateway", required_argument, NULL, 'g'}, {"name", required_argument, NULL, 'n'},
	    {"valid", required_argument, NULL, 'v'}, {"roles", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'}, {"gateway-key", required_argument, NULL, 'k'}, {0, 0, 0, 0}};
	const char *key = NULL, *dir = NULL, *gateway = NULL, *name = NULL, *valid = NULL, *roles = NULL, *port;
	char url[300], rbuf[512], keybuf[4200];
	bool as_json = false;
	json_t *req, *answer = NULL;
	uint64_t ms;
	char *body;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":d:g:n:v:r:jk:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'k': key = optarg; break;
		case 'g': gateway = optarg; break;
		case 'n':
			if (am_tag_check("--name", optarg, strlen(optarg)) != 0)
				return cli_usage_error("%s", am_error_detail());
			name = optarg;
			break;
		case 'v':
			if (am_duration_parse(&ms, optarg) != 0 || ms < 1000 || ms > 24 * 3600 * 1000ull)
				return cli_usage_error("--valid %s: a duration from 1s to 24h (15m)", optarg);
			valid = optarg;
			break;
		case 'r': roles = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (am_env_file_load(".env", false) != 0)
		return cli_usage_error("%s", am_error_detail());
	/* the gateway's key signs the request: --gateway-key (the guide's
	 * gateway_identity.pem), else its folder's identity.pem */
	if (key == NULL && (dir = gateway_dir(dir)) == NULL)
		return cli_usage_error("give --data GATEWAY_DIR (the gateway's folder) or --gateway-key PEM: the gateway's "
		                       "key signs the request");
	if (key == NULL) {
		snprintf(keybuf, sizeof(keybuf), "%s/identity.pem", dir);
		key = keybuf;
	}
	port = getenv("GATEWAY_PORT");
	snprintf(url, sizeof(url), "%s/v1/pair", gateway ? gateway : "");
	if (gateway == NULL)
		snprintf(url, sizeof(url), "http://127.0.0.1:%s/v1/pair", port && port[0] ? port : "8787");
	req = json_object();
	if (name != NULL)
		json_object_set_new(req, "name", json_string(name));
	if (valid != NULL)
		json_object_set_new(req, "valid", json_string(valid));
	if (roles != NULL) {
		json_t *a = json_array();
		snprintf(rbuf, sizeof(rbuf), "%s", roles);
		for (char *save = NULL, *r = strtok_r(rbuf, ",", &save); r != NULL; r = strtok_r(NULL, ",", &save))
			json_array_append_new(a, json_string(r));
		json_object_set_new(req, "roles", a);
	}
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (body == NULL)
		return cli_fail(AM_ENOMEM, "pair");
	rc = ask(url, key, body, &answer);
	free(body);
	if (rc != 0)
		return rc;
	if (as_json) {
		cli_json_print(answer);
		return 0;
	}
	printf("pairing code %s (single use, valid %llds%s%s)\n", json_string_value(json_object_get(answer, "code")),
	    (long long) json_integer_value(json_object_get(answer, "valid_s")), name ? ", for " : "", name ? name : "");
	printf("on the new node's machine run:\n\n    agent-mesh-node --join %s\n\n",
	    json_string_value(json_object_get(answer, "join")));
	{
		/* what the joined node prints, to compare */
		uint8_t net[32];
		char arg[4210] = "", fp[17];
		char nk[4200];
		if (am_netkey_beside(nk, sizeof(nk), key) == 0)
			snprintf(arg, sizeof(arg), "@%s", nk);
		if (am_netkey_parse(net, arg) == 0) {
			am_key_fingerprint(fp, net);
			sodium_memzero(net, sizeof(net));
			printf("the node then prints the network key's fingerprint: %s\n", fp);
		}
	}
	printf("(if that address is not the one the node reaches this gateway at, type the right one before the '/')\n");
	json_decref(answer);
	return 0;
}
