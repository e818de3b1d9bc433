/*
 * fuzz_http_messages.c — libFuzzer target for the body of POST /v1/messages: the
 * input is the body, taken by the real route (token hook, JSON reader,
 * field checks, and what it does with them) through am_http_local. The
 * answer must be a status and JSON (tests/fuzz/http_env.c).
 */
#include "http_env.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	http_env_post("/v1/messages", data, size, false);
	return 0;
}
