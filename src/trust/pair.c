/*
 * pair.c — the pairing code a gateway prints for a node on another
 * machine (docs/PROTOCOL.md §20): the code, the keys drawn from it, the
 * node's claim and the gateway's sealed grant, and the join argument
 * `HOST:PORT/CODE`.
 *
 * The code is 12 random bytes (96 bits), shown as six groups of four hex
 * digits. It never travels: the claim carries a MAC under a key drawn
 * from it, and the grant (the network key, the gateway's key, its link,
 * in PKI mode a certificate) is sealed under another, so neither a
 * listener on the LAN nor a machine posing as the gateway learns or
 * gives anything without the code (docs/SECURITY.md).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KDF_CONTEXT "ampair01"
static const char claim_label[] = "agent-mesh pair claim v1";

void
am_pair_code_new(uint8_t code[static AM_PAIR_CODE_BYTES], char text[static AM_PAIR_CODE_TEXT])
{
	randombytes_buf(code, AM_PAIR_CODE_BYTES);
	am_pair_code_format(text, code);
}

void
am_pair_code_format(char text[static AM_PAIR_CODE_TEXT], const uint8_t code[static AM_PAIR_CODE_BYTES])
{
	char hex[2 * AM_PAIR_CODE_BYTES + 1];
	size_t o = 0;

	sodium_bin2hex(hex, sizeof(hex), code, AM_PAIR_CODE_BYTES);
	for (size_t i = 0; i < 2 * AM_PAIR_CODE_BYTES; i++) {
		if (i > 0 && i % 4 == 0)
			text[o++] = '-';
		text[o++] = hex[i];
	}
	text[o] = '\0';
}

int
am_pair_code_parse(uint8_t code[static AM_PAIR_CODE_BYTES], const char *text)
{
	char hex[2 * AM_PAIR_CODE_BYTES + 1];
	size_t n = 0, got = 0;

	/* as typed: dashes and spaces anywhere, either case */
	for (const char *p = text; *p; p++) {
		if (*p == '-' || *p == ' ')
			continue;
		if (!isxdigit((unsigned char) *p) || n == 2 * AM_PAIR_CODE_BYTES)
			return am_error_set(AM_EFIELD, "a pairing code is 24 hex digits (xxxx-xxxx-xxxx-xxxx-xxxx-xxxx)");
		hex[n++] = (char) tolower((unsigned char) *p);
	}
	hex[n] = '\0';
	if (n != 2 * AM_PAIR_CODE_BYTES || sodium_hex2bin(code, AM_PAIR_CODE_BYTES, hex, n, NULL, &got, NULL) != 0 ||
	    got != AM_PAIR_CODE_BYTES)
		return am_error_set(AM_EFIELD, "a pairing code is 24 hex digits (xxxx-xxxx-xxxx-xxxx-xxxx-xxxx)");
	return 0;
}

void
am_pair_keys_derive(am_pair_keys *k, const uint8_t code[static AM_PAIR_CODE_BYTES])
{
	uint8_t master[crypto_kdf_KEYBYTES];

	crypto_generichash(master, sizeof(master), code, AM_PAIR_CODE_BYTES, NULL, 0);
	crypto_kdf_derive_from_key(k->claim_key, sizeof(k->claim_key), 1, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(k->box_key, sizeof(k->box_key), 2, KDF_CONTEXT, master);
	sodium_memzero(master, sizeof(master));
}

void
am_pair_proof(uint8_t out[static 32], const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, k->claim_key, sizeof(k->claim_key), 32);
	crypto_generichash_update(&st, (const uint8_t *) claim_label, sizeof(claim_label) - 1);
	crypto_generichash_update(&st, node_pk, AM_PK_BYTES);
	crypto_generichash_final(&st, out, 32);
}

int
am_pair_claim_make(char **out, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES], const char *name)
{
	uint8_t proof[32];
	char id[AM_NODE_ID_LEN + 1], hex[65];
	json_t *j;

	am_pair_proof(proof, k, node_pk);
	am_node_id_format(id, node_pk);
	sodium_bin2hex(hex, sizeof(hex), proof, sizeof(proof));
	j = json_pack("{s:s, s:s, s:s}", "node", id, "name", name, "proof", hex);
	*out = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return *out != NULL ? 0 : am_error_set(AM_ENOMEM, "out of memory");
}

int
am_pair_claim_parse(const char *text, size_t len, uint8_t node_pk[static AM_PK_BYTES], char name[static AM_TAG_MAX + 1],
    uint8_t proof[static 32])
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "node"));
	const char *nm = json_string_value(json_object_get(j, "name"));
	const char *pf = json_string_value(json_object_get(j, "proof"));
	size_t got = 0;
	int rc = 0;

	if (!json_is_object(j))
		rc = am_error_set(AM_EMALFORMED, "a pairing claim is a JSON object {node, name, proof}");
	else if (id == NULL || am_node_id_parse(node_pk, id) != 0)
		rc = am_error_set(AM_EFIELD, "the claim's \"node\" is not a node id (64 hex)");
	else if (nm == NULL)
		rc = am_error_set(AM_EFIELD, "the claim has no \"name\"");
	else if ((rc = am_tag_check("the claim's \"name\"", nm, strlen(nm))) != 0)
		;
	else if (pf == NULL || strlen(pf) != 64 || sodium_hex2bin(proof, 32, pf, 64, NULL, &got, NULL) != 0 || got != 32)
		rc = am_error_set(AM_EFIELD, "the claim's \"proof\" is not 64 hex digits");
	else
		snprintf(name, AM_TAG_MAX + 1, "%s", nm);
	json_decref(j);
	return rc;
}

int
am_pair_seal(char **out, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES], const char *plain,
    size_t len)
{
	size_t blen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *box = malloc(blen);
	char *hex = malloc(2 * blen + 1);
	json_t *j = NULL;
	int rc = 0;

	*out = NULL;
	if (box == NULL || hex == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	randombytes_buf(box, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	/* the claiming node's key as associated data: the grant is for it */
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL,
	    (const uint8_t *) plain, len, node_pk, AM_PK_BYTES, NULL, box, k->box_key);
	sodium_bin2hex(hex, 2 * blen + 1, box, blen);
	if ((j = json_pack("{s:s}", "grant", hex)) == NULL || (*out = json_dumps(j, JSON_COMPACT)) == NULL)
		rc = am_error_set(AM_ENOMEM, "out of memory");
out:
	json_decref(j);
	free(hex);
	free(box);
	return rc;
}

int
am_pair_open(char **plain, size_t *plen, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES],
    const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *hex = json_string_value(json_object_get(j, "grant"));
	size_t hlen = hex != NULL ? strlen(hex) : 0, blen = 0;
	const size_t overhead = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *box = NULL;
	unsigned long long got = 0;
	int rc = 0;

	*plain = NULL;
	*plen = 0;
	if (hex == NULL || hlen % 2 != 0 || hlen / 2 < overhead || hlen / 2 > AM_PAIR_GRANT_MAX) {
		rc = am_error_set(AM_EMALFORMED, "the gateway's answer holds no grant (a JSON object {grant: hex})");
		goto out;
	}
	if ((box = malloc(hlen / 2)) == NULL || (*plain = malloc(hlen / 2 - overhead + 1)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	if (sodium_hex2bin(box, hlen / 2, hex, hlen, NULL, &blen, NULL) != 0 || blen != hlen / 2) {
		rc = am_error_set(AM_EMALFORMED, "the grant is not hex");
		goto out;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *) *plain, &got, NULL,
	        box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, blen - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	        node_pk, AM_PK_BYTES, box, k->box_key) != 0) {
		rc = am_error_set(AM_EBADSIG, "the grant does not open with this pairing code: not the gateway that printed "
		                              "it (or not for this node)");
		goto out;
	}
	(*plain)[got] = '\0';
	*plen = (size_t) got;
out:
	if (rc != 0) {
		free(*plain);
		*plain = NULL;
	}
	free(box);
	json_decref(j);
	return rc;
}

int
am_pair_join_parse(const char *arg, char api_url[static 160], char host[static 96],
    uint8_t code[static AM_PAIR_CODE_BYTES])
{
	const char *p = arg, *slash, *colon;
	size_t hlen;

	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	slash = strrchr(p, '/');
	if (slash == NULL || slash == p)
		return am_error_set(AM_EFIELD, "--join %s: want GATEWAY:PORT/CODE, as agent-mesh pair prints it", arg);
	/* the host is what stands before the last ':' of the address part */
	colon = slash;
	while (colon > p && *colon != ':')
		colon--;
	if (*colon != ':' || colon == p || (size_t) (slash - p) >= 96 || slash - colon < 2 || slash - colon > 6)
		return am_error_set(AM_EFIELD, "--join %s: want GATEWAY:PORT/CODE (the gateway's address and HTTP port)",
		    arg);
	for (const char *d = colon + 1; d < slash; d++)
		if (!isdigit((unsigned char) *d))
			return am_error_set(AM_EFIELD, "--join %s: the port is not a number", arg);
	for (const char *d = p; d < slash; d++)
		if (!isalnum((unsigned char) *d) && strchr(".-:[]_", *d) == NULL)
			return am_error_set(AM_EFIELD, "--join %s: the address holds '%c'", arg, *d);
	hlen = (size_t) (colon - p);
	snprintf(host, 96, "%.*s", (int) hlen, p);
	snprintf(api_url, 160, "http://%.*s", (int) (slash - p), p);
	if (am_pair_code_parse(code, slash + 1) != 0)
		return am_error_set(AM_EFIELD, "--join %s: %s", arg, am_error_detail());
	return 0;
}
