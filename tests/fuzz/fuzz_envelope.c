/*
 * fuzz_envelope.c — libFuzzer target for the envelope decoder: decode,
 * and for anything accepted, extract the payload, re-peek and rewrite the
 * hop counter. Also drives the bounds walk on its own.
 */
#include "am_core.h"
#include "mpcheck.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_envelope env;
	uint8_t id[AM_ID_BYTES], hops;
	size_t end;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	(void) am_mp_check(&end, data, size, AM_MAX_DEPTH, 4096);
	if (am_envelope_peek(id, &hops, data, size) != 0) {
		if (am_envelope_decode(&env, data, size) == 0)
			abort(); /* decode must refuse what peek refuses */
		return 0;
	}
	{
		/* the zero-copy view must agree with the copying decoder */
		am_envelope view;
		int a = am_envelope_decode_view(&view, data, size, id);
		int b = am_envelope_decode(&env, data, size);
		if (a != b)
			abort();
		if (b != 0 && (view.body.payload != NULL || view.body_bytes != NULL))
			abort();
		am_envelope_clear(&env);
	}
	if (am_envelope_decode(&env, data, size) == 0) {
		uint8_t *p = NULL, *copy;
		size_t plen = 0;
		if (memcmp(env.id, id, AM_ID_BYTES) != 0)
			abort();
		if (am_envelope_payload(&p, &plen, &env, NULL) == 0)
			free(p);
		copy = malloc(size);
		memcpy(copy, data, size);
		if (am_envelope_set_hops(copy, size, hops > 0 ? hops - 1 : 0) != 0)
			abort();
		free(copy);
		am_envelope_clear(&env);
	} else if (env.raw != NULL || env.body.payload != NULL) {
		abort(); /* a refused envelope hands nothing out */
	}
	return 0;
}
