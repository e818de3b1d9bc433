/*
 * fuzz_beacon.c — libFuzzer target for the discovery beacon decoder
 * (network key of 32 bytes 0x01, as the corpus was made with). Accepted
 * beacons must name a non-zero port and a valid name.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	uint8_t key[32];
	am_beacon b;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	memset(key, 1, sizeof(key));
	if (am_beacon_decode(&b, data, size, key) == 0 &&
	    (b.port == 0 || am_tag_check("name", b.name, strlen(b.name)) != 0))
		abort();
	return 0;
}
