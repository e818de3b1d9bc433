/*
 * test_pair.c — the pairing code's pieces (src/trust/pair.c): the
 * docs/PROTOCOL.md §20 vector (computed there with Python's hashlib, an
 * implementation of BLAKE2b of its own), claims, sealed grants opened
 * only with the code and for the node they were made for, and the join
 * argument as typed.
 */
#include "am_trust.h"
#include "../../check.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void
hex_is(const uint8_t *bin, size_t n, const char *want)
{
	char hex[129];

	sodium_bin2hex(hex, sizeof(hex), bin, n);
	CHECK(strcmp(hex, want) == 0);
	if (strcmp(hex, want) != 0)
		fprintf(stderr, "  got  %s\n  want %s\n", hex, want);
}

static void
test_vector(void)
{
	uint8_t code[AM_PAIR_CODE_BYTES], pk[AM_PK_BYTES], proof[32];
	char text[AM_PAIR_CODE_TEXT];
	am_pair_keys k;

	for (int i = 0; i < AM_PAIR_CODE_BYTES; i++)
		code[i] = (uint8_t) i;
	memset(pk, 0x11, sizeof(pk));
	am_pair_code_format(text, code);
	CHECK(strcmp(text, "0001-0203-0405-0607-0809-0a0b") == 0);
	am_pair_keys_derive(&k, code);
	hex_is(k.claim_key, 32, "5ee6ea5b2efc74a7af86709e2a7bcbdffc61f98442db1e5f2bc2dded4ea87a5c");
	hex_is(k.box_key, 32, "ab628ee0c0b44e60b9b4d23d1be6761a387102a3861dcf4b43955bd32237fd7f");
	am_pair_proof(proof, &k, pk);
	hex_is(proof, 32, "436e094b52eafc5cb0458b428045f635896809276e24e81ead915378b351cfc4");
}

static void
test_code_text(void)
{
	uint8_t code[AM_PAIR_CODE_BYTES], back[AM_PAIR_CODE_BYTES];
	char text[AM_PAIR_CODE_TEXT];

	am_pair_code_new(code, text);
	CHECK(strlen(text) == AM_PAIR_CODE_TEXT - 1);
	CHECK_RC(am_pair_code_parse(back, text), 0);
	CHECK(memcmp(code, back, sizeof(code)) == 0);
	/* as a person types it */
	CHECK_RC(am_pair_code_parse(back, "0001 0203 0405 0607 0809 0A0B"), 0);
	CHECK(back[11] == 0x0b && back[0] == 0);
	CHECK_RC(am_pair_code_parse(back, "000102030405060708090a0b"), 0);
	CHECK_RC(am_pair_code_parse(back, "0001-0203-0405-0607-0809-0a0"), AM_EFIELD);   /* 23 digits */
	CHECK_RC(am_pair_code_parse(back, "0001-0203-0405-0607-0809-0a0b0"), AM_EFIELD); /* 25 */
	CHECK_RC(am_pair_code_parse(back, "0001-0203-0405-0607-0809-0a0g"), AM_EFIELD);
	CHECK_RC(am_pair_code_parse(back, ""), AM_EFIELD);
}

static void
test_claim_and_grant(void)
{
	uint8_t code[AM_PAIR_CODE_BYTES], other[AM_PAIR_CODE_BYTES], pk[AM_PK_BYTES], pk2[AM_PK_BYTES], got_pk[AM_PK_BYTES];
	uint8_t proof[32], want[32];
	char text[AM_PAIR_CODE_TEXT], name[AM_TAG_MAX + 1], *claim = NULL, *sealed = NULL, *plain = NULL;
	const char *grant = "{\"network_key\":\"secret\"}";
	am_pair_keys k, k2;
	size_t plen = 0;

	am_pair_code_new(code, text);
	am_pair_code_new(other, text);
	am_pair_keys_derive(&k, code);
	am_pair_keys_derive(&k2, other);
	randombytes_buf(pk, sizeof(pk));
	randombytes_buf(pk2, sizeof(pk2));

	REQUIRE(am_pair_claim_make(&claim, &k, pk, "edge_node_1") == 0);
	CHECK(strstr(claim, text) == NULL);
	CHECK_RC(am_pair_claim_parse(claim, strlen(claim), got_pk, name, proof), 0);
	CHECK(memcmp(got_pk, pk, sizeof(pk)) == 0 && strcmp(name, "edge_node_1") == 0);
	am_pair_proof(want, &k, pk);
	CHECK(memcmp(want, proof, 32) == 0);
	am_pair_proof(want, &k2, pk); /* another code's proof differs */
	CHECK(memcmp(want, proof, 32) != 0);
	free(claim);

	CHECK_RC(am_pair_claim_parse("[]", 2, got_pk, name, proof), AM_EMALFORMED);
	CHECK_RC(am_pair_claim_parse("{\"node\":\"zz\"}", 13, got_pk, name, proof), AM_EFIELD);
	{
		char bad[300];
		char id[AM_NODE_ID_LEN + 1];
		am_node_id_format(id, pk);
		snprintf(bad, sizeof(bad), "{\"node\":\"%s\",\"name\":\"a b\",\"proof\":\"%064d\"}", id, 0);
		CHECK_RC(am_pair_claim_parse(bad, strlen(bad), got_pk, name, proof), AM_EFIELD); /* a name with a space */
		snprintf(bad, sizeof(bad), "{\"node\":\"%s\",\"name\":\"n\",\"proof\":\"00\"}", id);
		CHECK_RC(am_pair_claim_parse(bad, strlen(bad), got_pk, name, proof), AM_EFIELD);
	}

	REQUIRE(am_pair_seal(&sealed, &k, pk, grant, strlen(grant)) == 0);
	CHECK(strstr(sealed, "secret") == NULL);
	CHECK_RC(am_pair_open(&plain, &plen, &k, pk, sealed, strlen(sealed)), 0);
	CHECK(plain != NULL && plen == strlen(grant) && strcmp(plain, grant) == 0);
	free(plain);
	/* another code, another node: nothing opens */
	CHECK_RC(am_pair_open(&plain, &plen, &k2, pk, sealed, strlen(sealed)), AM_EBADSIG);
	CHECK(plain == NULL);
	CHECK_RC(am_pair_open(&plain, &plen, &k, pk2, sealed, strlen(sealed)), AM_EBADSIG);
	/* one digit changed */
	{
		char *t = strdup(sealed), *h = strstr(t, "\":\"") + 3;
		h[40] = h[40] == '0' ? '1' : '0';
		CHECK_RC(am_pair_open(&plain, &plen, &k, pk, t, strlen(t)), AM_EBADSIG);
		free(t);
	}
	CHECK_RC(am_pair_open(&plain, &plen, &k, pk, "{\"grant\":\"00\"}", 14), AM_EMALFORMED);
	CHECK_RC(am_pair_open(&plain, &plen, &k, pk, "nope", 4), AM_EMALFORMED);
	free(sealed);
}

static void
test_join_argument(void)
{
	char url[160], host[96];
	uint8_t code[AM_PAIR_CODE_BYTES];
	const char *c = "0001-0203-0405-0607-0809-0a0b";
	char arg[200];

	snprintf(arg, sizeof(arg), "10.0.0.5:8787/%s", c);
	CHECK_RC(am_pair_join_parse(arg, url, host, code), 0);
	CHECK(strcmp(url, "http://10.0.0.5:8787") == 0 && strcmp(host, "10.0.0.5") == 0 && code[11] == 0x0b);
	snprintf(arg, sizeof(arg), "http://gw.site.local:8787/%s", c);
	CHECK_RC(am_pair_join_parse(arg, url, host, code), 0);
	CHECK(strcmp(url, "http://gw.site.local:8787") == 0 && strcmp(host, "gw.site.local") == 0);
	snprintf(arg, sizeof(arg), "[fd00::5]:8787/%s", c);
	CHECK_RC(am_pair_join_parse(arg, url, host, code), 0);
	CHECK(strcmp(url, "http://[fd00::5]:8787") == 0 && strcmp(host, "[fd00::5]") == 0);
	snprintf(arg, sizeof(arg), "10.0.0.5/%s", c); /* no port */
	CHECK_RC(am_pair_join_parse(arg, url, host, code), AM_EFIELD);
	snprintf(arg, sizeof(arg), "10.0.0.5:87a7/%s", c);
	CHECK_RC(am_pair_join_parse(arg, url, host, code), AM_EFIELD);
	snprintf(arg, sizeof(arg), "10.0.0.5:8787/%s", "1234");
	CHECK_RC(am_pair_join_parse(arg, url, host, code), AM_EFIELD);
	CHECK_RC(am_pair_join_parse(c, url, host, code), AM_EFIELD); /* the code alone */
	snprintf(arg, sizeof(arg), "a b:8787/%s", c);
	CHECK_RC(am_pair_join_parse(arg, url, host, code), AM_EFIELD);
}

int
main(void)
{
	REQUIRE(am_core_init() == 0);
	test_vector();
	test_code_text();
	test_claim_and_grant();
	test_join_argument();
	return check_done("test_pair");
}
