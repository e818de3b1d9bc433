/*
 * test_vectors.c — the checked-in vectors decode as documented: every
 * positive one verifies with the stated id, signature and fields; every
 * negative one is refused with the stated error code.
 *
 * usage: test_vectors tests/vectors/envelopes.json
 */
#include "am_core.h"
#include "../check.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

static const struct {
	const char *name;
	int code;
} codes[] = {{"AM_ETRUNC", AM_ETRUNC}, {"AM_ETRAILING", AM_ETRAILING}, {"AM_EMALFORMED", AM_EMALFORMED},
    {"AM_EVERSION", AM_EVERSION}, {"AM_EBADSIG", AM_EBADSIG}, {"AM_ETOOBIG", AM_ETOOBIG}, {"AM_ELIMIT", AM_ELIMIT},
    {"AM_EFIELD", AM_EFIELD}, {"AM_EGEO", AM_EGEO}};

static uint8_t *
unhex(const char *h, size_t *n)
{
	size_t hl = strlen(h);
	uint8_t *p = malloc(hl / 2 + 1);

	REQUIRE(sodium_hex2bin(p, hl / 2 + 1, h, hl, NULL, n, NULL) == 0);
	return p;
}

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	REQUIRE(s != NULL);
	return s;
}

int
main(int argc, char **argv)
{
	json_error_t err;
	json_t *root, *v;
	size_t i;

	REQUIRE(argc == 2 && am_core_init() == 0);
	root = json_load_file(argv[1], 0, &err);
	if (root == NULL) {
		fprintf(stderr, "%s:%d: %s\n", argv[1], err.line, err.text);
		return 1;
	}
	json_array_foreach(json_object_get(root, "positive"), i, v) {
		size_t n, plen;
		uint8_t *e = unhex(str(v, "envelope"), &n), *payload = NULL;
		am_envelope env;
		char idhex[65], sighex[129], src[65];
		CHECK_RC(am_envelope_decode(&env, e, n), 0);
		am_id_format(idhex, env.id);
		sodium_bin2hex(sighex, sizeof(sighex), env.sig, 64);
		am_node_id_format(src, env.body.src);
		CHECK(strcmp(idhex, str(v, "id")) == 0);
		CHECK(strcmp(sighex, str(v, "signature")) == 0);
		CHECK(strcmp(src, str(v, "signer_pk")) == 0);
		CHECK(strcmp(env.body.type, str(v, "type")) == 0);
		CHECK(env.body.created_ms == (uint64_t) json_integer_value(json_object_get(v, "created")));
		CHECK(env.body.expires_ms == (uint64_t) json_integer_value(json_object_get(v, "expires")));
		CHECK(env.body.priority == json_integer_value(json_object_get(v, "prio")));
		CHECK(env.body.compressed == json_is_true(json_object_get(v, "zlib")));
		CHECK(env.hops_left == json_integer_value(json_object_get(v, "hops_left")));
		CHECK_RC(am_envelope_payload(&payload, &plen, &env, NULL), 0);
		CHECK(plen == strlen(str(v, "payload_text")) && memcmp(payload, str(v, "payload_text"), plen) == 0);
		free(payload);
		am_envelope_clear(&env);
		free(e);
	}
	json_array_foreach(json_object_get(root, "negative"), i, v) {
		size_t n;
		uint8_t *e = unhex(str(v, "envelope"), &n);
		am_envelope env;
		int want = 0, got;
		for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++)
			if (strcmp(codes[k].name, str(v, "error")) == 0)
				want = codes[k].code;
		REQUIRE(want != 0);
		got = am_envelope_decode(&env, e, n);
		if (got != want)
			fprintf(stderr, "negative vector %s: got %s (%s)\n", str(v, "name"), am_strerror(got), am_error_detail());
		CHECK(got == want);
		CHECK(env.raw == NULL && env.body.payload == NULL); /* nothing handed out */
		free(e);
	}
	json_decref(root);
	return check_done("test_vectors");
}
