/*
 * daemon_first.c — a daemon's first start with no flags (issue 12): the
 * default data folder, the key, the store and the deployment's network
 * key made there, and the development join.
 *
 * The default folder is $STATE_DIRECTORY (systemd's StateDirectory=),
 * else ./agent-mesh-data/gateway or ./agent-mesh-data/node, so both
 * roles can run from one folder. Only a default folder is made: a --data
 * that holds no key is an error (a typo must not become a new identity).
 *
 * The network key is DIR/network.key (0600) unless given. A gateway makes
 * one at its first start and prints its fingerprint. A node on the same
 * machine as a development gateway (--dev-token, API on loopback) asks it
 * for one at GET /v1/join on 127.0.0.1 and keeps the answer: the network
 * key, the gateway's key (its tokens then count, as --trust-key) and the
 * link to dial (DIR/join.json). Only a development gateway answers, and
 * only to loopback clients; a production node is given the key.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOIN_TRIES 10 /* one a second: a gateway started a moment before is waited for */

void
am_daemon_default_dir(struct daemon_config *c)
{
	const char *sd = getenv("STATE_DIRECTORY");

	if (sd != NULL && sd[0] != '\0')
		snprintf(c->dir_buf, sizeof(c->dir_buf), "%.*s", (int) strcspn(sd, ":"), sd);
	else
		snprintf(c->dir_buf, sizeof(c->dir_buf), "agent-mesh-data/%s", c->gateway ? "gateway" : "node");
	c->dir = c->dir_buf;
	c->auto_dir = true;
}

bool
am_daemon_has(const char *dir, const char *name)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

int
am_daemon_make_dir(const char *dir)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST)
				return am_error_set(AM_EIO, "%s: %s", p, strerror(errno));
			*s = '/';
		}
	if (mkdir(p, 0700) != 0 && errno != EEXIST)
		return am_error_set(AM_EIO, "%s: %s", p, strerror(errno));
	return 0;
}

/* a new key and an empty store owned by it, as agent-mesh init makes */
int
am_daemon_make_identity(const struct daemon_config *c)
{
	am_identity *id = NULL;
	am_queue *q = NULL;
	am_queue_options qo = {.create = true};
	char path[4200], nid[AM_NODE_ID_LEN + 1];
	int rc;

	/* --identity names the key (the guide's gateway_identity.pem): only
	 * the store is made, owned by it */
	if ((rc = am_daemon_make_dir(c->dir)) != 0 ||
	    (rc = c->identity ? am_identity_load_pem(&id, c->identity) : am_identity_generate(&id)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/identity.pem", c->dir);
	if (c->identity == NULL && (rc = am_identity_save_pem(id, path, false)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/store", c->dir);
	if ((rc = am_queue_open(&q, path, &qo)) != 0 || (rc = am_queue_set_self(q, am_identity_pk(id))) != 0)
		goto out;
	am_node_id_format(nid, am_identity_pk(id));
	if (c->identity)
		am_say("first start: made %s with an empty store owned by %s (node id %s)", c->dir, c->identity, nid);
	else
		am_say("first start: made %s with a new key (node id %s) and an empty store", c->dir, nid);
out:
	am_queue_close(q);
	am_identity_free(id);
	return rc;
}

/* GET url: the answer's body (malloc'd) when it is a 200; else NULL with
 * the reason set and *refused when the server answered at all */
static char *
http_get(const char *url, bool *refused, size_t *blen)
{
	unsigned status = 0;
	char *body = NULL;

	if (am_http_fetch("GET", url, NULL, NULL, 0, NULL, 64u << 10, 3000, &status, &body, blen) != 0)
		return NULL;
	if (status != 200) {
		*refused = true;
		am_error_set(AM_EDENIED, "HTTP %u: %.200s", status, body);
		free(body);
		return NULL;
	}
	return body;
}

int
am_join_answer_parse(const char *text, size_t len, uint8_t key[32], uint8_t gateway_pk[AM_PK_BYTES], char link[128])
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *hk = json_string_value(json_object_get(j, "network_key"));
	const char *gk = json_string_value(json_object_get(j, "gateway_key"));
	const char *ln = json_string_value(json_object_get(j, "link"));
	size_t klen = 0;
	int rc = 0;

	if (!json_is_object(j))
		rc = am_error_set(AM_EMALFORMED, "the join answer is not a JSON object");
	else if (hk == NULL || strlen(hk) != 64 || sodium_hex2bin(key, 32, hk, 64, NULL, &klen, NULL) != 0 || klen != 32)
		rc = am_error_set(AM_EFIELD, "the join answer's network_key is not 64 hex digits");
	else if (gk == NULL || am_node_id_parse(gateway_pk, gk) != 0)
		rc = am_error_set(AM_EFIELD, "the join answer's gateway_key is not a node id");
	else if (ln == NULL || strlen(ln) >= 128 ||
	         (strncmp(ln, "ws://", 5) != 0 && strncmp(ln, "tcp://", 6) != 0 && strncmp(ln, "ipc://", 6) != 0))
		rc = am_error_set(AM_EFIELD, "the join answer's link is not a ws://, tcp:// or ipc:// URL under 128 bytes");
	else
		snprintf(link, 128, "%s", ln);
	if (rc != 0)
		sodium_memzero(key, 32);
	json_decref(j);
	return rc;
}

int
am_daemon_save_netkey(const struct daemon_config *c, const uint8_t key[32])
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/network.key", c->dir);
	return am_netkey_save(path, key, false);
}

/* a node's development join: the network key, the gateway and its link */
static int
join(struct daemon_config *c, uint8_t key[32])
{
	const char *gp = getenv("GATEWAY_PORT");
	char url[96], link[128], *body = NULL;
	uint8_t pk[AM_PK_BYTES];
	size_t len = 0;
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%s/v1/join", gp && gp[0] ? gp : "8787");
	for (int i = 0; i < JOIN_TRIES && body == NULL; i++) {
		bool refused = false;
		if (i == 1)
			am_say("no network key yet: waiting for a development gateway at %s", url);
		if (i > 0)
			sleep(1);
		if ((body = http_get(url, &refused, &len)) == NULL && refused)
			break; /* it answered: no */
	}
	if (body == NULL)
		return am_error_set(AM_ENOTFOUND, "no development gateway answered at %s (%s)", url, am_error_detail());
	rc = am_join_answer_parse(body, len, key, pk, link);
	sodium_memzero(body, len);
	free(body);
	if (rc != 0)
		return am_error_set(rc, "%s: %s", url, am_error_detail());
	return am_daemon_save_join(c, pk, link, "dev", NULL);
}

int
am_daemon_save_join(const struct daemon_config *c, const uint8_t gateway_pk[AM_PK_BYTES], const char *link,
    const char *how, const char *node_name)
{
	char hex[AM_NODE_ID_LEN + 1], path[4200], *text;
	int rc;

	/* the network key is kept in network.key only */
	am_node_id_format(hex, gateway_pk);
	json_t *j = json_pack("{s:s, s:s, s:s}", "gateway_key", hex, "link", link, "how", how);
	if (j != NULL && node_name != NULL)
		json_object_set_new(j, "name", json_string(node_name));
	text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	snprintf(path, sizeof(path), "%s/join.json", c->dir);
	rc = text != NULL ? am_file_write_atomic(path, text, strlen(text), 0600, true) : am_error_set(AM_ENOMEM, "out of memory");
	free(text);
	return rc;
}

/* DIR/join.json: the gateway's key trusted for tokens, its link dialed */
static int
apply_join(struct node *n, struct daemon_config *c)
{
	char path[4200];
	json_t *j;
	const char *gk, *link, *how, *name;
	uint8_t pk[AM_PK_BYTES];

	snprintf(path, sizeof(path), "%s/join.json", c->dir);
	if ((j = json_load_file(path, 0, NULL)) == NULL)
		return 0;
	gk = json_string_value(json_object_get(j, "gateway_key"));
	link = json_string_value(json_object_get(j, "link"));
	how = json_string_value(json_object_get(j, "how"));
	name = json_string_value(json_object_get(j, "name"));
	if (gk == NULL || am_node_id_parse(pk, gk) != 0 || link == NULL || strlen(link) >= 128) {
		json_decref(j);
		return am_error_set(AM_EMALFORMED, "%s: want gateway_key and link", path);
	}
	/* a development join opens the monitoring lines on loopback; a
	 * pairing (another machine) does not */
	c->dev_joined = how == NULL || strcmp(how, "dev") == 0;
	if (c->name == NULL && name != NULL && am_tag_check("join.json name", name, strlen(name)) == 0) {
		snprintf(c->name_buf, sizeof(c->name_buf), "%s", name);
		c->name = c->name_buf;
	}
	if (c->ntrust < 7) {
		memcpy(n->api.trusted + (1 + c->ntrust) * AM_PK_BYTES, pk, AM_PK_BYTES);
		c->ntrust++;
	}
	if (c->npeers < MAX_DIALERS) {
		snprintf(c->join_link, sizeof(c->join_link), "%s", link);
		c->peers[c->npeers++] = c->join_link;
	}
	json_decref(j);
	return 0;
}

/* the key in path (as @FILE) into n and c; 0 or the exit status */
static int
use_key_file(struct node *n, struct daemon_config *c, const char *path)
{
	snprintf(c->key_buf, sizeof(c->key_buf), "@%s", path);
	if (am_netkey_parse(n->netkey, c->key_buf) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 2;
	}
	c->key = c->key_buf;
	return 0;
}

/* The network key: given, else DIR/network.key, else network.key beside
 * --identity (where agent-mesh provision finds it too), else made (a
 * gateway: beside --identity, or in DIR) or joined (a node) in a default
 * folder. */
static int
network_key(struct node *n, struct daemon_config *c)
{
	char fp[17], path[4200], beside[4200] = "";
	struct stat st;

	if (c->key != NULL || c->provision != NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/network.key", c->dir);
	if (stat(path, &st) != 0 && c->identity != NULL && am_netkey_beside(beside, sizeof(beside), c->identity) == 0 &&
	    stat(beside, &st) == 0)
		snprintf(path, sizeof(path), "%s", beside);
	if (stat(path, &st) == 0) {
		int rc = use_key_file(n, c, path);
		if (rc == 0) {
			am_key_fingerprint(fp, n->netkey);
			am_say("using the network key %s, fingerprint %s", path, fp);
		}
		return rc;
	}
	if (!c->auto_dir) {
		fprintf(stderr, "%s: no network key: give --network-key @FILE (or MESH_NETWORK_KEY), or put it in %s\n",
		    c->prog, path);
		return 2;
	}
	if (c->gateway) {
		if (beside[0])
			snprintf(path, sizeof(path), "%s", beside);
		randombytes_buf(n->netkey, sizeof(n->netkey));
		if (am_netkey_save(path, n->netkey, false) != 0) {
			fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
			return 1;
		}
		am_key_fingerprint(fp, n->netkey);
		am_say("made the network key %s (fingerprint %s): every node of this site needs it (agent-mesh pair, or "
		       "--network-key @FILE); a node on this machine joins a --dev-token gateway by itself",
		    path, fp);
	} else {
		if (join(c, n->netkey) != 0 || am_daemon_save_netkey(c, n->netkey) != 0) {
			fprintf(stderr, "%s: no network key: %s; join with the code agent-mesh pair prints on the gateway "
			                "(--join), give it with --network-key @FILE, or start agent-mesh-gateway --dev-token on "
			                "this machine first\n",
			    c->prog, am_error_detail());
			return 2;
		}
		am_key_fingerprint(fp, n->netkey);
		am_say("joined the development gateway on this machine: network key %s (fingerprint %s)", path, fp);
	}
	return use_key_file(n, c, path);
}

int
am_daemon_first_start(struct node *n, struct daemon_config *c)
{
	/* --join names its folder on purpose: it may be made there */
	bool joining = c->join != NULL && c->provision == NULL;
	int rc;

	if ((c->auto_dir || joining) && c->provision == NULL &&
	    !am_daemon_has(c->dir, c->identity == NULL ? "identity.pem" : "store") && am_daemon_make_identity(c) != 0) {
		fprintf(stderr, "%s: first start in %s: %s\n", c->prog, c->dir, am_error_detail());
		return 1;
	}
	/* a folder given that holds no key: the start says how to make one */
	if (!c->auto_dir && !joining && c->identity == NULL && c->provision == NULL &&
	    !am_daemon_has(c->dir, "identity.pem"))
		return 0;
	if (joining && (rc = am_daemon_pair_join(n, c)) != 0)
		return rc;
	/* a pairing with a PKI gateway left the node's certificate here */
	if (!c->gateway && c->provision == NULL && am_daemon_has(c->dir, "provision.json")) {
		snprintf(c->provision_buf, sizeof(c->provision_buf), "%s/provision.json", c->dir);
		c->provision = c->provision_buf;
		if ((rc = am_daemon_apply_provision(n, c)) != DAEMON_GO)
			return rc;
		if (c->trust_mode_default) {
			c->trust_mode = "pki";
			n->pki = true;
		}
	}
	if ((rc = network_key(n, c)) != 0)
		return rc;
	if (!c->gateway && apply_join(n, c) != 0) {
		fprintf(stderr, "%s: %s\n", c->prog, am_error_detail());
		return 2;
	}
	return 0;
}

/* ---- the development gateway's side ---- */

/* where a client on this machine dials our links: the listen URL with
 * 127.0.0.1 for its host */
bool
am_daemon_local_link(char *out, size_t cap, const char *listen)
{
	const char *sep = listen != NULL ? strstr(listen, "://") : NULL, *path, *colon;

	if (sep == NULL)
		return false;
	path = strchr(sep + 3, '/');
	colon = path != NULL ? path : sep + 3 + strlen(sep + 3);
	while (colon > sep + 3 && *colon != ':')
		colon--;
	if (*colon != ':')
		return false;
	snprintf(out, cap, "%.*s://127.0.0.1%s", (int) (sep - listen), listen, colon);
	return true;
}

static void
on_join(am_http_ex *ex)
{
	struct node *n = am_http_data(ex);
	char hex[65], pk[AM_NODE_ID_LEN + 1], link[160];

	if (!am_http_from_loopback(ex)) {
		am_http_reply_error(ex, 403, "the development join answers this machine only");
		return;
	}
	if (!am_daemon_local_link(link, sizeof(link), n->listen)) {
		am_http_reply_error(ex, 409, "this gateway accepts no links (--listen off)");
		return;
	}
	sodium_bin2hex(hex, sizeof(hex), n->netkey, sizeof(n->netkey));
	am_node_id_format(pk, am_identity_pk(n->me));
	/* anyone on this machine may ask: the first join a minute in full,
	 * the rest counted in one record (the refusals' bounded cost) */
	(void) am_audit_refusal(n->api.refusals, "dev_join", "development join", "loopback",
	    json_pack("{s:s}", "link", link), am_now_ms());
	am_http_reply_json(ex, 200,
	    json_pack("{s:s, s:s, s:s, s:s}", "network_key", hex, "gateway_key", pk, "name", n->info.name, "link", link));
	sodium_memzero(hex, sizeof(hex));
}

int
am_daemon_join_register(struct node *n, const struct daemon_config *c)
{
	/* development only: a --dev-token gateway whose API only this machine
	 * can reach; a production gateway has no such route */
	if (!c->gateway || !c->dev_token || !am_daemon_loopback(c->host))
		return 0;
	return am_http_route(n->http, "GET", "/v1/join", false, 0, NULL, on_join, n);
}
