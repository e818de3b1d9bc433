/*
 * test_reconcile.c — range-based reconciliation finds exactly the
 * difference, both ways, for empty, equal, disjoint and overlapping sets
 * with equal timestamps; refuses malformed messages without changing its
 * results; and its traffic grows with the difference.
 */
#include "am_sync.h"
#include "../../check.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_item(const void *a, const void *b)
{
	const am_recon_item *x = a, *y = b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return memcmp(x->id, y->id, AM_ID_BYTES);
}

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, AM_ID_BYTES);
}

static bool
same_set(const uint8_t *got, size_t ng, const am_recon_item *want, size_t nw)
{
	uint8_t *g = malloc(ng * 32 + 1), *w = malloc(nw * 32 + 1);
	bool ok = ng == nw;

	memcpy(g, got, ng * 32);
	for (size_t i = 0; i < nw; i++)
		memcpy(w + i * 32, want[i].id, 32);
	qsort(g, ng, 32, cmp_id);
	qsort(w, nw, 32, cmp_id);
	ok = ok && memcmp(g, w, ng * 32) == 0;
	free(g);
	free(w);
	return ok;
}

/* Run a whole exchange; returns the number of messages. */
static int
run(am_recon *a, am_recon *b, size_t *bytes_ab, size_t *bytes_ba)
{
	uint8_t *msg = NULL, *out = NULL;
	size_t len = 0, olen = 0;
	am_recon *side[2] = {b, a};
	int msgs = 0, turn = 0;
	bool done = false;

	*bytes_ab = *bytes_ba = 0;
	REQUIRE(am_recon_initiate(a, &msg, &len) == 0);
	while (msg != NULL && msgs < 100) {
		msgs++;
		*(turn == 0 ? bytes_ab : bytes_ba) += len;
		REQUIRE(am_recon_reply(side[turn], msg, len, &out, &olen, &done) == 0);
		free(msg);
		msg = out;
		len = olen;
		turn ^= 1;
	}
	free(msg);
	return msgs;
}

static void
scenario(size_t shared, size_t only_a, size_t only_b, int same_ts, int *rounds, size_t *ab, size_t *ba)
{
	size_t na = shared + only_a, nb = shared + only_b;
	am_recon_item *all = malloc((shared + only_a + only_b + 1) * sizeof(*all));
	am_recon_item *A = malloc((na + 1) * sizeof(*A)), *B = malloc((nb + 1) * sizeof(*B));
	am_recon *ra = NULL, *rb = NULL;
	const uint8_t *ids;
	size_t n;

	for (size_t i = 0; i < shared + only_a + only_b; i++) {
		all[i].created_ms = same_ts ? 1000 : 1000 + randombytes_uniform(same_ts ? 1 : 50000);
		randombytes_buf(all[i].id, 32);
	}
	memcpy(A, all, shared * sizeof(*A));
	memcpy(A + shared, all + shared, only_a * sizeof(*A));
	memcpy(B, all, shared * sizeof(*B));
	memcpy(B + shared, all + shared + only_a, only_b * sizeof(*B));
	qsort(A, na, sizeof(*A), cmp_item);
	qsort(B, nb, sizeof(*B), cmp_item);
	REQUIRE(am_recon_new(&ra, A, na) == 0 && am_recon_new(&rb, B, nb) == 0);
	*rounds = run(ra, rb, ab, ba);
	ids = am_recon_peer_lacks(ra, &n);
	CHECK(same_set(ids, n, all + shared, only_a));
	ids = am_recon_peer_lacks(rb, &n);
	CHECK(same_set(ids, n, all + shared + only_a, only_b));
	am_recon_free(ra);
	am_recon_free(rb);
	free(all);
	free(A);
	free(B);
}

int
main(void)
{
	int rounds;
	size_t ab, ba;

	REQUIRE(am_core_init() == 0);
	scenario(0, 0, 0, 0, &rounds, &ab, &ba);
	CHECK(ab + ba < 64);
	scenario(5000, 0, 0, 0, &rounds, &ab, &ba);
	CHECK(rounds <= 2 && ab + ba < 512); /* equal sets: one round of fingerprints */
	scenario(0, 300, 0, 0, &rounds, &ab, &ba);
	scenario(0, 0, 300, 0, &rounds, &ab, &ba);
	scenario(0, 40, 50, 0, &rounds, &ab, &ba);
	scenario(3000, 1, 0, 0, &rounds, &ab, &ba);
	scenario(3000, 0, 1, 0, &rounds, &ab, &ba);
	scenario(3000, 17, 23, 0, &rounds, &ab, &ba);
	scenario(20000, 100, 100, 0, &rounds, &ab, &ba);
	CHECK(ab + ba < 100 * 2 * 32 * 20); /* well under sending the ids */
	scenario(2000, 30, 30, 1, &rounds, &ab, &ba); /* every timestamp equal */
	for (int k = 0; k < 20; k++)
		scenario(randombytes_uniform(3000), randombytes_uniform(80), randombytes_uniform(80), (int) (k % 3 == 0),
		    &rounds, &ab, &ba);

	/* malformed messages: refused by name, results untouched */
	{
		am_recon_item items[3];
		am_recon *r = NULL;
		uint8_t *out;
		size_t olen, n;
		bool done;
		for (int i = 0; i < 3; i++) {
			items[i].created_ms = (uint64_t) i + 1;
			memset(items[i].id, i + 1, 32);
		}
		REQUIRE(am_recon_new(&r, items, 3) == 0);
		const uint8_t v2[] = {2, 0, 0, 0};
		CHECK_RC(am_recon_reply(r, v2, sizeof(v2), &out, &olen, &done), AM_EVERSION);
		CHECK_RC(am_recon_reply(r, v2, 0, &out, &olen, &done), AM_ETRUNC);
		const uint8_t cut_fp[] = {1, 0, 0, 1, 1, 2, 3};
		CHECK_RC(am_recon_reply(r, cut_fp, sizeof(cut_fp), &out, &olen, &done), AM_ETRUNC);
		const uint8_t bad_mode[] = {1, 0, 0, 9};
		CHECK_RC(am_recon_reply(r, bad_mode, sizeof(bad_mode), &out, &olen, &done), AM_EMALFORMED);
		const uint8_t long_prefix[] = {1, 5, 33};
		CHECK_RC(am_recon_reply(r, long_prefix, sizeof(long_prefix), &out, &olen, &done), AM_EMALFORMED);
		const uint8_t huge_list[] = {1, 0, 0, 2, 0xff, 0xff, 0xff, 0x7f};
		CHECK_RC(am_recon_reply(r, huge_list, sizeof(huge_list), &out, &olen, &done), AM_ETRUNC);
		const uint8_t trailing[] = {1, 0, 0, 0, 7};
		CHECK_RC(am_recon_reply(r, trailing, sizeof(trailing), &out, &olen, &done), AM_EMALFORMED);
		/* a NEEDS naming ids we do not hold is not believed */
		uint8_t needs[1 + 1 + 1 + 1 + 1 + 64];
		size_t k = 0;
		needs[k++] = 1;
		needs[k++] = 0; /* infinity */
		needs[k++] = 0; /* prefix 0 */
		needs[k++] = 3; /* NEEDS */
		needs[k++] = 2;
		memset(needs + k, 0x77, 32);
		memcpy(needs + k + 32, items[1].id, 32);
		CHECK_RC(am_recon_reply(r, needs, sizeof(needs), &out, &olen, &done), 0);
		am_recon_peer_lacks(r, &n);
		CHECK(n == 1);
		am_recon_free(r);
		/* unsorted input is refused */
		items[0].created_ms = 99;
		CHECK_RC(am_recon_new(&r, items, 3), AM_EINVAL);
	}
	return check_done("test_reconcile");
}
