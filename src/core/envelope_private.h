/*
 * envelope_private.h — private to src/core's envelope files: what
 * envelope_build.c (making envelopes) and envelope.c (decoding them)
 * share.
 */
#ifndef AM_CORE_ENVELOPE_PRIVATE_H
#define AM_CORE_ENVELOPE_PRIVATE_H

#include "am_core.h"

/* Where the parts of the outer array sit in the buffer. */
struct outer {
	uint64_t version;
	const uint8_t *body;
	size_t body_len;
	const uint8_t *sig;
	uint64_t hops;
	size_t hops_off, hops_width;
};

/* What build() decided, for create_decoded. */
struct built {
	bool compressed;
	size_t payload_len; /* as carried */
	uint8_t nonce[AM_NONCE_BYTES];
};

/* the outer array's parts, found and checked (not the signature) */
int am_env_parse_outer(struct outer *o, const uint8_t *buf, size_t len);
/* build and sign an envelope from s; b gets what was decided */
int am_env_build(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES], const am_envelope_spec *s,
    const am_identity *from, struct built *b);

#endif
