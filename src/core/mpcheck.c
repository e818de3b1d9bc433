/*
 * mpcheck.c — see mpcheck.h. An explicit stack of "elements still owed"
 * per open container keeps this iterative, so hostile nesting cannot blow
 * the C stack.
 */
#include "mpcheck.h"
#include "am_core.h"

#define MP_STACK_MAX 64

static uint64_t
be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int
am_mp_check(size_t *end, const uint8_t *buf, size_t len, unsigned max_depth,
    size_t max_objects)
{
	uint64_t owed[MP_STACK_MAX];
	unsigned depth = 0;
	size_t off = 0, objects = 0;

	if (max_depth > MP_STACK_MAX)
		max_depth = MP_STACK_MAX;
	owed[0] = 1;
	for (;;) {
		uint8_t t;
		uint64_t skip = 0, children = 0; /* bytes of payload, elements */
		unsigned hdr = 1;

		while (owed[depth] == 0) {
			if (depth == 0) {
				*end = off;
				return 0;
			}
			depth--;
		}
		owed[depth]--;
		if (++objects > max_objects)
			return am_error_set(AM_ELIMIT, "msgpack: more than %zu objects", max_objects);
		if (off >= len)
			return am_error_set(AM_ETRUNC, "truncated: input ends at byte %zu inside an object", len);
		t = buf[off];
		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
			/* fixint, nil, bool */
		} else if (t <= 0x8f) {
			children = 2u * (t & 0x0f);
		} else if (t <= 0x9f) {
			children = t & 0x0f;
		} else if (t <= 0xbf) {
			skip = t & 0x1f;
		} else {
			unsigned w = 0; /* width of a length field */
			switch (t) {
			case 0xc4: case 0xd9: w = 1; break;
			case 0xc5: case 0xda: w = 2; break;
			case 0xc6: case 0xdb: w = 4; break;
			case 0xca: skip = 4; break;
			case 0xcb: skip = 8; break;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xce: case 0xd2: skip = 4; break;
			case 0xcf: case 0xd3: skip = 8; break;
			case 0xdc: case 0xde: w = 2; break;
			case 0xdd: case 0xdf: w = 4; break;
			default:
				return am_error_set(AM_EMALFORMED,
				    "msgpack: type byte 0x%02x at offset %zu is not allowed (reserved or ext)", t, off);
			}
			if (w != 0) {
				uint64_t n;
				if (len - off - 1 < w)
					return am_error_set(AM_ETRUNC, "truncated: length field at offset %zu cut off", off);
				n = be(buf + off + 1, w);
				hdr += w;
				if (t == 0xdc || t == 0xdd)
					children = n;
				else if (t == 0xde || t == 0xdf)
					children = 2 * n;
				else
					skip = n;
			}
		}
		if (len - off < hdr || len - off - hdr < skip)
			return am_error_set(AM_ETRUNC, "truncated: object at offset %zu needs %llu bytes, %zu remain",
			    off, (unsigned long long) (hdr + skip), len - off);
		off += hdr + (size_t) skip;
		if (children > 0) {
			/* Every element takes at least one byte. */
			if (children > len - off)
				return am_error_set(AM_ETRUNC, "truncated: container at offset %zu claims %llu elements, %zu bytes remain",
				    off - hdr, (unsigned long long) children, len - off);
			if (depth + 1 >= max_depth)
				return am_error_set(AM_ELIMIT, "msgpack: nesting deeper than %u", max_depth);
			owed[++depth] = children;
		}
	}
}

int
am_msgpack_check(size_t *end, const uint8_t *buf, size_t len, unsigned max_depth, size_t max_objects)
{
	return am_mp_check(end, buf, len, max_depth, max_objects);
}
