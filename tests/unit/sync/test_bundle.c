/*
 * test_bundle.c — the bundle format: round trip, every truncation point and
 * 1000 random bit flips of a small bundle (no crash, a named error, and
 * nothing comes out that is not one of the original envelopes or does not
 * verify), a forged header, reordered blocks, and the id index.
 */
#include "am_sync.h"
#include "../../check.h"
#include "../../membuf.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define N 40

static uint8_t *envs[N];
static size_t lens[N];
static uint8_t ids[N][32];

struct seen {
	unsigned found, genuine, verified, foreign;
	bool bytes_only; /* truncation cannot alter bytes: compare, skip verify */
};

static int
on_env(void *ctx, const uint8_t *env, size_t len, uint64_t off)
{
	struct seen *s = ctx;
	am_envelope e;
	bool genuine = false;

	(void) off;
	s->found++;
	for (int i = 0; i < N && !genuine; i++)
		genuine = len == lens[i] && memcmp(env, envs[i], len) == 0;
	s->genuine += genuine;
	if (s->bytes_only) {
		s->verified += genuine;
		s->foreign += !genuine;
		return 0;
	}
	if (am_envelope_decode_view(&e, env, len, NULL) == 0) {
		bool ours = false;
		s->verified++;
		/* hops_left is not signed: a flip there still verifies, as the
		 * same envelope (same id) */
		for (int i = 0; i < N && !ours; i++)
			ours = memcmp(e.id, ids[i], 32) == 0;
		if (!ours)
			s->foreign++; /* verified but not ours: must never happen */
	}
	return 0;
}

static void
build(struct membuf *out, am_identity *me, size_t block_fill_hint)
{
	am_bundle_writer *w = NULL;
	uint8_t hdr[AM_BUNDLE_HDR_LEN];

	(void) block_fill_hint;
	out->len = 0;
	REQUIRE(am_bundle_writer_new(&w, me, 1767225600000ull, NULL, membuf_write, out) == 0);
	am_bundle_writer_set_block(w, 2048); /* several blocks in a small bundle */
	for (int i = 0; i < N; i++)
		REQUIRE(am_bundle_writer_add(w, envs[i], lens[i], ids[i]) == 0);
	CHECK(am_bundle_writer_count(w) == N);
	REQUIRE(am_bundle_writer_finish(w, hdr) == 0);
	memcpy(out->buf, hdr, sizeof(hdr));
	am_bundle_writer_free(w);
}

int
main(void)
{
	am_identity *me = NULL, *other = NULL;
	struct membuf b = {0};
	am_bundle_info info;
	struct seen s;
	uint8_t seed[32] = {4};

	REQUIRE(am_core_init() == 0);
	REQUIRE(am_identity_from_seed(&me, seed) == 0);
	seed[0] = 5;
	REQUIRE(am_identity_from_seed(&other, seed) == 0);
	for (int i = 0; i < N; i++) {
		am_envelope_spec sp = {0};
		char text[300];
		snprintf(text, sizeof(text), "envelope %d: %s", i, i % 3 ? "short" :
		    "a longer payload that repeats, a longer payload that repeats, a longer payload that repeats");
		sp.dest_kind = AM_DEST_BROADCAST;
		sp.created_ms = 1767225600000ull + (uint64_t) i;
		sp.expires_ms = sp.created_ms + 3600000;
		sp.payload = (const uint8_t *) text;
		sp.payload_len = strlen(text);
		REQUIRE(am_envelope_create(&envs[i], &lens[i], ids[i], &sp, me) == 0);
	}
	build(&b, me, 0);

	/* whole: everything, verified, no damage */
	memset(&s, 0, sizeof(s));
	CHECK_RC(am_bundle_read(&info, b.buf, b.len, on_env, NULL, &s), 0);
	CHECK(info.header_ok && info.sig_ok && info.hash_ok && info.count == N && info.damaged == 0);
	CHECK(s.found == N && s.genuine == N && s.verified == N);
	CHECK(memcmp(info.writer, am_identity_pk(me), 32) == 0);
	{
		const uint8_t *idx;
		size_t n;
		CHECK_RC(am_bundle_read_index(&info, b.buf, b.len, &idx, &n), 0);
		CHECK(n == N && memcmp(idx, ids[0], 32) == 0 && memcmp(idx + 32 * (N - 1), ids[N - 1], 32) == 0);
	}

	/* every truncation point */
	unsigned partial = 0;
	for (size_t cut = 0; cut < b.len; cut++) {
		int rc;
		memset(&s, 0, sizeof(s));
		s.bytes_only = true;
		rc = am_bundle_read(&info, b.buf, cut, on_env, NULL, &s);
		CHECK(rc != 0);
		CHECK(s.foreign == 0);
		CHECK(s.verified == s.found); /* truncation never yields a damaged record */
		partial += s.found > 0 && s.found < N;
	}
	CHECK(partial > 0); /* cuts after the first block keep what came before */

	/* 1000 random bit flips */
	unsigned flips_found = 0, refused = 0;
	for (int k = 0; k < 1000; k++) {
		size_t at = AM_BUNDLE_HDR_LEN > 0 ? randombytes_uniform((uint32_t) b.len) : 0;
		uint8_t bit = (uint8_t) (1u << randombytes_uniform(8));
		int rc;
		b.buf[at] ^= bit;
		memset(&s, 0, sizeof(s));
		rc = am_bundle_read(&info, b.buf, b.len, on_env, NULL, &s);
		b.buf[at] ^= bit;
		CHECK(rc != 0);
		refused += rc != 0;
		CHECK(s.foreign == 0);
		flips_found += s.verified;
	}
	CHECK(refused == 1000);
	CHECK(flips_found > 1000 * (N / 2)); /* a flip loses one block, not the file */

	/* a header re-signed by someone else: still usable envelope by envelope */
	{
		struct membuf forged = {0};
		build(&forged, other, 0);
		memset(&s, 0, sizeof(s));
		CHECK_RC(am_bundle_read(&info, forged.buf, forged.len, on_env, NULL, &s), 0);
		CHECK(info.sig_ok && memcmp(info.writer, am_identity_pk(other), 32) == 0);
		CHECK(s.verified == N); /* the envelopes are A's and verify as A's */
		/* a header whose writer field was swapped without re-signing */
		memcpy(forged.buf + 10, am_identity_pk(me), 32);
		memset(&s, 0, sizeof(s));
		CHECK_RC(am_bundle_read(&info, forged.buf, forged.len, on_env, NULL, &s), AM_EBADSIG);
		CHECK(!info.sig_ok && s.verified == N);
		free(forged.buf);
	}

	/* two blocks swapped: hash fails, every envelope still arrives */
	{
		uint8_t *copy = malloc(b.len);
		size_t first = AM_BUNDLE_HDR_LEN, second, third;
		uint32_t clen1, clen2;
		memcpy(copy, b.buf, b.len);
		clen1 = (uint32_t) copy[first + 13] << 24 | copy[first + 14] << 16 | copy[first + 15] << 8 | copy[first + 16];
		second = first + 17 + clen1;
		if (memcmp(copy + second, "BLK1", 4) == 0) {
			clen2 = (uint32_t) copy[second + 13] << 24 | copy[second + 14] << 16 | copy[second + 15] << 8 |
			    copy[second + 16];
			third = second + 17 + clen2;
			memcpy(copy + first, b.buf + second, third - second);
			memcpy(copy + first + (third - second), b.buf + first, second - first);
			memset(&s, 0, sizeof(s));
			CHECK_RC(am_bundle_read(&info, copy, b.len, on_env, NULL, &s), AM_EBADSIG);
			CHECK(s.verified == N && !info.hash_ok);
		}
		free(copy);
	}

	/* not a bundle at all; another version */
	CHECK_RC(am_bundle_read(&info, (const uint8_t *) "hello", 5, on_env, NULL, &s), AM_ETRUNC);
	{
		uint8_t v2[AM_BUNDLE_HDR_LEN + 10];
		memcpy(v2, b.buf, sizeof(v2));
		v2[8] = 2;
		CHECK_RC(am_bundle_read(&info, v2, sizeof(v2), on_env, NULL, &s), AM_EVERSION);
	}

	for (int i = 0; i < N; i++)
		free(envs[i]);
	free(b.buf);
	am_identity_free(me);
	am_identity_free(other);
	return check_done("test_bundle");
}
