/*
 * test_identity.c — PKCS#8 PEM round trips, openssl-made keys, refusal of
 * other key types and damaged files, atomic no-overwrite saving.
 */
#define _GNU_SOURCE
#include "am_core.h"
#include "../../check.h"

#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* `openssl genpkey -algorithm ed25519` output for seed 0x00..0x1f (RFC 8410 layout). */
static const char openssl_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n"
    "-----END PRIVATE KEY-----\n";

static const char rsa_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+LQmlQ\n"
    "-----END PRIVATE KEY-----\n";

int
main(void)
{
	am_identity *a = NULL, *b = NULL;
	uint8_t seed[32];
	char *pem = NULL, dir[] = "/tmp/am-test-id-XXXXXX", path[256];
	struct stat st;

	REQUIRE(am_core_init() == 0);
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t) i;
	CHECK_RC(am_identity_parse_pem(&a, openssl_pem, strlen(openssl_pem)), 0);
	CHECK_RC(am_identity_from_seed(&b, seed), 0);
	CHECK(a && b && memcmp(am_identity_pk(a), am_identity_pk(b), 32) == 0);
	CHECK_RC(am_identity_to_pem(&pem, b), 0);
	CHECK(strcmp(pem, openssl_pem) == 0);
	am_pem_free(pem);
	am_identity_free(a);
	a = NULL;

	/* refusals, each named */
	CHECK_RC(am_identity_parse_pem(&a, "hello", 5), AM_EPEM);
	CHECK_RC(am_identity_parse_pem(&a, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", 66),
	    AM_EKEY);
	CHECK(strstr(am_error_detail(), "EC PRIVATE KEY") != NULL);
	CHECK_RC(am_identity_parse_pem(&a, rsa_pem, strlen(rsa_pem)), AM_EKEY);
	CHECK_RC(am_identity_parse_pem(&a, openssl_pem, 40), AM_EPEM); /* cut before END */
	{
		char bad[sizeof(openssl_pem)];
		memcpy(bad, openssl_pem, sizeof(bad));
		bad[40] = '!';
		CHECK_RC(am_identity_parse_pem(&a, bad, strlen(bad)), AM_EPEM);
	}
	CHECK(a == NULL);

	/* save: mode 0600, refuse overwrite unless asked, load back */
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/k.pem", dir);
	CHECK_RC(am_identity_save_pem(b, path, false), 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK_RC(am_identity_save_pem(b, path, false), AM_EEXIST);
	CHECK_RC(am_identity_save_pem(b, path, true), 0);
	CHECK_RC(am_identity_load_pem(&a, path), 0);
	CHECK(a && memcmp(am_identity_pk(a), am_identity_pk(b), 32) == 0);
	am_identity_free(a);
	a = NULL;
	snprintf(path, sizeof(path), "%s/missing.pem", dir);
	CHECK_RC(am_identity_load_pem(&a, path), AM_EIO);
	CHECK(strstr(am_error_detail(), "missing.pem") != NULL);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	CHECK(system(path) == 0);

	/* sign/verify with the raw primitive agrees */
	{
		uint8_t sig[64];
		am_identity_sign(b, sig, (const uint8_t *) "abc", 3);
		CHECK(crypto_sign_verify_detached(sig, (const uint8_t *) "abc", 3, am_identity_pk(b)) == 0);
	}
	am_identity_free(b);
	return check_done("test_identity");
}
