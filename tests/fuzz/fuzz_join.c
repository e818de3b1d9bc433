/*
 * fuzz_join.c — libFuzzer target for am_join_answer_parse, the node's
 * reading of a development gateway's GET /v1/join answer: any bytes give
 * 0 with a key, a node id and a link that fits, or an error with the key
 * zeroed; nothing crashes or reads past the input.
 */
#include "am_runtime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[32], pk[AM_PK_BYTES], zero[32] = {0};
	char link[128];

	memset(key, 0xa5, sizeof(key));
	if (am_join_answer_parse((const char *) data, size, key, pk, link) == 0) {
		if (strlen(link) >= sizeof(link))
			abort();
	} else if (memcmp(key, zero, sizeof(key)) != 0) {
		abort(); /* a refused answer leaves no key behind */
	}
	return 0;
}
