/*
 * vector_json.h — what the vector generators share: a byte string as a hex
 * field, and writing the file (an error names it).
 */
#ifndef AM_TEST_VECTOR_JSON_H
#define AM_TEST_VECTOR_JSON_H

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void
set_hex(json_t *o, const char *k, const uint8_t *p, size_t n)
{
	char *s = malloc(n * 2 + 1);

	if (s == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	sodium_bin2hex(s, n * 2 + 1, p, n);
	json_object_set_new(o, k, json_string(s));
	free(s);
}

/* write root to path (and free it); 0, or 1 with a line on stderr */
static inline int
write_vectors(json_t *root, const char *path, const char *prog, size_t flags)
{
	int rc = json_dump_file(root, path, JSON_INDENT(1) | flags) == 0 ? 0 : 1;

	if (rc != 0)
		fprintf(stderr, "%s: cannot write %s\n", prog, path);
	json_decref(root);
	return rc;
}

#endif
