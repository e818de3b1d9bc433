/*
 * envelope_build.c — making envelopes: check the spec, pack the body map,
 * compress when zlib wins, seal to one node when asked, sign, and hand
 * back the bytes (or the decoded view, for callers that store what they
 * just signed). docs/PROTOCOL.md is normative.
 */
#include "envelope_private.h"
#include "mpcheck.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define COMPRESS_MIN     64 /* below this zlib cannot win back its header */

/* ------------------------------------------------------------ encode --- */

static void
pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void
pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

static void
pack_geo(msgpack_packer *pk, const am_geo *g)
{
	switch (g->kind) {
	case AM_GEO_CIRCLE:
		msgpack_pack_array(pk, 4);
		pack_str(pk, "circle");
		msgpack_pack_double(pk, g->lat);
		msgpack_pack_double(pk, g->lon);
		msgpack_pack_double(pk, g->radius_m);
		break;
	case AM_GEO_POLYGON:
		msgpack_pack_array(pk, 2);
		pack_str(pk, "polygon");
		msgpack_pack_array(pk, g->npoints);
		for (unsigned i = 0; i < g->npoints; i++) {
			msgpack_pack_array(pk, 2);
			msgpack_pack_double(pk, g->points[i][0]);
			msgpack_pack_double(pk, g->points[i][1]);
		}
		break;
	case AM_GEO_GEOHASH:
		msgpack_pack_array(pk, 2);
		pack_str(pk, "geohash");
		pack_str(pk, g->geohash);
		break;
	case AM_GEO_ZONE:
		msgpack_pack_array(pk, 2);
		pack_str(pk, "zone");
		msgpack_pack_array(pk, g->ntags);
		for (unsigned i = 0; i < g->ntags; i++)
			pack_str(pk, g->tags[i]);
		break;
	case AM_GEO_NONE:
		break;
	}
}

/* zlib at its fastest level, with a window and hash table sized to the
 * payload: compress2() would allocate and clear ~270 KB of state per call,
 * which costs more than the Ed25519 signature on a 1 KiB message. Any
 * window size yields a standard zlib stream. Returns 1 when *out holds a
 * smaller stream, 0 when it did not shrink. */
/* Ciphertext, media and already-compressed data use nearly every byte
 * value; text, JSON and most sensor records use far fewer. Counting the
 * distinct bytes of a 1 KiB sample (a microsecond) spares the ~20 us a
 * failed deflate of a small dense payload costs. */
static bool
looks_dense(const uint8_t *p, size_t n)
{
	bool seen[256] = {0};
	size_t sample = n < 1024 ? n : 1024, distinct = 0, limit;

	for (size_t i = 0; i < sample; i++) {
		distinct += !seen[p[i]];
		seen[p[i]] = true;
	}
	limit = sample * 3 / 4 < 200 ? sample * 3 / 4 : 200;
	return distinct > limit;
}

static int
try_deflate(uint8_t **out, size_t *out_len, const uint8_t *in, size_t len)
{
	z_stream zs;
	uint8_t *buf;
	int wbits = 9, zr;

	*out = NULL;
	if (len < COMPRESS_MIN || looks_dense(in, len))
		return 0;
	while (wbits < 15 && ((size_t) 1 << wbits) < len)
		wbits++;
	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, wbits, wbits - 7 < 1 ? 1 : wbits - 7, Z_DEFAULT_STRATEGY) != Z_OK)
		return am_error_set(AM_ECOMPRESS, "zlib: deflateInit2 failed");
	/* only a result smaller than the input is of use */
	buf = malloc(len);
	if (buf == NULL) {
		deflateEnd(&zs);
		return am_error_set(AM_ENOMEM, "out of memory compressing a payload");
	}
	zs.next_in = (Bytef *) in;
	zs.avail_in = (uInt) len;
	zs.next_out = buf;
	zs.avail_out = (uInt) (len - 1);
	zr = deflate(&zs, Z_FINISH);
	deflateEnd(&zs);
	if (zr != Z_STREAM_END) {
		free(buf);
		return 0; /* did not fit in len - 1 bytes: not worth it */
	}
	*out = buf;
	*out_len = zs.total_out;
	return 1;
}

/* Nonces only keep equal sends apart; taking them from a per-thread pool
 * refilled 512 at a time spares a getrandom() system call per envelope. */
static void
fresh_nonce(uint8_t out[AM_NONCE_BYTES])
{
	static _Thread_local uint8_t pool[AM_NONCE_BYTES * 512];
	static _Thread_local size_t used = sizeof(pool);
	static _Thread_local pid_t owner;

	/* a forked child must not reuse its parent's pool */
	if (used == sizeof(pool) || owner != getpid()) {
		owner = getpid();
		randombytes_buf(pool, sizeof(pool));
		used = 0;
	}
	memcpy(out, pool + used, AM_NONCE_BYTES);
	sodium_memzero(pool + used, AM_NONCE_BYTES);
	used += AM_NONCE_BYTES;
}

static int
check_spec(const am_envelope_spec *s)
{
	int rc;
	const char *type = s->type ? s->type : "message";

	if ((rc = am_tag_check("type", type, strlen(type))) != 0)
		return rc;
	if (s->payload_len > AM_MAX_PAYLOAD)
		return am_error_set(AM_ETOOBIG, "payload is %zu bytes, limit %u", s->payload_len, AM_MAX_PAYLOAD);
	if (s->payload_len > 0 && s->payload == NULL)
		return am_error_set(AM_EINVAL, "payload pointer is NULL");
	if (s->priority > AM_PRIO_URGENT)
		return am_error_set(AM_EFIELD, "priority %u out of range 0..3", s->priority);
	if (s->expires_ms <= s->created_ms)
		return am_error_set(AM_EFIELD, "expiry must be after creation time");
	if (s->expires_ms > AM_MAX_TIME_MS || s->expires_ms - s->created_ms > AM_MAX_LIFETIME_MS)
		return am_error_set(AM_EFIELD, "an envelope lives at most 10 years, and no later than the year 9999");
	switch (s->dest_kind) {
	case AM_DEST_NODE:
	case AM_DEST_BROADCAST:
		break;
	case AM_DEST_GROUP:
		if (s->dest_group == NULL)
			return am_error_set(AM_EFIELD, "group destination without a group name");
		if ((rc = am_tag_check("group", s->dest_group, strlen(s->dest_group))) != 0)
			return rc;
		break;
	default:
		return am_error_set(AM_EFIELD, "destination kind %d unknown", (int) s->dest_kind);
	}
	if (s->seal && s->dest_kind != AM_DEST_NODE)
		return am_error_set(AM_EFIELD, "only an envelope to one node can be sealed");
	if (s->geo != NULL && (rc = am_geo_check(s->geo)) != 0)
		return rc;
	if (s->content_type != NULL && (strlen(s->content_type) == 0 || strlen(s->content_type) > AM_MAX_CTYPE))
		return am_error_set(AM_EFIELD, "content type must be 1..%d bytes", AM_MAX_CTYPE);
	if (s->workflow_id != NULL && (strlen(s->workflow_id) == 0 || strlen(s->workflow_id) > AM_MAX_WORKFLOW))
		return am_error_set(AM_EFIELD, "workflow id must be 1..%d bytes", AM_MAX_WORKFLOW);
	return 0;
}

static int
seal_payload(uint8_t **out, size_t *out_len, const uint8_t pk[static AM_PK_BYTES],
    const uint8_t *in, size_t len)
{
	uint8_t xpk[crypto_box_PUBLICKEYBYTES];
	uint8_t *buf;

	*out = NULL;
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, pk) != 0)
		return am_error_set(AM_ESEAL, "recipient key cannot be converted to X25519");
	buf = malloc(len + crypto_box_SEALBYTES);
	if (buf == NULL)
		return am_error_set(AM_ENOMEM, "out of memory sealing a payload");
	crypto_box_seal(buf, in, len, xpk);
	*out = buf;
	*out_len = len + crypto_box_SEALBYTES;
	return 0;
}


int
am_envelope_create(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES],
    const am_envelope_spec *s, const am_identity *from)
{
	struct built b;

	return am_env_build(out, out_len, id, s, from, &b);
}

int
am_env_build(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES], const am_envelope_spec *s,
    const am_identity *from, struct built *b)
{
	msgpack_sbuffer body, outer;
	msgpack_packer pk;
	uint8_t nonce[AM_NONCE_BYTES];
	uint8_t sig[AM_SIG_BYTES];
	uint8_t *zbuf = NULL, *sbuf = NULL;
	const uint8_t *payload = s->payload;
	size_t payload_len = s->payload_len, zlen = 0;
	bool compressed = false;
	unsigned nkeys = 8; /* the required keys */
	int rc;

	*out = NULL;
	*out_len = 0;
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&outer);
	if ((rc = check_spec(s)) != 0)
		goto out;
	if (!s->no_compress) {
		rc = try_deflate(&zbuf, &zlen, payload, payload_len);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			payload = zbuf;
			payload_len = zlen;
			compressed = true;
		}
		rc = 0;
	}
	if (s->seal) {
		if ((rc = seal_payload(&sbuf, &payload_len, s->dest_node, payload, payload_len)) != 0)
			goto out;
		payload = sbuf;
	}
	if (s->nonce != NULL)
		memcpy(nonce, s->nonce, sizeof(nonce));
	else
		fresh_nonce(nonce);

	nkeys += (s->geo != NULL && s->geo->kind != AM_GEO_NONE) + (s->content_type != NULL) +
	    compressed + s->seal + (s->ref != NULL) + (s->workflow_id != NULL);
	msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, nkeys);
	pack_str(&pk, "type");
	pack_str(&pk, s->type ? s->type : "message");
	pack_str(&pk, "src");
	pack_bin(&pk, am_identity_pk(from), AM_PK_BYTES);
	pack_str(&pk, "dst");
	switch (s->dest_kind) {
	case AM_DEST_NODE:
		msgpack_pack_array(&pk, 2);
		pack_str(&pk, "node");
		pack_bin(&pk, s->dest_node, AM_PK_BYTES);
		break;
	case AM_DEST_GROUP:
		msgpack_pack_array(&pk, 2);
		pack_str(&pk, "group");
		pack_str(&pk, s->dest_group);
		break;
	case AM_DEST_BROADCAST:
		msgpack_pack_array(&pk, 1);
		pack_str(&pk, "broadcast");
		break;
	}
	if (s->geo != NULL && s->geo->kind != AM_GEO_NONE) {
		pack_str(&pk, "geo");
		pack_geo(&pk, s->geo);
	}
	pack_str(&pk, "created");
	msgpack_pack_uint64(&pk, s->created_ms);
	pack_str(&pk, "expires");
	msgpack_pack_uint64(&pk, s->expires_ms);
	pack_str(&pk, "prio");
	msgpack_pack_uint8(&pk, s->priority);
	if (s->content_type != NULL) {
		pack_str(&pk, "ctype");
		pack_str(&pk, s->content_type);
	}
	if (compressed) {
		pack_str(&pk, "zlib");
		msgpack_pack_true(&pk);
	}
	if (s->seal) {
		pack_str(&pk, "sealed");
		msgpack_pack_true(&pk);
	}
	pack_str(&pk, "nonce");
	pack_bin(&pk, nonce, sizeof(nonce));
	if (s->ref != NULL) {
		pack_str(&pk, "ref");
		pack_bin(&pk, s->ref, AM_ID_BYTES);
	}
	if (s->workflow_id != NULL) {
		pack_str(&pk, "workflow");
		pack_str(&pk, s->workflow_id);
	}
	pack_str(&pk, "payload");
	pack_bin(&pk, payload, payload_len);
	if (body.data == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory encoding an envelope");
		goto out;
	}
	if (body.size > AM_MAX_BODY) {
		rc = am_error_set(AM_ETOOBIG, "body is %zu bytes, limit %u", body.size, AM_MAX_BODY);
		goto out;
	}
	crypto_generichash(id, AM_ID_BYTES, (const uint8_t *) body.data, body.size, NULL, 0);
	am_identity_sign(from, sig, (const uint8_t *) body.data, body.size);

	msgpack_packer_init(&pk, &outer, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, AM_ENVELOPE_VERSION);
	pack_bin(&pk, body.data, body.size);
	pack_bin(&pk, sig, sizeof(sig));
	/* Always the 2-byte uint8 form, so a carrier can rewrite it in place. */
	{
		const char hops[2] = {(char) 0xcc, (char) (s->hops ? s->hops : AM_DEFAULT_HOPS)};
		msgpack_sbuffer_write(&outer, hops, 2);
	}
	if (outer.data == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory encoding an envelope");
		goto out;
	}
	*out_len = outer.size;
	*out = (uint8_t *) msgpack_sbuffer_release(&outer);
	b->compressed = compressed;
	b->payload_len = payload_len;
	memcpy(b->nonce, nonce, AM_NONCE_BYTES);
out:
	free(zbuf);
	free(sbuf);
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&outer);
	return rc;
}

int
am_envelope_create_decoded(am_envelope *env, const am_envelope_spec *spec, const am_identity *from)
{
	am_body *bd = &env->body;
	struct outer o;
	struct built b;
	int rc;

	memset(env, 0, sizeof(*env));
	if ((rc = am_env_build(&env->raw, &env->raw_len, env->id, spec, from, &b)) != 0)
		return rc;
	if ((rc = am_env_parse_outer(&o, env->raw, env->raw_len)) != 0) {
		am_envelope_clear(env);
		return rc;
	}
	/* The body holds exactly the spec, checked by build(): fill the view
	 * from it rather than parse what we just wrote. */
	env->body_bytes = o.body;
	env->body_len = o.body_len;
	memcpy(env->sig, o.sig, AM_SIG_BYTES);
	env->version = (uint8_t) o.version;
	env->hops_left = (uint8_t) o.hops;
	snprintf(bd->type, sizeof(bd->type), "%s", spec->type ? spec->type : "message");
	memcpy(bd->src, am_identity_pk(from), AM_PK_BYTES);
	bd->dest_kind = spec->dest_kind;
	if (spec->dest_kind == AM_DEST_NODE)
		memcpy(bd->dest_node, spec->dest_node, AM_PK_BYTES);
	if (spec->dest_kind == AM_DEST_GROUP)
		snprintf(bd->dest_group, sizeof(bd->dest_group), "%s", spec->dest_group);
	if (spec->geo != NULL)
		bd->geo = *spec->geo;
	bd->created_ms = spec->created_ms;
	bd->expires_ms = spec->expires_ms;
	bd->priority = spec->priority;
	snprintf(bd->content_type, sizeof(bd->content_type), "%s",
	    spec->content_type ? spec->content_type : "application/octet-stream");
	bd->compressed = b.compressed;
	bd->sealed = spec->seal;
	memcpy(bd->nonce, b.nonce, AM_NONCE_BYTES);
	if (spec->ref != NULL) {
		bd->has_ref = true;
		memcpy(bd->ref, spec->ref, AM_ID_BYTES);
	}
	if (spec->workflow_id != NULL)
		snprintf(bd->workflow_id, sizeof(bd->workflow_id), "%s", spec->workflow_id);
	/* "payload" is the body map's last value */
	bd->payload = env->body_bytes + env->body_len - b.payload_len;
	bd->payload_len = b.payload_len;
	return 0;
}

