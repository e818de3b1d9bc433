/*
 * fuzz_peerinfo.c — libFuzzer target for the link's peer-info frame
 * decoder; what decodes must encode and decode again to the same.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	am_peer_info a, b;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (am_peer_info_decode(&a, data, size) != 0)
		return 0;
	if (am_peer_info_encode(&buf, &len, &a) != 0 || am_peer_info_decode(&b, buf, len) != 0 ||
	    memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	free(buf);
	return 0;
}
