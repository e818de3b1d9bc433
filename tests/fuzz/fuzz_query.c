/*
 * fuzz_query.c — libFuzzer target for am_http_query, the query-string
 * reader behind GET /v1/jobs (and whatever asks for a parameter): the
 * input is a URI (up to the first NUL) then a parameter name. Nothing may
 * crash or read past the URI; a value found fits its buffer and is
 * NUL-terminated.
 */
#include "am_runtime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *uri = malloc(size + 1), out[32];
	const char *name = "limit";
	size_t n = 0;

	if (uri == NULL)
		return 0;
	memcpy(uri, data, size);
	uri[size] = '\0';
	n = strlen(uri);
	if (n + 1 < size && uri[n + 1] != '\0')
		name = uri + n + 1; /* after the NUL: the name to look for */
	if (am_http_query(uri, name, out, sizeof(out)) && strlen(out) >= sizeof(out))
		abort();
	free(uri);
	return 0;
}
