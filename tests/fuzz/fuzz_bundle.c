/*
 * fuzz_bundle.c — libFuzzer target for the bundle reader: full read with
 * damage reports, and the index-only read. Every envelope handed out is
 * put through the envelope decoder, as the store would.
 */
#include "am_sync.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_env(void *ctx, const uint8_t *env, size_t len, uint64_t off)
{
	am_envelope e;

	(void) ctx;
	(void) off;
	if (am_envelope_decode_view(&e, env, len, NULL) == 0 && e.body_bytes == NULL)
		abort();
	return 0;
}

static void
on_damage(void *ctx, uint64_t off, const char *what)
{
	(void) ctx;
	(void) off;
	if (what == NULL || what[0] == '\0')
		abort(); /* damage is always named */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_bundle_info info;
	const uint8_t *ids;
	size_t n;
	int rc;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	rc = am_bundle_read(&info, data, size, on_env, on_damage, NULL);
	if (rc == 0 && (info.damaged != 0 || !info.sig_ok || !info.hash_ok))
		abort(); /* "whole" must mean whole */
	if (am_bundle_read_index(&info, data, size, &ids, &n) == 0 && n > 0 &&
	    (ids < data || ids + n * AM_ID_BYTES > data + size))
		abort();
	return 0;
}
