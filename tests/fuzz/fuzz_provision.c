/*
 * fuzz_provision.c — libFuzzer target for the provisioning bundle reader
 * (JSON with keys, a certificate and the gateway's signature).
 */
#include "am_runtime.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_provision p;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	if (am_provision_parse(&p, (const char *) data, size) == 0) {
		if (p.name[0] == '\0' || p.cert[0] == '\0')
			abort();
		am_provision_clear(&p);
	}
	return 0;
}
