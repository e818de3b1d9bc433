/*
 * pair_gateway.c — the gateway's side of pairing a node on another
 * machine (docs/PROTOCOL.md §20): POST /v1/pair makes a single-use,
 * expiring code (a token with the right "pair": `agent-mesh pair` issues
 * itself one from the gateway's key), POST /v1/pair/claim takes a node's
 * claim and answers the sealed grant.
 *
 * The codes live in memory only (a restart ends them), at most PAIR_CODES
 * at once. A claim is unauthenticated: its cost is one keyed hash per
 * live code, its refusals go through the audit limiter.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIR_VALID_MS (15 * 60 * 1000ull)       /* a code's default life */
#define PAIR_VALID_MAX (24 * 3600 * 1000ull)
#define PAIR_CERT_MS (365ull * 24 * 3600 * 1000) /* a PKI grant's certificate */

/* the address a node on another machine types: --host when it is one
 * address, else this machine's first non-loopback IPv4 one */
static void
reachable_address(char *out, size_t cap, const char *host, int port)
{
	struct ifaddrs *ifs = NULL;
	char a[INET_ADDRSTRLEN] = "";

	if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 && host[0] != '\0') {
		bool v6 = strchr(host, ':') != NULL;
		snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
		return;
	}
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i != NULL && a[0] == '\0'; i = i->ifa_next)
			if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET) {
				const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) i->ifa_addr;
				if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
					inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
			}
		freeifaddrs(ifs);
	}
	snprintf(out, cap, "%s:%d", a[0] ? a : "THIS-GATEWAY", port);
}

/* the body's optional {name, valid, roles}, into code; false once answered */
static bool
read_request(am_http_ex *ex, struct pair_code *code)
{
	size_t blen = 0;
	char why[200];
	json_t *j = NULL, *v;
	const char *s;
	bool ok = false;

	code->expires_ms = am_now_ms() + PAIR_VALID_MS;
	if (am_http_body(ex, &blen) == NULL || blen == 0)
		return true;
	if ((j = am_http_json_body(ex, why, sizeof(why))) == NULL || !json_is_object(j)) {
		am_http_reply_error(ex, 400, j == NULL ? why : "the body must be a JSON object {name, valid, roles}");
		goto out;
	}
	if ((v = json_object_get(j, "name")) != NULL) {
		if ((s = json_string_value(v)) == NULL || am_tag_check("\"name\"", s, strlen(s)) != 0) {
			am_http_reply_error(ex, 400, s == NULL ? "\"name\" must be a string" : am_error_detail());
			goto out;
		}
		snprintf(code->name, sizeof(code->name), "%s", s);
	}
	if ((v = json_object_get(j, "valid")) != NULL) {
		uint64_t ms = 0;
		if ((s = json_string_value(v)) == NULL || am_duration_parse(&ms, s) != 0 || ms < 1000 || ms > PAIR_VALID_MAX) {
			am_http_reply_error(ex, 400, "\"valid\" must be a duration from 1s to 24h (\"15m\")");
			goto out;
		}
		code->expires_ms = am_now_ms() + ms;
	}
	if ((v = json_object_get(j, "roles")) != NULL) {
		size_t i;
		json_t *r;
		if (!json_is_array(v) || json_array_size(v) > PAIR_ROLES) {
			am_http_reply_error(ex, 400, "\"roles\" must be an array of at most 4 role names");
			goto out;
		}
		json_array_foreach(v, i, r) {
			if ((s = json_string_value(r)) == NULL || am_tag_check("a role", s, strlen(s)) != 0) {
				am_http_reply_error(ex, 400, s == NULL ? "each role is a string" : am_error_detail());
				goto out;
			}
			snprintf(code->roles[code->nroles++], AM_TAG_MAX + 1, "%s", s);
		}
	}
	ok = true;
out:
	json_decref(j);
	return ok;
}

static void
on_pair(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	struct pair_code code = {0};
	char text[AM_PAIR_CODE_TEXT], join[200];
	uint8_t raw[AM_PAIR_CODE_BYTES];
	uint64_t now = am_now_ms();
	size_t slot = PAIR_CODES;

	if (am_api_check(&n->api, ex, "pair") != 0 || !read_request(ex, &code))
		return;
	am_pair_code_new(raw, text);
	am_pair_keys_derive(&code.k, raw);
	sodium_memzero(raw, sizeof(raw));
	code.live = true;
	pthread_mutex_lock(&n->mu);
	for (size_t i = 0; i < PAIR_CODES && slot == PAIR_CODES; i++)
		if (!n->pair[i].live || n->pair[i].expires_ms <= now)
			slot = i;
	if (slot < PAIR_CODES)
		n->pair[slot] = code;
	pthread_mutex_unlock(&n->mu);
	sodium_memzero(&code.k, sizeof(code.k));
	if (slot == PAIR_CODES) {
		sodium_memzero(text, sizeof(text));
		am_http_reply_error(ex, 429, "16 pairing codes are waiting to be used: use one or let them expire");
		return;
	}
	snprintf(join, sizeof(join), "%s/%s", n->pair_addr, text);
	(void) am_audit_log(n->audit, "pair_code", code.name[0] ? code.name : "(the node's own name)", NULL,
	    json_pack("{s:I, s:s}", "expires_ms", (json_int_t) code.expires_ms, "mode", n->pki ? "pki" : "tofu"));
	am_http_reply_json(ex, 201,
	    json_pack("{s:s, s:s, s:s, s:I, s:I}", "code", text, "join", join, "command", "agent-mesh-node --join",
	        "expires_ms", (json_int_t) code.expires_ms, "valid_s", (json_int_t) ((code.expires_ms - now) / 1000)));
	sodium_memzero(text, sizeof(text));
}

/* the live code the proof was made with, taken (no longer live); false: none */
static bool
take_code(struct node *n, const uint8_t pk[AM_PK_BYTES], const uint8_t proof[32], struct pair_code *out)
{
	uint64_t now = am_now_ms();
	uint8_t want[32];
	bool found = false;

	pthread_mutex_lock(&n->mu);
	for (size_t i = 0; i < PAIR_CODES && !found; i++) {
		if (!n->pair[i].live || n->pair[i].expires_ms <= now)
			continue;
		am_pair_proof(want, &n->pair[i].k, pk);
		if (sodium_memcmp(want, proof, 32) == 0) {
			*out = n->pair[i];
			sodium_memzero(&n->pair[i], sizeof(n->pair[i]));
			found = true;
		}
	}
	pthread_mutex_unlock(&n->mu);
	return found;
}

/* the grant's plain text: what a joined node needs (malloc'd) */
static char *
grant_text(struct node *n, const struct pair_code *code, const uint8_t pk[AM_PK_BYTES], const char *name)
{
	char hex[65], gid[AM_NODE_ID_LEN + 1], link[160], *bundle = NULL, *out = NULL;
	const char *roles[PAIR_ROLES];
	json_t *j;

	for (size_t i = 0; i < code->nroles; i++)
		roles[i] = code->roles[i];
	if (n->pki && am_provision_create(&bundle, n->me, name, pk, NULL, n->netkey, roles, code->nroles, am_now_ms(),
	                  PAIR_CERT_MS) != 0)
		return NULL;
	if (!am_daemon_local_link(link, sizeof(link), n->listen))
		link[0] = '\0';
	sodium_bin2hex(hex, sizeof(hex), n->netkey, sizeof(n->netkey));
	am_node_id_format(gid, am_identity_pk(n->me));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "network_key", hex, "gateway_key", gid, "gateway_name", n->info.name,
	    "link", link, "node_name", name);
	if (j != NULL && bundle != NULL)
		json_object_set_new(j, "bundle", json_string(bundle));
	if (j != NULL)
		out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j); /* the key's copy in j is freed unwiped: jansson owns it */
	sodium_memzero(hex, sizeof(hex));
	free(bundle);
	return out;
}

static void
on_claim(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	struct pair_code code = {0};
	uint8_t pk[AM_PK_BYTES], proof[32];
	char claimed[AM_TAG_MAX + 1], id[AM_NODE_ID_LEN + 1], msg[300], *plain = NULL, *answer = NULL;
	const char *name, *addr = am_http_peer_address(ex);
	size_t blen = 0;
	const char *body = am_http_body(ex, &blen);
	bool pinned = false;

	if (body == NULL || am_pair_claim_parse(body, blen, pk, claimed, proof) != 0) {
		am_http_reply_error(ex, 400, body == NULL ? "empty body: send the claim {node, name, proof}" : am_error_detail());
		return;
	}
	if (!take_code(n, pk, proof, &code)) {
		(void) am_audit_refusal(n->api.refusals, "pair_refused", "no live pairing code matches the claim", addr,
		    NULL, am_now_ms());
		am_http_reply_error(ex, 403, "no such pairing code: expired, used or mistyped (agent-mesh pair makes a new one)");
		return;
	}
	name = code.name[0] ? code.name : claimed;
	am_node_id_format(id, pk);
	/* TOFU: the name is pinned to the key now, as a first link would */
	if (!n->pki && am_trust_check(n->trust, name, pk, addr, am_now_ms(), &pinned) != 0) {
		snprintf(msg, sizeof(msg), "%s; the code is used up (agent-mesh trust forget on the gateway, then a new code)",
		    am_error_detail());
		am_http_reply_error(ex, 409, msg);
		goto out;
	}
	if ((plain = grant_text(n, &code, pk, name)) == NULL || am_pair_seal(&answer, &code.k, pk, plain, strlen(plain)) != 0) {
		am_http_reply_error(ex, 500, am_error_detail());
		goto out;
	}
	am_say("paired \"%s\" (key %.16s…) from %s", name, id, addr);
	(void) am_audit_log(n->audit, "pair", name, NULL,
	    json_pack("{s:s, s:s, s:s}", "key", id, "address", addr, "mode", n->pki ? "pki" : "tofu"));
	am_http_reply(ex, 200, "application/json", answer, NULL);
out:
	if (plain != NULL) {
		sodium_memzero(plain, strlen(plain));
		free(plain);
	}
	free(answer);
	sodium_memzero(&code, sizeof(code));
}

int
am_daemon_pair_register(struct node *n, const struct daemon_config *c)
{
	int rc;

	if (!c->gateway)
		return 0;
	reachable_address(n->pair_addr, sizeof(n->pair_addr), c->host, c->port);
	if ((rc = am_http_route(n->http, "POST", "/v1/pair", false, 4096, am_api_pre_auth, on_pair, n)) != 0)
		return rc;
	return am_http_route(n->http, "POST", "/v1/pair/claim", false, 4096, NULL, on_claim, n);
}
