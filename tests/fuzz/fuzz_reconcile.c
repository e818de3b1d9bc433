/*
 * fuzz_reconcile.c — libFuzzer target for the reconciliation message
 * decoder: any input against a fixed set of 200 items; a refused message
 * must leave the results as they were; an accepted one must produce a
 * reply the same decoder accepts.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static am_recon_item items[200];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_recon *r = NULL, *peer = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t olen = 0, olen2 = 0, before, after;
	bool done;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		for (int i = 0; i < 200; i++) {
			items[i].created_ms = 1000 + (uint64_t) (i / 3);
			memset(items[i].id, 0, 32);
			items[i].id[0] = (uint8_t) i;
			items[i].id[31] = (uint8_t) (i * 7);
		}
		init = 1;
	}
	if (am_recon_new(&r, items, 200) != 0 || am_recon_new(&peer, items + 50, 100) != 0)
		abort();
	am_recon_peer_lacks(r, &before);
	if (am_recon_reply(r, data, size, &out, &olen, &done) != 0) {
		am_recon_peer_lacks(r, &after);
		if (after != before || out != NULL)
			abort();
	} else if (out != NULL) {
		/* our own reply must parse */
		if (am_recon_reply(peer, out, olen, &out2, &olen2, &done) != 0)
			abort();
	}
	free(out);
	free(out2);
	am_recon_free(r);
	am_recon_free(peer);
	return 0;
}
