/*
 * provision.c — PKI provisioning bundles (docs/OPERATIONS.md "PKI"): what
 * a gateway hands a new node, as JSON,
 *
 *   {"version": 1, "node_id": "edge_node_1", "node_pubkey": "<hex>",
 *    "node_key_pem": "-----BEGIN PRIVATE KEY-----..." (absent when the key
 *    was made on the device), "gateway_pubkey": "<hex>",
 *    "network_key": "<hex>", "roles": [...], "expires": "<ISO time>",
 *    "certificate": "amt1...", "signature": "<hex>"}
 *
 * The certificate is a capability token issued by the gateway to the
 * node's key (subject = its node id) with the rights "node:<name>" and
 * "role:<role>" for each role; signature is the gateway's Ed25519 over
 * the bundle's other members, serialised compact with sorted keys. A
 * bundle holds the network key (and maybe the node's key): mode 0600.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int
bundle_digest(uint8_t h[32], json_t *j)
{
	json_t *copy = json_deep_copy(j);
	char *text;

	if (copy == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	json_object_del(copy, "signature");
	text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	crypto_generichash(h, 32, (const uint8_t *) text, strlen(text), NULL, 0);
	free(text);
	return 0;
}

int
am_provision_create(char **out, const am_identity *gateway, const char *name, const uint8_t node_pk[static AM_PK_BYTES],
    const char *node_key_pem, const uint8_t netkey[static 32], const char *const *roles, size_t nroles,
    uint64_t now_ms, uint64_t valid_ms)
{
	const char *rights[AM_TOKEN_MAX_RIGHTS];
	char rbuf[AM_TOKEN_MAX_RIGHTS][AM_RIGHT_MAX + 1], pkhex[AM_NODE_ID_LEN + 1], gwhex[AM_NODE_ID_LEN + 1];
	char nethex[65], *cert = NULL, sighex[2 * AM_SIG_BYTES + 1], exp[40];
	uint8_t h[32], sig[AM_SIG_BYTES];
	json_t *j = NULL, *jr;
	int rc;

	*out = NULL;
	if (am_tag_check("node id", name, strlen(name)) != 0)
		return AM_EFIELD;
	if (nroles + 1 > AM_TOKEN_MAX_RIGHTS)
		return am_error_set(AM_ELIMIT, "at most %d roles", AM_TOKEN_MAX_RIGHTS - 1);
	snprintf(rbuf[0], sizeof(rbuf[0]), "node:%s", name);
	rights[0] = rbuf[0];
	jr = json_array();
	for (size_t i = 0; i < nroles; i++) {
		if (am_tag_check("role", roles[i], strlen(roles[i])) != 0) {
			json_decref(jr);
			return AM_EFIELD;
		}
		snprintf(rbuf[i + 1], sizeof(rbuf[i + 1]), "role:%s", roles[i]);
		rights[i + 1] = rbuf[i + 1];
		json_array_append_new(jr, json_string(roles[i]));
	}
	am_node_id_format(pkhex, node_pk);
	am_node_id_format(gwhex, am_identity_pk(gateway));
	sodium_bin2hex(nethex, sizeof(nethex), netkey, 32);
	if ((rc = am_token_issue(&cert, gateway, pkhex, rights, nroles + 1, now_ms, now_ms + valid_ms, NULL)) != 0) {
		json_decref(jr);
		return rc;
	}
	{
		time_t t = (time_t) ((now_ms + valid_ms) / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "version", 1, "node_id", name, "node_pubkey", pkhex,
	    "gateway_pubkey", gwhex, "network_key", nethex, "roles", jr, "expires", exp, "certificate", cert);
	free(cert);
	if (j == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if (node_key_pem != NULL)
		json_object_set_new(j, "node_key_pem", json_string(node_key_pem));
	if ((rc = bundle_digest(h, j)) != 0)
		goto out;
	am_identity_sign(gateway, sig, h, sizeof(h));
	sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
	json_object_set_new(j, "signature", json_string(sighex));
	if ((*out = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		rc = am_error_set(AM_ENOMEM, "out of memory");
out:
	json_decref(j);
	sodium_memzero(nethex, sizeof(nethex));
	return rc;
}

void
am_provision_clear(am_provision *p)
{
	if (p->node_key_pem != NULL) {
		sodium_memzero(p->node_key_pem, strlen(p->node_key_pem));
		free(p->node_key_pem);
	}
	sodium_memzero(p, sizeof(*p));
}

static int
hex_field(uint8_t *out, size_t n, json_t *j, const char *name)
{
	const char *v = json_string_value(json_object_get(j, name));
	size_t got = 0;

	if (v == NULL || strlen(v) != 2 * n || sodium_hex2bin(out, n, v, strlen(v), NULL, &got, NULL) != 0 || got != n)
		return am_error_set(AM_EFIELD, "provisioning bundle: \"%s\" must be %zu hex characters", name, 2 * n);
	return 0;
}

int
am_provision_parse(am_provision *p, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *j = NULL, *v;
	uint8_t h[32], sig[AM_SIG_BYTES];
	const char *s;
	am_token cert;
	bool has_cert = false;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL || !json_is_object(j)) {
		rc = j == NULL ? am_error_set(AM_EMALFORMED, "provisioning bundle: line %d column %d: %s", jerr.line,
		                     jerr.column, jerr.text)
		               : am_error_set(AM_EMALFORMED, "provisioning bundle: not a JSON object");
		goto out;
	}
	if (json_integer_value(json_object_get(j, "version")) != 1) {
		rc = am_error_set(AM_EVERSION, "provisioning bundle: version must be 1");
		goto out;
	}
	if ((s = json_string_value(json_object_get(j, "node_id"))) == NULL || am_tag_check("node_id", s, strlen(s)) != 0) {
		rc = am_error_set(AM_EFIELD, "provisioning bundle: \"node_id\" must be a name of [A-Za-z0-9._:-]");
		goto out;
	}
	snprintf(p->name, sizeof(p->name), "%s", s);
	if ((rc = hex_field(p->node_pk, AM_PK_BYTES, j, "node_pubkey")) != 0 ||
	    (rc = hex_field(p->gateway_pk, AM_PK_BYTES, j, "gateway_pubkey")) != 0 ||
	    (rc = hex_field(p->netkey, 32, j, "network_key")) != 0 || (rc = hex_field(sig, AM_SIG_BYTES, j, "signature")) != 0)
		goto out;
	if ((rc = bundle_digest(h, j)) != 0)
		goto out;
	if (crypto_sign_verify_detached(sig, h, sizeof(h), p->gateway_pk) != 0) {
		rc = am_error_set(AM_EBADSIG, "provisioning bundle: the gateway's signature does not verify (altered?)");
		goto out;
	}
	if ((s = json_string_value(json_object_get(j, "certificate"))) == NULL || strlen(s) > AM_PEER_CERT_MAX) {
		rc = am_error_set(AM_EFIELD, "provisioning bundle: \"certificate\" is missing or too long");
		goto out;
	}
	snprintf(p->cert, sizeof(p->cert), "%s", s);
	if ((rc = am_token_parse(&cert, p->cert)) != 0)
		goto out;
	has_cert = true;
	{
		char pkhex[AM_NODE_ID_LEN + 1], right[AM_RIGHT_MAX + 1];
		am_node_id_format(pkhex, p->node_pk);
		snprintf(right, sizeof(right), "node:%s", p->name);
		if (memcmp(cert.issuer, p->gateway_pk, AM_PK_BYTES) != 0 || strcmp(cert.subject, pkhex) != 0 ||
		    am_token_check(&cert, p->gateway_pk, 1, cert.blocks[0].nbf_ms, right) != 0) {
			rc = am_error_set(AM_EFIELD, "provisioning bundle: the certificate is not for %s with this key", p->name);
			goto out;
		}
		p->expires_ms = cert.blocks[cert.nblocks - 1].exp_ms;
	}
	if ((v = json_object_get(j, "node_key_pem")) != NULL) {
		if (!json_is_string(v) || (p->node_key_pem = strdup(json_string_value(v))) == NULL) {
			rc = am_error_set(AM_EFIELD, "provisioning bundle: \"node_key_pem\" must be a PEM string");
			goto out;
		}
	}
out:
	if (has_cert)
		am_token_clear(&cert);
	json_decref(j);
	if (rc != 0)
		am_provision_clear(p);
	return rc;
}

int
am_provision_load(am_provision *p, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if ((rc = am_file_read(&text, &len, path, 1 << 20)) != 0)
		return rc;
	rc = am_provision_parse(p, text, len);
	sodium_memzero(text, len);
	free(text);
	if (rc != 0)
		return am_error_set(rc, "%s: %s", path, am_error_detail());
	return 0;
}

int
am_pki_check_peer(const char *cert_text, const uint8_t pk[static AM_PK_BYTES], const char *name,
    const uint8_t *trusted, size_t ntrusted, am_queue *q, uint64_t now_ms)
{
	am_token cert;
	char pkhex[AM_NODE_ID_LEN + 1], right[AM_RIGHT_MAX + 1];
	int rc;

	/* a trusted gateway key needs no certificate */
	for (size_t i = 0; i < ntrusted; i++)
		if (memcmp(trusted + i * AM_PK_BYTES, pk, AM_PK_BYTES) == 0)
			return q != NULL && am_queue_revoked(q, pk, trusted, ntrusted) == 0
			           ? am_error_set(AM_EREVOKED, "pki: the key of \"%s\" is revoked", name)
			           : 0;
	if (cert_text == NULL || cert_text[0] == '\0')
		return am_error_set(AM_EUNTRUSTED, "pki: \"%s\" has no certificate (not provisioned)", name);
	if ((rc = am_token_parse(&cert, cert_text)) != 0)
		return am_error_set(AM_EUNTRUSTED, "pki: \"%s\" has a bad certificate: %s", name, am_error_detail());
	am_node_id_format(pkhex, pk);
	snprintf(right, sizeof(right), "node:%s", name);
	if ((rc = am_token_check(&cert, trusted, ntrusted, now_ms, NULL)) != 0) {
		rc = am_error_set(rc == AM_EEXPIRED ? AM_EEXPIRED : AM_EUNTRUSTED, "pki: \"%s\": certificate %s", name,
		    rc == AM_EEXPIRED ? "expired (or not yet valid)" : "from a gateway this node does not trust");
		goto out;
	}
	if (strcmp(cert.subject, pkhex) != 0 || am_token_check(&cert, trusted, ntrusted, now_ms, right) != 0) {
		rc = am_error_set(AM_EUNTRUSTED, "pki: the certificate is not for \"%s\" with this key", name);
		goto out;
	}
	if (q != NULL && (am_queue_revoked(q, pk, trusted, ntrusted) == 0 || am_token_revoked(&cert, q, trusted, ntrusted)))
		rc = am_error_set(AM_EREVOKED, "pki: \"%s\" is revoked", name);
out:
	am_token_clear(&cert);
	return rc;
}
