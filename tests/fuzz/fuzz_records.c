/*
 * fuzz_records.c — libFuzzer target for what a stick's custody and
 * summary files are read with: the envelope decoder, then the custody
 * record decoder and the summary look-up, on untrusted bytes.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_envelope env;
	am_custody c;
	uint8_t probe[AM_ID_BYTES] = {0};

	static am_identity *me;

	if (!init) {
		uint8_t seed[32] = {3};
		if (am_core_init() != 0 || am_identity_from_seed(&me, seed) != 0)
			abort();
		init = 1;
	}
	if (size > 0 && data[0] < 2 && size - 1 <= AM_MAX_PAYLOAD) {
		/* the rest as the payload of a validly signed custody record or
		 * summary: reaches the payload decoders, not just the signature */
		am_envelope_spec s = {0};
		s.type = data[0] == 0 ? "custody" : "summary";
		s.dest_kind = AM_DEST_BROADCAST;
		s.created_ms = 1;
		s.expires_ms = 2;
		s.no_compress = true;
		s.payload = data + 1;
		s.payload_len = size - 1;
		if (am_envelope_create_decoded(&env, &s, me) != 0)
			return 0;
	} else if (am_envelope_decode(&env, data, size) != 0) {
		return 0;
	}
	if (am_custody_decode(&c, &env) == 0 && c.taken > 0 &&
	    (c.taken_prefixes < env.raw || c.taken_prefixes >= env.raw + env.raw_len))
		abort(); /* prefixes must point into the record */
	(void) am_summary_has(&env, probe);
	if (env.body.payload_len >= AM_ID_BYTES)
		(void) am_summary_has(&env, env.body.payload);
	am_envelope_clear(&env);
	return 0;
}
