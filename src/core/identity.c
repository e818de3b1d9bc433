/*
 * identity.c — Ed25519 key pairs: generation, PKCS#8 PEM in and out,
 * signing, and opening payloads sealed to this key.
 *
 * Only the two fixed PKCS#8 shapes RFC 8410 defines for Ed25519 are
 * accepted (v1 seed-only, and v2 with the public key appended); anything
 * else is named and refused rather than half-parsed. Secrets live in
 * sodium_malloc'd memory and are wiped on free.
 */
#include "am_core.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct am_identity {
	uint8_t pk[AM_PK_BYTES];
	uint8_t sk[AM_SK_BYTES]; /* the struct itself is sodium_malloc'd */
};

/* SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
 * OCTET STRING (32) } } — the 16 bytes before the seed. */
static const uint8_t pkcs8_v1_prefix[16] = {0x30, 0x2e, 0x02, 0x01, 0x00,
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
/* v2 (OneAsymmetricKey, RFC 8410 section 7): version 1, [1] publicKey. */
static const uint8_t pkcs8_v2_prefix[16] = {0x30, 0x51, 0x02, 0x01, 0x01,
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
static const uint8_t pkcs8_v2_pk_tag[3] = {0x81, 0x21, 0x00};
static const uint8_t ed25519_oid[5] = {0x06, 0x03, 0x2b, 0x65, 0x70};

static const char pem_begin[] = "-----BEGIN PRIVATE KEY-----";
static const char pem_end[] = "-----END PRIVATE KEY-----";

int
am_core_init(void)
{
	if (sodium_init() < 0)
		return am_error_set(AM_ENOMEM, "libsodium failed to initialise");
	return 0;
}

static int
identity_alloc(am_identity **out)
{
	am_identity *id = sodium_malloc(sizeof(*id));

	*out = NULL;
	if (id == NULL)
		return am_error_set(AM_ENOMEM, "cannot allocate secure memory for a key");
	*out = id;
	return 0;
}

int
am_identity_generate(am_identity **out)
{
	int rc = identity_alloc(out);

	if (rc != 0)
		return rc;
	crypto_sign_keypair((*out)->pk, (*out)->sk);
	return 0;
}

int
am_identity_from_seed(am_identity **out, const uint8_t seed[static AM_SEED_BYTES])
{
	int rc = identity_alloc(out);

	if (rc != 0)
		return rc;
	crypto_sign_seed_keypair((*out)->pk, (*out)->sk, seed);
	return 0;
}

void
am_identity_free(am_identity *id)
{
	if (id != NULL)
		sodium_free(id); /* sodium_free wipes before releasing */
}

const uint8_t *
am_identity_pk(const am_identity *id)
{
	return id->pk;
}

void
am_identity_sign(const am_identity *id, uint8_t sig[static AM_SIG_BYTES],
    const uint8_t *msg, size_t len)
{
	crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int
am_identity_open_sealed(const am_identity *id, uint8_t **out, size_t *out_len,
    const uint8_t *in, size_t in_len)
{
	uint8_t xpk[crypto_box_PUBLICKEYBYTES];
	uint8_t *xsk = NULL;
	uint8_t *buf = NULL;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	if (in_len < crypto_box_SEALBYTES)
		return am_error_set(AM_ESEAL, "sealed payload shorter than its %d-byte header",
		    (int) crypto_box_SEALBYTES);
	xsk = sodium_malloc(crypto_box_SECRETKEYBYTES);
	buf = malloc(in_len - crypto_box_SEALBYTES + 1);
	if (xsk == NULL || buf == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory opening a sealed payload");
		goto out;
	}
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, id->pk) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(xsk, id->sk) != 0) {
		rc = am_error_set(AM_ESEAL, "this key cannot be converted to X25519");
		goto out;
	}
	if (crypto_box_seal_open(buf, in, in_len, xpk, xsk) != 0) {
		rc = am_error_set(AM_ESEAL, "sealed payload is not for this key or was altered");
		goto out;
	}
	*out = buf;
	*out_len = in_len - crypto_box_SEALBYTES;
	buf = NULL;
out:
	sodium_free(xsk);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------- PEM --- */

static const char *
find_bytes(const char *hay, size_t len, const void *needle, size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return hay + i;
	return NULL;
}

static const char *
find_str(const char *hay, size_t len, const char *needle)
{
	return find_bytes(hay, len, needle, strlen(needle));
}

static int
name_other_pem(const char *pem, size_t len)
{
	const char *b = find_str(pem, len, "-----BEGIN ");
	char label[48];
	size_t i = 0;

	if (b == NULL)
		return am_error_set(AM_EPEM, "not a PEM file (no \"-----BEGIN PRIVATE KEY-----\" line)");
	b += strlen("-----BEGIN ");
	while (i + 1 < sizeof(label) && b + i < pem + len && b[i] != '-' &&
	    b[i] >= ' ' && b[i] < 0x7f) {
		label[i] = b[i];
		i++;
	}
	label[i] = '\0';
	return am_error_set(AM_EKEY, "PEM holds a \"%s\", expected an Ed25519 \"PRIVATE KEY\" (PKCS#8)", label);
}

int
am_identity_parse_pem(am_identity **out, const char *pem, size_t len)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	const char *b, *e;
	int rc = 0;

	*out = NULL;
	b = find_str(pem, len, pem_begin);
	if (b == NULL)
		return name_other_pem(pem, len);
	b += sizeof(pem_begin) - 1;
	e = find_str(b, len - (size_t) (b - pem), pem_end);
	if (e == NULL)
		return am_error_set(AM_EPEM, "PEM has no \"-----END PRIVATE KEY-----\" line (truncated?)");
	der = sodium_malloc((size_t) (e - b) + 1);
	if (der == NULL)
		return am_error_set(AM_ENOMEM, "out of memory reading a key");
	if (sodium_base642bin(der, (size_t) (e - b) + 1, b, (size_t) (e - b),
	        " \t\r\n", &der_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		rc = am_error_set(AM_EPEM, "PEM body is not valid base64");
		goto out;
	}
	if (der_len == 48 && memcmp(der, pkcs8_v1_prefix, 16) == 0) {
		rc = am_identity_from_seed(out, der + 16);
		goto out;
	}
	if (der_len == 83 && memcmp(der, pkcs8_v2_prefix, 16) == 0 &&
	    memcmp(der + 48, pkcs8_v2_pk_tag, 3) == 0) {
		rc = am_identity_from_seed(out, der + 16);
		if (rc == 0 && sodium_memcmp((*out)->pk, der + 51, AM_PK_BYTES) != 0) {
			am_identity_free(*out);
			*out = NULL;
			rc = am_error_set(AM_EKEY, "PKCS#8 public key does not match its private key");
		}
		goto out;
	}
	if (der_len > 12 && find_bytes((const char *) der, der_len, ed25519_oid,
	                        sizeof(ed25519_oid)) == NULL)
		rc = am_error_set(AM_EKEY, "PKCS#8 key is not Ed25519 (other algorithm OID)");
	else
		rc = am_error_set(AM_EKEY, "PKCS#8 Ed25519 key has an unexpected structure (%zu bytes of DER)", der_len);
out:
	sodium_free(der);
	return rc;
}

int
am_identity_load_pem(am_identity **out, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = am_file_read(&text, &len, path, 64 * 1024);
	if (rc != 0)
		return rc;
	rc = am_identity_parse_pem(out, text, len);
	if (rc != 0) {
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		am_error_set(rc, "%s: %s", path, why);
	}
	sodium_memzero(text, len);
	free(text);
	return rc;
}

int
am_identity_to_pem(char **out, const am_identity *id)
{
	uint8_t der[48];
	char b64[sodium_base64_ENCODED_LEN(48, sodium_base64_VARIANT_ORIGINAL)];
	size_t cap = sizeof(pem_begin) + sizeof(b64) + sizeof(pem_end) + 4;
	char *pem = malloc(cap);

	*out = NULL;
	if (pem == NULL)
		return am_error_set(AM_ENOMEM, "out of memory writing a key");
	memcpy(der, pkcs8_v1_prefix, 16);
	memcpy(der + 16, id->sk, AM_SEED_BYTES); /* libsodium sk = seed || pk */
	sodium_bin2base64(b64, sizeof(b64), der, sizeof(der), sodium_base64_VARIANT_ORIGINAL);
	snprintf(pem, cap, "%s\n%s\n%s\n", pem_begin, b64, pem_end);
	sodium_memzero(der, sizeof(der));
	sodium_memzero(b64, sizeof(b64));
	*out = pem;
	return 0;
}

void
am_pem_free(char *pem)
{
	if (pem != NULL) {
		sodium_memzero(pem, strlen(pem));
		free(pem);
	}
}

int
am_identity_save_pem(const am_identity *id, const char *path, bool overwrite)
{
	char *pem = NULL;
	int rc = am_identity_to_pem(&pem, id);

	if (rc != 0)
		return rc;
	rc = am_file_write_atomic(path, pem, strlen(pem), 0600, overwrite);
	am_pem_free(pem);
	return rc;
}

/* ------------------------------------------------------------- ids --- */

static void
hex_format(char *out, const uint8_t *bin, size_t n)
{
	sodium_bin2hex(out, n * 2 + 1, bin, n);
}

static int
hex_parse(uint8_t *bin, size_t n, const char *what, const char *text)
{
	size_t got = 0;
	const char *end = NULL;

	if (text == NULL || strlen(text) != n * 2 ||
	    sodium_hex2bin(bin, n, text, n * 2, NULL, &got, &end) != 0 || got != n)
		return am_error_set(AM_EFIELD, "%s must be %zu hex characters, got \"%.80s\"",
		    what, n * 2, text ? text : "");
	return 0;
}

void
am_node_id_format(char out[static AM_NODE_ID_LEN + 1], const uint8_t pk[static AM_PK_BYTES])
{
	hex_format(out, pk, AM_PK_BYTES);
}

int
am_node_id_parse(uint8_t pk[static AM_PK_BYTES], const char *text)
{
	return hex_parse(pk, AM_PK_BYTES, "node id", text);
}

void
am_id_format(char out[static AM_ID_HEX_LEN + 1], const uint8_t id[static AM_ID_BYTES])
{
	hex_format(out, id, AM_ID_BYTES);
}

int
am_id_parse(uint8_t id[static AM_ID_BYTES], const char *text)
{
	return hex_parse(id, AM_ID_BYTES, "envelope id", text);
}
