/*
 * fuzz_pem.c — libFuzzer target for the PKCS#8 PEM key reader.
 */
#include "am_core.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_identity *id = NULL;

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	if (am_identity_parse_pem(&id, (const char *) data, size) == 0) {
		char *pem = NULL;
		if (am_identity_to_pem(&pem, id) != 0)
			abort();
		am_pem_free(pem);
		am_identity_free(id);
	} else if (id != NULL) {
		abort();
	}
	return 0;
}
