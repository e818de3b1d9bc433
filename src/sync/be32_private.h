/*
 * be32_private.h — big-endian u32 in and out, for the sync formats that
 * carry them (bundle headers and blocks, link E frames).
 */
#ifndef AM_BE32_PRIVATE_H
#define AM_BE32_PRIVATE_H

#include <stdint.h>

static inline void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static inline uint32_t
get32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

#endif
