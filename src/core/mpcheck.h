/*
 * mpcheck.h — private to src/core: a bounds-only walk over msgpack bytes.
 *
 * msgpack-c allocates count * sizeof(msgpack_object) as soon as it reads a
 * container header, so a 5-byte input claiming 2^32 elements asks for ~100
 * GB. Before any bytes reach msgpack-c we walk them once, checking that
 * every object ends inside the buffer, that no container claims more
 * elements than bytes remain, and that depth and object counts stay under
 * the caller's limits. It decodes nothing; msgpack-c does that.
 */
#ifndef AM_MPCHECK_H
#define AM_MPCHECK_H

#include <stddef.h>
#include <stdint.h>

/* am_mp_check: walk exactly one object starting at buf. On success *end is
 * its length in bytes. Errors: AM_ETRUNC (input ends inside the object),
 * AM_EMALFORMED (reserved type byte 0xc1, or an ext type, which we never
 * use), AM_ELIMIT (depth over max_depth or more than max_objects). */
int am_mp_check(size_t *end, const uint8_t *buf, size_t len,
    unsigned max_depth, size_t max_objects);

#endif
