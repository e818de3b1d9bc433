/*
 * test_envelope.c — envelope round trips, compression and sealing, every
 * decode refusal (including each truncation point and every single-bit
 * flip of a small envelope), the hop rewrite and the limits.
 */
#define _GNU_SOURCE
#include "am_core.h"
#include "../../check.h"

#include <sodium.h>
#include <string.h>

static am_identity *alice, *bob;

static void
spec_init(am_envelope_spec *s, const void *payload, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->dest_kind = AM_DEST_NODE;
	memcpy(s->dest_node, am_identity_pk(bob), AM_PK_BYTES);
	s->created_ms = 1767225600000ull;
	s->expires_ms = s->created_ms + 3600000;
	s->priority = AM_PRIO_NORMAL;
	s->payload = payload;
	s->payload_len = n;
}

static void
test_roundtrip(void)
{
	am_envelope_spec s;
	am_envelope e;
	uint8_t *raw = NULL, *p = NULL, id[32];
	size_t len, plen;
	char text[2000];

	memset(text, 'a', sizeof(text));
	spec_init(&s, text, sizeof(text));
	s.workflow_id = "wf-1";
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
	CHECK(len < sizeof(text)); /* 2000 equal bytes compress */
	CHECK_RC(am_envelope_decode(&e, raw, len), 0);
	CHECK(memcmp(e.id, id, 32) == 0);
	CHECK(e.body.compressed);
	CHECK(strcmp(e.body.workflow_id, "wf-1") == 0);
	CHECK(strcmp(e.body.type, "message") == 0);
	CHECK(e.hops_left == AM_DEFAULT_HOPS);
	CHECK_RC(am_envelope_payload(&p, &plen, &e, NULL), 0);
	CHECK(plen == sizeof(text) && memcmp(p, text, plen) == 0);
	free(p);
	/* peek gives the same id without verifying */
	{
		uint8_t pid[32], hops;
		CHECK_RC(am_envelope_peek(pid, &hops, raw, len), 0);
		CHECK(memcmp(pid, id, 32) == 0 && hops == AM_DEFAULT_HOPS);
	}
	/* a view decodes the same without copying, and refuses the same */
	{
		am_envelope v;
		uint8_t pid[32];
		CHECK_RC(am_envelope_peek(pid, NULL, raw, len), 0);
		CHECK_RC(am_envelope_decode_view(&v, raw, len, pid), 0);
		CHECK(v.raw == NULL && v.body_bytes > raw && v.body_bytes < raw + len);
		CHECK(memcmp(v.id, id, 32) == 0 && v.body.payload_len == e.body.payload_len);
		CHECK_RC(am_envelope_decode_view(&v, raw, len, NULL), 0);
		CHECK(memcmp(v.id, id, 32) == 0);
		raw[len / 2] ^= 1;
		CHECK(am_envelope_decode_view(&v, raw, len, pid) != 0);
		CHECK(v.body.payload == NULL && v.body_bytes == NULL);
		raw[len / 2] ^= 1;
		am_envelope_clear(&v);
	}
	/* hop rewrite keeps the signature valid and the id stable */
	CHECK_RC(am_envelope_set_hops(raw, len, 3), 0);
	am_envelope_clear(&e);
	CHECK_RC(am_envelope_decode(&e, raw, len), 0);
	CHECK(e.hops_left == 3 && memcmp(e.id, id, 32) == 0);
	am_envelope_clear(&e);
	free(raw);

	/* random bytes do not shrink: sent as they are */
	randombytes_buf(text, sizeof(text));
	spec_init(&s, text, sizeof(text));
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
	CHECK_RC(am_envelope_decode(&e, raw, len), 0);
	CHECK(!e.body.compressed);
	am_envelope_clear(&e);
	free(raw);

	/* two sends of the same thing are distinct envelopes (nonce) */
	{
		uint8_t *r2 = NULL, id2[32];
		size_t l2;
		spec_init(&s, "x", 1);
		CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
		CHECK_RC(am_envelope_create(&r2, &l2, id2, &s, alice), 0);
		CHECK(memcmp(id, id2, 32) != 0);
		free(raw);
		free(r2);
	}
}

/* create_decoded fills its view from the spec: it must equal what a
 * decoder reads from the bytes */
static void
test_create_decoded(void)
{
	const char *texts[] = {"short", "a longer text that repeats, a longer text that repeats, a longer text that repeats"};
	am_geo g;

	REQUIRE(am_geo_parse(&g, "polygon:1,1;1,2;2,2") == 0);
	for (int t = 0; t < 2; t++)
		for (int seal = 0; seal < 2; seal++) {
			am_envelope_spec s;
			am_envelope a, b;
			uint8_t ref[32] = {5};
			spec_init(&s, texts[t], strlen(texts[t]));
			s.seal = seal;
			s.ref = ref;
			s.workflow_id = "wf";
			s.geo = &g;
			s.type = "tool_call";
			CHECK_RC(am_envelope_create_decoded(&a, &s, alice), 0);
			CHECK_RC(am_envelope_decode(&b, a.raw, a.raw_len), 0);
			CHECK(memcmp(a.id, b.id, 32) == 0 && memcmp(a.sig, b.sig, 64) == 0);
			CHECK(a.hops_left == b.hops_left && a.body_len == b.body_len);
			CHECK(a.body.payload_len == b.body.payload_len &&
			    memcmp(a.body.payload, b.body.payload, a.body.payload_len) == 0);
			CHECK(a.body.payload - a.raw == b.body.payload - b.raw);
			CHECK(a.body.compressed == b.body.compressed && a.body.sealed == b.body.sealed);
			CHECK(strcmp(a.body.type, b.body.type) == 0 && strcmp(a.body.content_type, b.body.content_type) == 0);
			CHECK(strcmp(a.body.workflow_id, b.body.workflow_id) == 0 && a.body.has_ref == b.body.has_ref);
			CHECK(memcmp(a.body.nonce, b.body.nonce, 8) == 0 && memcmp(a.body.src, b.body.src, 32) == 0);
			CHECK(a.body.geo.kind == b.body.geo.kind && a.body.geo.npoints == b.body.geo.npoints);
			CHECK(a.body.created_ms == b.body.created_ms && a.body.expires_ms == b.body.expires_ms);
			CHECK(memcmp(a.body.dest_node, b.body.dest_node, 32) == 0 && a.body.dest_kind == b.body.dest_kind);
			am_envelope_clear(&a);
			am_envelope_clear(&b);
		}
}

static void
test_sealed(void)
{
	am_envelope_spec s;
	am_envelope e;
	uint8_t *raw = NULL, *p = NULL, id[32];
	size_t len, plen;
	const char *secret = "the gate code is 4711, repeated: the gate code is 4711, repeated: 4711";

	spec_init(&s, secret, strlen(secret));
	s.seal = true;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
	CHECK(memmem(raw, len, "4711", 4) == NULL);
	CHECK_RC(am_envelope_decode(&e, raw, len), 0);
	CHECK(e.body.sealed);
	CHECK_RC(am_envelope_payload(&p, &plen, &e, NULL), AM_ESEAL);
	CHECK_RC(am_envelope_payload(&p, &plen, &e, alice), AM_ESEAL);
	CHECK(p == NULL);
	CHECK_RC(am_envelope_payload(&p, &plen, &e, bob), 0);
	CHECK(plen == strlen(secret) && memcmp(p, secret, plen) == 0);
	free(p);
	am_envelope_clear(&e);
	free(raw);
	/* sealing needs a single node */
	s.dest_kind = AM_DEST_BROADCAST;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);
}

static void
test_refusals(void)
{
	am_envelope_spec s;
	am_envelope e;
	uint8_t *raw = NULL, id[32];
	size_t len;
	int bad_sig = 0, other = 0;

	spec_init(&s, "hello there", 11);
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
	/* every truncation point is refused, none crashes */
	for (size_t cut = 0; cut < len; cut++) {
		int rc = am_envelope_decode(&e, raw, cut);
		CHECK(rc != 0);
		CHECK(e.raw == NULL);
	}
	/* every single-bit flip is refused */
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b++) {
			int rc;
			raw[i] ^= (uint8_t) (1 << b);
			rc = am_envelope_decode(&e, raw, len);
			/* flipping hops_left is allowed: it is outside the signature */
			if (i == len - 1) {
				CHECK(rc == 0);
				am_envelope_clear(&e);
			} else {
				CHECK(rc != 0);
				CHECK(e.body.payload == NULL);
				if (rc == AM_EBADSIG)
					bad_sig++;
				else
					other++;
			}
			raw[i] ^= (uint8_t) (1 << b);
		}
	}
	CHECK(bad_sig > 0 && other > 0);
	free(raw);

	/* limits on create */
	{
		uint8_t *big = calloc(1, AM_MAX_PAYLOAD + 1);
		spec_init(&s, big, AM_MAX_PAYLOAD + 1);
		CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_ETOOBIG);
		spec_init(&s, big, AM_MAX_PAYLOAD);
		s.no_compress = true;
		CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
		CHECK_RC(am_envelope_decode(&e, raw, len), 0);
		am_envelope_clear(&e);
		free(raw);
		free(big);
	}
	spec_init(&s, "x", 1);
	s.priority = 4;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);
	spec_init(&s, "x", 1);
	s.expires_ms = s.created_ms;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);
	/* lifetimes have a ceiling (accepted on ee90c10) */
	spec_init(&s, "x", 1);
	s.expires_ms = UINT64_MAX;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);
	spec_init(&s, "x", 1);
	s.expires_ms = s.created_ms + AM_MAX_LIFETIME_MS + 1;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);
	spec_init(&s, "x", 1);
	s.expires_ms = s.created_ms + AM_MAX_LIFETIME_MS;
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
	free(raw);
	spec_init(&s, "x", 1);
	s.dest_kind = AM_DEST_GROUP;
	s.dest_group = "bad group!";
	CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), AM_EFIELD);

	/* an oversize envelope is refused before anything else */
	{
		size_t n = AM_MAX_ENVELOPE + 1;
		uint8_t *junk = calloc(1, n);
		junk[0] = 0x94;
		CHECK_RC(am_envelope_decode(&e, junk, n), AM_ETOOBIG);
		free(junk);
	}
	/* a decompression bomb is refused by am_envelope_payload */
	{
		uint8_t *zeros = calloc(1, AM_MAX_PAYLOAD);
		uint8_t *p = NULL;
		size_t plen;
		spec_init(&s, zeros, AM_MAX_PAYLOAD);
		CHECK_RC(am_envelope_create(&raw, &len, id, &s, alice), 0);
		CHECK(len < 8192);
		CHECK_RC(am_envelope_decode(&e, raw, len), 0);
		CHECK_RC(am_envelope_payload(&p, &plen, &e, NULL), 0);
		CHECK(plen == AM_MAX_PAYLOAD);
		free(p);
		am_envelope_clear(&e);
		free(raw);
		free(zeros);
	}
}

static void
test_text(void)
{
	uint64_t ms;
	uint8_t pk[32];

	CHECK_RC(am_duration_parse(&ms, "2h"), 0);
	CHECK(ms == 7200000);
	CHECK_RC(am_duration_parse(&ms, "500ms"), 0);
	CHECK(ms == 500);
	CHECK_RC(am_duration_parse(&ms, "7d"), 0);
	CHECK_RC(am_duration_parse(&ms, "90"), 0);
	CHECK(ms == 90000);
	CHECK_RC(am_duration_parse(&ms, "2 h"), AM_EFIELD);
	CHECK_RC(am_duration_parse(&ms, "-1h"), AM_EFIELD);
	CHECK_RC(am_duration_parse(&ms, "0s"), AM_EFIELD);
	CHECK_RC(am_node_id_parse(pk, "zz"), AM_EFIELD);
	CHECK_RC(am_node_id_parse(pk, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg"), AM_EFIELD);
	CHECK_RC(am_node_id_parse(pk, "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"), 0);
	CHECK(pk[10] == 0xaa);
}

int
main(void)
{
	uint8_t seed[32] = {1};

	REQUIRE(am_core_init() == 0);
	REQUIRE(am_identity_from_seed(&alice, seed) == 0);
	seed[0] = 2;
	REQUIRE(am_identity_from_seed(&bob, seed) == 0);
	test_roundtrip();
	test_create_decoded();
	test_sealed();
	test_refusals();
	test_text();
	am_identity_free(alice);
	am_identity_free(bob);
	return check_done("test_envelope");
}
