/*
 * fuzz_pair.c — libFuzzer target for the pairing decoders (src/trust/
 * pair.c): the first byte picks the gateway's reading of a claim, the
 * node's opening of a grant (with a fixed code and key), the join
 * argument or the code as typed. Any bytes give 0 with outputs that fit,
 * or an error; a grant that opens is NUL-ended at its length.
 */
#include "am_trust.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pk[AM_PK_BYTES] = {0x11}, proof[32], code[AM_PAIR_CODE_BYTES] = {0};
	char name[AM_TAG_MAX + 1], url[160], host[96], *text, *plain = NULL;
	am_pair_keys k;
	size_t plen = 0;

	if (size == 0)
		return 0;
	if ((text = malloc(size)) == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0'; /* the string forms stop at the first NUL */
	switch (data[0] % 4) {
	case 0:
		if (am_pair_claim_parse(text, size - 1, pk, name, proof) == 0 && strlen(name) > AM_TAG_MAX)
			abort();
		break;
	case 1:
		am_pair_keys_derive(&k, code);
		if (am_pair_open(&plain, &plen, &k, pk, text, size - 1) == 0) {
			if (plain == NULL || plain[plen] != '\0')
				abort();
		} else if (plain != NULL) {
			abort();
		}
		free(plain);
		break;
	case 2:
		if (am_pair_join_parse(text, url, host, code) == 0 && (strlen(url) >= sizeof(url) || strlen(host) >= sizeof(host)))
			abort();
		break;
	default:
		if (am_pair_code_parse(code, text) != 0 && am_error_detail()[0] == '\0')
			abort(); /* a refusal says why */
		break;
	}
	free(text);
	return 0;
}
