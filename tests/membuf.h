/*
 * membuf.h — a growable memory buffer that bundle writers (and anything
 * else taking a write callback) can write into, for tests and the vector
 * generator.
 */
#ifndef AM_TEST_MEMBUF_H
#define AM_TEST_MEMBUF_H

#include "am_core.h"

#include <stdlib.h>
#include <string.h>

struct membuf {
	uint8_t *buf;
	size_t len, cap;
};

static inline int
membuf_write(void *ctx, const void *p, size_t n)
{
	struct membuf *s = ctx;

	if (s->len + n > s->cap) {
		size_t cap = (s->len + n) * 2;
		uint8_t *b = realloc(s->buf, cap);
		if (b == NULL)
			return AM_ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

#endif
