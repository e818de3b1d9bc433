/*
 * pair_node.c — a node on another machine joins a site with the code the
 * gateway printed: `agent-mesh-node --join GATEWAY:PORT/CODE`
 * (docs/PROTOCOL.md §20). It claims with its key, opens the sealed grant
 * and keeps what it gives: DIR/network.key, DIR/join.json (the gateway
 * whose tokens count, its link on the host we reached it at, the name
 * the gateway gave us) and, from a PKI gateway, DIR/provision.json.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the gateway's link URL (scheme://127.0.0.1:PORT/path) with the host
 * the node reached its API at */
static int
link_on_host(char out[128], const char *link, const char *host)
{
	const char *sep = strstr(link, "://"), *rest;

	if (sep == NULL)
		return am_error_set(AM_EFIELD, "the grant's link \"%.60s\" is not a URL", link);
	rest = sep + 3;
	if (rest[0] == '[') /* [v6]:port */
		rest = strchr(rest, ']') != NULL ? strchr(rest, ']') + 1 : rest;
	else
		rest += strcspn(rest, ":/");
	if ((size_t) snprintf(out, 128, "%.*s://%s%s", (int) (sep - link), link, host, rest) >= 128)
		return am_error_set(AM_EFIELD, "the link on %s is over 127 bytes", host);
	return 0;
}

/* a PKI gateway's certificate for us: checked, then kept 0600 */
static int
keep_bundle(const struct daemon_config *c, const char *bundle, const uint8_t me[AM_PK_BYTES],
    const uint8_t gateway[AM_PK_BYTES])
{
	am_provision p = {0};
	char path[4200];
	int rc;

	if ((rc = am_provision_parse(&p, bundle, strlen(bundle))) != 0)
		return rc;
	if (memcmp(p.node_pk, me, AM_PK_BYTES) != 0 || memcmp(p.gateway_pk, gateway, AM_PK_BYTES) != 0)
		rc = am_error_set(AM_EUNTRUSTED, "the grant's certificate is for another key or from another gateway");
	am_provision_clear(&p);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/provision.json", c->dir);
	return am_file_write_atomic(path, bundle, strlen(bundle), 0600, true);
}

/* claim at api_url with the keys; the grant's plain text (malloc'd) */
static int
claim(char **grant, size_t *glen, const char *api_url, const am_pair_keys *k, const uint8_t pk[AM_PK_BYTES],
    const char *name)
{
	char url[200], *body = NULL, *reply = NULL;
	size_t rlen = 0;
	unsigned status = 0;
	int rc;

	snprintf(url, sizeof(url), "%s/v1/pair/claim", api_url);
	if ((rc = am_pair_claim_make(&body, k, pk, name)) != 0)
		return rc;
	rc = am_http_fetch("POST", url, "application/json", body, strlen(body), NULL, AM_PAIR_GRANT_MAX * 3, 10000, &status,
	    &reply, &rlen);
	free(body);
	if (rc != 0)
		return am_error_set(rc, "no answer from the gateway: %s", am_error_detail());
	if (status != 200) {
		json_t *j = json_loadb(reply, rlen, 0, NULL);
		const char *e = json_string_value(json_object_get(j, "error"));
		rc = am_error_set(AM_EDENIED, "the gateway refused the code (HTTP %u): %.200s", status, e ? e : reply);
		json_decref(j);
	} else {
		rc = am_pair_open(grant, glen, k, pk, reply, rlen);
	}
	free(reply);
	return rc;
}

/* what the grant gives, kept in the folder */
static int
keep_grant(struct daemon_config *c, const char *grant, size_t glen, const char *host, const uint8_t me[AM_PK_BYTES],
    char netkey_fp[17])
{
	uint8_t key[32], gpk[AM_PK_BYTES];
	char link[128], onhost[128];
	json_t *j = NULL;
	const char *bundle, *nn;
	int rc;

	if ((rc = am_join_answer_parse(grant, glen, key, gpk, link)) != 0)
		return rc;
	if ((j = json_loadb(grant, glen, 0, NULL)) == NULL) {
		rc = am_error_set(AM_EMALFORMED, "the grant is not JSON");
		goto out;
	}
	bundle = json_string_value(json_object_get(j, "bundle"));
	nn = json_string_value(json_object_get(j, "node_name"));
	if (nn != NULL && am_tag_check("the grant's node_name", nn, strlen(nn)) != 0) {
		rc = AM_EFIELD;
		goto out;
	}
	if ((rc = link_on_host(onhost, link, host)) != 0 || (bundle != NULL && (rc = keep_bundle(c, bundle, me, gpk)) != 0) ||
	    (rc = am_daemon_save_netkey(c, key)) != 0 || (rc = am_daemon_save_join(c, gpk, onhost, "pair", nn)) != 0)
		goto out;
	am_key_fingerprint(netkey_fp, key);
out:
	sodium_memzero(key, sizeof(key));
	json_decref(j);
	return rc;
}

int
am_daemon_pair_join(struct node *n, struct daemon_config *c)
{
	char api_url[160], host[96], path[4200], name[AM_TAG_MAX + 1], id[AM_NODE_ID_LEN + 1], fp[17] = "";
	uint8_t code[AM_PAIR_CODE_BYTES];
	am_pair_keys k;
	am_identity *me = NULL;
	char *grant = NULL;
	size_t glen = 0;
	int rc = 0;

	(void) n;
	if (am_daemon_has(c->dir, "join.json") && am_daemon_has(c->dir, "network.key")) {
		am_say("%s joined its gateway before (%s/join.json): --join is not needed any more", c->dir, c->dir);
		return 0;
	}
	if (am_pair_join_parse(c->join, api_url, host, code) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 2;
	}
	am_pair_keys_derive(&k, code);
	sodium_memzero(code, sizeof(code));
	snprintf(path, sizeof(path), "%s/identity.pem", c->dir);
	if (am_identity_load_pem(&me, c->identity ? c->identity : path) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		rc = 1;
		goto out;
	}
	am_node_id_format(id, am_identity_pk(me));
	snprintf(name, sizeof(name), "%s", c->name ? c->name : "");
	if (c->name == NULL)
		snprintf(name, sizeof(name), "node-%.16s", id);
	if (claim(&grant, &glen, api_url, &k, am_identity_pk(me), name) != 0 ||
	    keep_grant(c, grant, glen, host, am_identity_pk(me), fp) != 0) {
		fprintf(stderr, "%s: --join %s: %s\n", c->prog, api_url, am_error_detail());
		rc = 2;
		goto out;
	}
	am_say("joined the gateway at %s: network key %s/network.key, fingerprint %s (as agent-mesh pair showed it)",
	    api_url, c->dir, fp);
out:
	if (grant != NULL) {
		sodium_memzero(grant, glen);
		free(grant);
	}
	sodium_memzero(&k, sizeof(k));
	am_identity_free(me);
	return rc;
}
