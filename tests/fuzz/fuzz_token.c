/*
 * fuzz_token.c — libFuzzer target for the capability token decoder (the
 * text after "Bearer " on every API request). What parses must check
 * without crashing and keep its invariants: at least one block, every
 * block narrowing the one before.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	char *text;
	am_token t;
	uint8_t key[32] = {0};

	if (!init) {
		if (am_core_init() != 0)
			abort();
		init = 1;
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (am_token_parse(&t, text) == 0) {
		if (t.nblocks == 0 || t.nblocks > AM_TOKEN_MAX_BLOCKS)
			abort();
		for (size_t i = 1; i < t.nblocks; i++)
			for (size_t r = 0; r < t.blocks[i].nrights; r++) {
				bool covered = false;
				for (size_t p = 0; p < t.blocks[i - 1].nrights; p++)
					covered |= am_right_covers(t.blocks[i - 1].rights[p], t.blocks[i].rights[r]);
				if (!covered)
					abort();
			}
		if (am_token_check(&t, key, 1, 0, "read:inbox") == 0 && memcmp(t.issuer, key, sizeof(key)) != 0)
			abort(); /* only a token from that key can pass */
		am_token_clear(&t);
	}
	free(text);
	return 0;
}
