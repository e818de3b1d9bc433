/*
 * bench_reconcile.c — reconciliation cost: two sets sharing N items
 * (default 100 000) and differing by d = 0, 10, 100, 1000 (half on each
 * side). Prints bytes each way and messages, next to the bytes of the
 * missing envelopes themselves (d x the size of a real 1 KiB-payload
 * envelope) and to a naive exchange of full id lists (32 bytes x N each
 * way). Targets: total <= 3 x missing + 16 KiB; d = 0 in <= 2 KiB.
 * usage: bench_reconcile [N]
 */
#include "am_sync.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int
cmp_item(const void *a, const void *b)
{
	const am_recon_item *x = a, *y = b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return memcmp(x->id, y->id, AM_ID_BYTES);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	size_t shared = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	const size_t ds[] = {0, 10, 100, 1000};
	am_identity *me = NULL;
	size_t env_size;

	if (am_core_init() != 0 || am_identity_generate(&me) != 0)
		return 1;
	{
		/* the size of a real envelope with a 1 KiB payload */
		am_envelope_spec s = {0};
		uint8_t payload[1024], *raw, id[32];
		randombytes_buf(payload, sizeof(payload));
		s.dest_kind = AM_DEST_BROADCAST;
		s.created_ms = 1;
		s.expires_ms = 2;
		s.payload = payload;
		s.payload_len = sizeof(payload);
		if (am_envelope_create(&raw, &env_size, id, &s, me) != 0)
			return 1;
		free(raw);
	}
	printf("reconciliation of two sets sharing %zu envelopes (1 KiB payload = %zu-byte envelopes), branch %d, id lists below %d\n",
	    shared, env_size, AM_RECON_BRANCH, AM_RECON_IDLIST_MAX);
	printf("%6s %10s %10s %5s %12s %12s %10s %s\n", "d", "A->B B", "B->A B", "msgs", "missing B", "naive B", "ms", "target");
	for (size_t k = 0; k < sizeof(ds) / sizeof(ds[0]); k++) {
		size_t d = ds[k], na = shared + d / 2, nb = shared + d - d / 2, ab = 0, ba = 0, n;
		am_recon_item *all = malloc((shared + d + 1) * sizeof(*all)), *A = malloc((na + 1) * sizeof(*A)),
		              *B = malloc((nb + 1) * sizeof(*B));
		am_recon *ra = NULL, *rb = NULL, *side[2];
		uint8_t *msg = NULL, *out = NULL;
		size_t len = 0, olen;
		int msgs = 0, turn = 0;
		bool done;
		double t0;
		uint64_t base = 1767225600000ull;
		for (size_t i = 0; i < shared + d; i++) {
			/* a day of traffic, a few per millisecond at most */
			all[i].created_ms = base + randombytes_uniform(86400000);
			randombytes_buf(all[i].id, 32);
		}
		memcpy(A, all, shared * sizeof(*A));
		memcpy(A + shared, all + shared, (d / 2) * sizeof(*A));
		memcpy(B, all, shared * sizeof(*B));
		memcpy(B + shared, all + shared + d / 2, (d - d / 2) * sizeof(*B));
		qsort(A, na, sizeof(*A), cmp_item);
		qsort(B, nb, sizeof(*B), cmp_item);
		if (am_recon_new(&ra, A, na) != 0 || am_recon_new(&rb, B, nb) != 0)
			return 1;
		side[0] = rb;
		side[1] = ra;
		t0 = now_s();
		if (am_recon_initiate(ra, &msg, &len) != 0)
			return 1;
		while (msg != NULL && msgs < 64) {
			msgs++;
			*(turn == 0 ? &ab : &ba) += len;
			if (am_recon_reply(side[turn], msg, len, &out, &olen, &done) != 0)
				return 1;
			free(msg);
			msg = out;
			len = olen;
			turn ^= 1;
		}
		free(msg);
		double ms = (now_s() - t0) * 1e3;
		size_t missing = d * env_size, naive = 2 * shared * 32, limit = 3 * missing + 16384;
		size_t got_a, got_b;
		am_recon_peer_lacks(ra, &got_a);
		am_recon_peer_lacks(rb, &got_b);
		printf("%6zu %10zu %10zu %5d %12zu %12zu %10.1f %s%s\n", d, ab, ba, msgs, missing, naive, ms,
		    d == 0 ? (ab + ba <= 2048 ? "ok (<= 2 KiB)" : "MISSED (> 2 KiB)")
		           : (ab + ba <= limit ? "ok (<= 3 x missing + 16 KiB)" : "MISSED (> 3 x missing + 16 KiB)"),
		    got_a == d / 2 && got_b == d - d / 2 ? "" : "  WRONG RESULT");
		n = 0;
		(void) n;
		am_recon_free(ra);
		am_recon_free(rb);
		free(all);
		free(A);
		free(B);
	}
	am_identity_free(me);
	return 0;
}
