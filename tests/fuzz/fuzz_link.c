/*
 * fuzz_link.c — libFuzzer target for the link decoders: the first byte
 * chooses a handshake message in each state, or a frame on an open link.
 * Nothing may crash; an open link must refuse any frame it did not expect.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static am_identity *ia, *ib;
static uint8_t net[32];

static void
open_pair(am_link **i, am_link **r)
{
	uint8_t *m = NULL, *o = NULL;
	size_t ml, ol;
	am_link *to[2];
	int turn = 0;

	if (am_link_new(i, ia, net, true) != 0 || am_link_new(r, ib, net, false) != 0 || am_link_start(*i, &m, &ml) != 0)
		abort();
	to[0] = *r;
	to[1] = *i;
	while (m != NULL) {
		if (am_link_on_handshake(to[turn], m, ml, &o, &ol) != 0)
			abort();
		free(m);
		m = o;
		ml = ol;
		turn ^= 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_link *i = NULL, *r = NULL;
	uint8_t *out = NULL;
	size_t olen;

	if (!init) {
		uint8_t s[32] = {1};
		if (am_core_init() != 0 || am_identity_from_seed(&ia, s) != 0)
			abort();
		s[0] = 2;
		if (am_identity_from_seed(&ib, s) != 0)
			abort();
		memset(net, 7, sizeof(net));
		init = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: /* a hello to a fresh responder */
		if (am_link_new(&r, ib, net, false) != 0)
			abort();
		if (am_link_on_handshake(r, data + 1, size - 1, &out, &olen) == 0 && am_link_open_p(r))
			abort(); /* one message can never open a link */
		break;
	case 1: /* a reply to an initiator that said hello */
		if (am_link_new(&i, ia, net, true) != 0 || am_link_start(i, &out, &olen) != 0)
			abort();
		free(out);
		out = NULL;
		if (am_link_on_handshake(i, data + 1, size - 1, &out, &olen) == 0 && am_link_open_p(i))
			abort();
		break;
	default: /* a frame on an open link */
		open_pair(&i, &r);
		if (am_link_open(r, &out, &olen, data + 1, size - 1) == 0)
			abort(); /* forging a frame means breaking the AEAD */
		break;
	}
	free(out);
	am_link_free(i);
	am_link_free(r);
	return 0;
}
