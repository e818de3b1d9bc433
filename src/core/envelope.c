/*
 * envelope.c — the signed envelope: build, decode with limits, verify,
 * payload extraction, and the hop counter rewrite.
 *
 * Wire shape (docs/PROTOCOL.md is normative):
 *   outer = [version:uint, body:bin, signature:bin(64), hops_left:uint]
 *   id    = BLAKE2b-256(body), signature = Ed25519(src, body)
 * The body bytes are signed as they are, so nothing is re-canonicalised;
 * a decoder only has to find the body, hash it and check the signature.
 */
#include "am_core.h"
#include "mpcheck.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define BODY_MAX_OBJECTS 2048
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

/* What build() decided, for create_decoded. */
struct built {
	bool compressed;
	size_t payload_len; /* as carried */
	uint8_t nonce[AM_NONCE_BYTES];
};

static int build(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES], const am_envelope_spec *s,
    const am_identity *from, struct built *b);

int
am_envelope_create(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES],
    const am_envelope_spec *s, const am_identity *from)
{
	struct built b;

	return build(out, out_len, id, s, from, &b);
}

static int
build(uint8_t **out, size_t *out_len, uint8_t id[static AM_ID_BYTES], const am_envelope_spec *s,
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

/* ------------------------------------------------------------ decode --- */

/* Where the parts of the outer array sit in the buffer. */
struct outer {
	uint64_t version;
	const uint8_t *body;
	size_t body_len;
	const uint8_t *sig;
	uint64_t hops;
	size_t hops_off, hops_width;
};

static int
read_uint(uint64_t *v, size_t *width, const uint8_t *p, size_t len, const char *what)
{
	if (len < 1)
		return am_error_set(AM_ETRUNC, "truncated: %s missing", what);
	if (p[0] <= 0x7f) {
		*v = p[0];
		*width = 1;
		return 0;
	}
	unsigned w = p[0] == 0xcc ? 1 : p[0] == 0xcd ? 2 : p[0] == 0xce ? 4 : p[0] == 0xcf ? 8 : 0;
	if (w == 0)
		return am_error_set(AM_EMALFORMED, "%s is not an unsigned integer (type byte 0x%02x)", what, p[0]);
	if (len < 1 + w)
		return am_error_set(AM_ETRUNC, "truncated: %s cut off", what);
	*v = 0;
	for (unsigned i = 0; i < w; i++)
		*v = (*v << 8) | p[1 + i];
	*width = 1 + w;
	return 0;
}

static int
read_bin(const uint8_t **data, size_t *n, size_t *width, const uint8_t *p, size_t len, const char *what)
{
	unsigned w;
	uint64_t v = 0;

	if (len < 1)
		return am_error_set(AM_ETRUNC, "truncated: %s missing", what);
	w = p[0] == 0xc4 ? 1 : p[0] == 0xc5 ? 2 : p[0] == 0xc6 ? 4 : 0;
	if (w == 0)
		return am_error_set(AM_EMALFORMED, "%s is not a msgpack bin (type byte 0x%02x)", what, p[0]);
	if (len < 1 + w)
		return am_error_set(AM_ETRUNC, "truncated: %s length cut off", what);
	for (unsigned i = 0; i < w; i++)
		v = (v << 8) | p[1 + i];
	if (v > len - 1 - w)
		return am_error_set(AM_ETRUNC, "truncated: %s claims %llu bytes, %zu remain", what,
		    (unsigned long long) v, len - 1 - w);
	*data = p + 1 + w;
	*n = (size_t) v;
	*width = 1 + w + (size_t) v;
	return 0;
}

/* The outer layer is four fixed slots; reading it by hand (with the same
 * bounds rules as mpcheck) keeps the dedup path free of allocation. */
static int
parse_outer(struct outer *o, const uint8_t *buf, size_t len)
{
	size_t off = 1, w = 0, n = 0;
	int rc;

	if (len == 0)
		return am_error_set(AM_ETRUNC, "truncated: empty input");
	if (len > AM_MAX_ENVELOPE)
		return am_error_set(AM_ETOOBIG, "envelope is %zu bytes, limit %u", len, AM_MAX_ENVELOPE);
	if (buf[0] != 0x94)
		return am_error_set(AM_EMALFORMED, "not an envelope: expected a 4-element msgpack array, first byte 0x%02x", buf[0]);
	if ((rc = read_uint(&o->version, &w, buf + off, len - off, "version")) != 0)
		return rc;
	off += w;
	if (o->version != AM_ENVELOPE_VERSION)
		return am_error_set(AM_EVERSION, "envelope version %llu is not supported (this build speaks %d)",
		    (unsigned long long) o->version, AM_ENVELOPE_VERSION);
	if ((rc = read_bin(&o->body, &o->body_len, &w, buf + off, len - off, "body")) != 0)
		return rc;
	off += w;
	if (o->body_len > AM_MAX_BODY)
		return am_error_set(AM_ETOOBIG, "body is %zu bytes, limit %u", o->body_len, AM_MAX_BODY);
	if ((rc = read_bin(&o->sig, &n, &w, buf + off, len - off, "signature")) != 0)
		return rc;
	if (n != AM_SIG_BYTES)
		return am_error_set(AM_EFIELD, "signature is %zu bytes, expected %d", n, AM_SIG_BYTES);
	off += w;
	o->hops_off = off;
	if ((rc = read_uint(&o->hops, &o->hops_width, buf + off, len - off, "hops_left")) != 0)
		return rc;
	if (o->hops > 255)
		return am_error_set(AM_EFIELD, "hops_left %llu over 255", (unsigned long long) o->hops);
	off += o->hops_width;
	if (off != len)
		return am_error_set(AM_ETRAILING, "%zu trailing bytes after the envelope", len - off);
	return 0;
}

int
am_envelope_peek(uint8_t id[static AM_ID_BYTES], uint8_t *hops_left, const uint8_t *buf, size_t len)
{
	struct outer o;
	int rc = parse_outer(&o, buf, len);

	if (rc != 0)
		return rc;
	crypto_generichash(id, AM_ID_BYTES, o.body, o.body_len, NULL, 0);
	if (hops_left != NULL)
		*hops_left = (uint8_t) o.hops;
	return 0;
}

int
am_envelope_set_hops(uint8_t *buf, size_t len, uint8_t hops)
{
	struct outer o;
	int rc = parse_outer(&o, buf, len);

	if (rc != 0)
		return rc;
	if (o.hops_width == 1 && hops > 0x7f)
		return am_error_set(AM_EINVAL, "hops %u does not fit the envelope's 1-byte field", hops);
	if (o.hops_width == 1)
		buf[o.hops_off] = hops;
	else {
		/* wider forms: write the value big-endian into the same width */
		size_t w = o.hops_width - 1;
		for (size_t i = 0; i < w; i++)
			buf[o.hops_off + 1 + i] = (i == w - 1) ? hops : 0;
	}
	return 0;
}

/* --- body fields --- */

static bool
key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->via.str.size == n && memcmp(k->via.str.ptr, name, n) == 0;
}

static int
get_str(char *out, size_t cap, const msgpack_object *o, const char *what)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return am_error_set(AM_EFIELD, "%s must be a string", what);
	if (o->via.str.size == 0 || o->via.str.size >= cap)
		return am_error_set(o->via.str.size ? AM_ETOOBIG : AM_EFIELD, "%s must be 1..%zu bytes, got %u",
		    what, cap - 1, o->via.str.size);
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return am_error_set(AM_EFIELD, "%s contains a NUL byte", what);
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return 0;
}

static int
get_fixed_bin(uint8_t *out, size_t n, const msgpack_object *o, const char *what)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
		return am_error_set(AM_EFIELD, "%s must be a %zu-byte bin", what, n);
	memcpy(out, o->via.bin.ptr, n);
	return 0;
}

static int
get_uint(uint64_t *v, const msgpack_object *o, const char *what)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return am_error_set(AM_EFIELD, "%s must be an unsigned integer", what);
	*v = o->via.u64;
	return 0;
}

static int
get_double(double *v, const msgpack_object *o, const char *what)
{
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*v = o->via.f64;
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*v = (double) o->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*v = (double) o->via.i64;
		return 0;
	default:
		return am_error_set(AM_EGEO, "geo: %s must be a number", what);
	}
}

static int
get_bool(bool *v, const msgpack_object *o, const char *what)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return am_error_set(AM_EFIELD, "%s must be a boolean", what);
	*v = o->via.boolean;
	return 0;
}

static int
decode_dest(am_body *b, const msgpack_object *o)
{
	const msgpack_object *a;
	char kind[16];
	int rc;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 || o->via.array.size > 2)
		return am_error_set(AM_EFIELD, "dst must be [\"node\", key], [\"group\", name] or [\"broadcast\"]");
	a = o->via.array.ptr;
	if ((rc = get_str(kind, sizeof(kind), &a[0], "dst kind")) != 0)
		return rc;
	if (strcmp(kind, "broadcast") == 0 && o->via.array.size == 1) {
		b->dest_kind = AM_DEST_BROADCAST;
		return 0;
	}
	if (o->via.array.size != 2)
		return am_error_set(AM_EFIELD, "dst \"%s\" needs a value", kind);
	if (strcmp(kind, "node") == 0) {
		b->dest_kind = AM_DEST_NODE;
		return get_fixed_bin(b->dest_node, AM_PK_BYTES, &a[1], "dst node key");
	}
	if (strcmp(kind, "group") == 0) {
		b->dest_kind = AM_DEST_GROUP;
		if ((rc = get_str(b->dest_group, sizeof(b->dest_group), &a[1], "dst group")) != 0)
			return rc;
		return am_tag_check("dst group", b->dest_group, strlen(b->dest_group));
	}
	return am_error_set(AM_EFIELD, "dst kind \"%s\" unknown", kind);
}

static int
decode_geo(am_geo *g, const msgpack_object *o)
{
	const msgpack_object *a;
	char kind[16];
	int rc;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
		return am_error_set(AM_EGEO, "geo must be an array [kind, ...]");
	a = o->via.array.ptr;
	if ((rc = get_str(kind, sizeof(kind), &a[0], "geo kind")) != 0)
		return rc;
	if (strcmp(kind, "circle") == 0) {
		if (o->via.array.size != 4)
			return am_error_set(AM_EGEO, "geo circle must be [\"circle\", lat, lon, radius_m]");
		g->kind = AM_GEO_CIRCLE;
		if ((rc = get_double(&g->lat, &a[1], "circle latitude")) != 0 ||
		    (rc = get_double(&g->lon, &a[2], "circle longitude")) != 0 ||
		    (rc = get_double(&g->radius_m, &a[3], "circle radius")) != 0)
			return rc;
	} else if (strcmp(kind, "polygon") == 0) {
		const msgpack_object *pts = &a[1];
		if (o->via.array.size != 2 || pts->type != MSGPACK_OBJECT_ARRAY)
			return am_error_set(AM_EGEO, "geo polygon must be [\"polygon\", [[lat, lon], ...]]");
		if (pts->via.array.size > AM_GEO_MAX_POINTS)
			return am_error_set(AM_ELIMIT, "geo: polygon has %u points, limit %d",
			    pts->via.array.size, AM_GEO_MAX_POINTS);
		g->kind = AM_GEO_POLYGON;
		g->npoints = (uint16_t) pts->via.array.size;
		for (unsigned i = 0; i < g->npoints; i++) {
			const msgpack_object *p = &pts->via.array.ptr[i];
			if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2)
				return am_error_set(AM_EGEO, "geo: polygon point %u must be [lat, lon]", i + 1);
			if ((rc = get_double(&g->points[i][0], &p->via.array.ptr[0], "polygon latitude")) != 0 ||
			    (rc = get_double(&g->points[i][1], &p->via.array.ptr[1], "polygon longitude")) != 0)
				return rc;
		}
	} else if (strcmp(kind, "geohash") == 0) {
		if (o->via.array.size != 2)
			return am_error_set(AM_EGEO, "geo geohash must be [\"geohash\", prefix]");
		g->kind = AM_GEO_GEOHASH;
		if ((rc = get_str(g->geohash, sizeof(g->geohash), &a[1], "geohash")) != 0)
			return rc;
	} else if (strcmp(kind, "zone") == 0) {
		const msgpack_object *tags = &a[1];
		if (o->via.array.size != 2 || tags->type != MSGPACK_OBJECT_ARRAY)
			return am_error_set(AM_EGEO, "geo zone must be [\"zone\", [tag, ...]]");
		if (tags->via.array.size > AM_GEO_MAX_TAGS)
			return am_error_set(AM_ELIMIT, "geo: %u zone tags, limit %d", tags->via.array.size, AM_GEO_MAX_TAGS);
		g->kind = AM_GEO_ZONE;
		g->ntags = (uint8_t) tags->via.array.size;
		for (unsigned i = 0; i < g->ntags; i++)
			if ((rc = get_str(g->tags[i], sizeof(g->tags[i]), &tags->via.array.ptr[i], "zone tag")) != 0)
				return rc;
	} else {
		return am_error_set(AM_EGEO, "geo kind \"%s\" unknown", kind);
	}
	return am_geo_check(g);
}

enum {
	F_TYPE = 1 << 0, F_SRC = 1 << 1, F_DST = 1 << 2, F_GEO = 1 << 3,
	F_CREATED = 1 << 4, F_EXPIRES = 1 << 5, F_PRIO = 1 << 6, F_CTYPE = 1 << 7,
	F_ZLIB = 1 << 8, F_SEALED = 1 << 9, F_NONCE = 1 << 10, F_REF = 1 << 11,
	F_WORKFLOW = 1 << 12, F_PAYLOAD = 1 << 13,
	F_REQUIRED = F_TYPE | F_SRC | F_DST | F_CREATED | F_EXPIRES | F_PRIO | F_NONCE | F_PAYLOAD,
};

static const char *const field_names[] = {"type", "src", "dst", "geo", "created", "expires", "prio",
    "ctype", "zlib", "sealed", "nonce", "ref", "workflow", "payload"};

static int
decode_field(am_body *b, unsigned f, const msgpack_object *v)
{
	uint64_t u = 0;
	int rc;

	switch (f) {
	case F_TYPE:
		if ((rc = get_str(b->type, sizeof(b->type), v, "type")) != 0)
			return rc;
		return am_tag_check("type", b->type, strlen(b->type));
	case F_SRC:
		return get_fixed_bin(b->src, AM_PK_BYTES, v, "src");
	case F_DST:
		return decode_dest(b, v);
	case F_GEO:
		return decode_geo(&b->geo, v);
	case F_CREATED:
		return get_uint(&b->created_ms, v, "created");
	case F_EXPIRES:
		return get_uint(&b->expires_ms, v, "expires");
	case F_PRIO:
		if ((rc = get_uint(&u, v, "prio")) != 0)
			return rc;
		if (u > AM_PRIO_URGENT)
			return am_error_set(AM_EFIELD, "prio %llu out of range 0..3", (unsigned long long) u);
		b->priority = (uint8_t) u;
		return 0;
	case F_CTYPE:
		return get_str(b->content_type, sizeof(b->content_type), v, "ctype");
	case F_ZLIB:
		return get_bool(&b->compressed, v, "zlib");
	case F_SEALED:
		return get_bool(&b->sealed, v, "sealed");
	case F_NONCE:
		return get_fixed_bin(b->nonce, AM_NONCE_BYTES, v, "nonce");
	case F_REF:
		b->has_ref = true;
		return get_fixed_bin(b->ref, AM_ID_BYTES, v, "ref");
	case F_WORKFLOW:
		return get_str(b->workflow_id, sizeof(b->workflow_id), v, "workflow");
	case F_PAYLOAD:
		if (v->type != MSGPACK_OBJECT_BIN)
			return am_error_set(AM_EFIELD, "payload must be a bin");
		if (v->via.bin.size > AM_MAX_PAYLOAD + crypto_box_SEALBYTES)
			return am_error_set(AM_ETOOBIG, "payload is %u bytes, limit %u", v->via.bin.size, AM_MAX_PAYLOAD);
		b->payload = (const uint8_t *) v->via.bin.ptr;
		b->payload_len = v->via.bin.size;
		return 0;
	}
	return 0;
}

static int
decode_body(am_body *b, const uint8_t *p, size_t len)
{
	msgpack_unpacked up;
	size_t end = 0, off = 0;
	unsigned seen = 0;
	int rc;

	if ((rc = am_mp_check(&end, p, len, AM_MAX_DEPTH, BODY_MAX_OBJECTS)) != 0) {
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		return am_error_set(rc == AM_ETRUNC ? AM_EMALFORMED : rc, "body: %s", why);
	}
	if (end != len)
		return am_error_set(AM_EMALFORMED, "body: %zu bytes after the body map", len - end);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *) p, len, &off) != MSGPACK_UNPACK_SUCCESS) {
		rc = am_error_set(AM_EMALFORMED, "body is not valid msgpack");
		goto out;
	}
	if (up.data.type != MSGPACK_OBJECT_MAP) {
		rc = am_error_set(AM_EMALFORMED, "body must be a msgpack map");
		goto out;
	}
	for (uint32_t i = 0; i < up.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
		unsigned f = 0;
		if (kv->key.type != MSGPACK_OBJECT_STR) {
			rc = am_error_set(AM_EFIELD, "body key %u is not a string", i);
			goto out;
		}
		for (unsigned j = 0; j < sizeof(field_names) / sizeof(field_names[0]); j++)
			if (key_is(&kv->key, field_names[j]))
				f = 1u << j;
		if (f == 0)
			continue; /* unknown keys are carried, never interpreted */
		if (seen & f) {
			rc = am_error_set(AM_EFIELD, "body key \"%s\" appears twice", field_names[__builtin_ctz(f)]);
			goto out;
		}
		seen |= f;
		if ((rc = decode_field(b, f, &kv->val)) != 0)
			goto out;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED) {
		unsigned missing = F_REQUIRED & ~seen;
		rc = am_error_set(AM_EFIELD, "body lacks required key \"%s\"", field_names[__builtin_ctz(missing)]);
		goto out;
	}
	if (b->expires_ms <= b->created_ms) {
		rc = am_error_set(AM_EFIELD, "expires (%llu) is not after created (%llu)",
		    (unsigned long long) b->expires_ms, (unsigned long long) b->created_ms);
		goto out;
	}
	if (b->expires_ms > AM_MAX_TIME_MS) {
		rc = am_error_set(AM_EFIELD, "expires (%llu) is past the year 9999", (unsigned long long) b->expires_ms);
		goto out;
	}
	if (b->expires_ms - b->created_ms > AM_MAX_LIFETIME_MS) {
		rc = am_error_set(AM_EFIELD, "lives %llu days, more than the 3653 allowed",
		    (unsigned long long) ((b->expires_ms - b->created_ms) / 86400000));
		goto out;
	}
	if (b->sealed && b->dest_kind != AM_DEST_NODE) {
		rc = am_error_set(AM_EFIELD, "sealed payload without a single node destination");
		goto out;
	}
	if (!(seen & F_CTYPE))
		snprintf(b->content_type, sizeof(b->content_type), "application/octet-stream");
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

static int
decode_into(am_envelope *env, const uint8_t *buf, size_t len, const uint8_t *base, const uint8_t *known_id)
{
	struct outer o;
	int rc;

	if ((rc = parse_outer(&o, buf, len)) != 0)
		return rc;
	env->body_bytes = base + (o.body - buf);
	env->body_len = o.body_len;
	if ((rc = decode_body(&env->body, env->body_bytes, env->body_len)) != 0)
		return rc;
	if (crypto_sign_verify_detached(o.sig, env->body_bytes, env->body_len, env->body.src) != 0)
		return am_error_set(AM_EBADSIG, "signature does not verify for source key");
	if (known_id != NULL)
		memcpy(env->id, known_id, AM_ID_BYTES);
	else
		crypto_generichash(env->id, AM_ID_BYTES, env->body_bytes, env->body_len, NULL, 0);
	memcpy(env->sig, o.sig, AM_SIG_BYTES);
	env->version = (uint8_t) o.version;
	env->hops_left = (uint8_t) o.hops;
	env->raw_len = len;
	return 0;
}

int
am_envelope_decode(am_envelope *env, const uint8_t *buf, size_t len)
{
	int rc;

	memset(env, 0, sizeof(*env));
	if (len > AM_MAX_ENVELOPE)
		return am_error_set(AM_ETOOBIG, "envelope is %zu bytes, limit %u", len, AM_MAX_ENVELOPE);
	if ((env->raw = malloc(len ? len : 1)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory decoding an envelope");
	memcpy(env->raw, buf, len);
	/* payload and body point into our copy */
	if ((rc = decode_into(env, env->raw, len, env->raw, NULL)) != 0)
		am_envelope_clear(env);
	return rc;
}

int
am_envelope_decode_view(am_envelope *env, const uint8_t *buf, size_t len, const uint8_t *known_id)
{
	int rc;

	memset(env, 0, sizeof(*env));
	if ((rc = decode_into(env, buf, len, buf, known_id)) != 0)
		memset(env, 0, sizeof(*env)); /* never hand out an unverified view */
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
	if ((rc = build(&env->raw, &env->raw_len, env->id, spec, from, &b)) != 0)
		return rc;
	if ((rc = parse_outer(&o, env->raw, env->raw_len)) != 0) {
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

void
am_envelope_clear(am_envelope *env)
{
	if (env == NULL)
		return;
	free(env->raw);
	memset(env, 0, sizeof(*env));
}

static int
inflate_bounded(uint8_t **out, size_t *out_len, const uint8_t *in, size_t len)
{
	z_stream zs;
	uint8_t *buf = NULL;
	size_t cap = len * 4 + 64;
	int zr, rc = 0;

	*out = NULL;
	*out_len = 0;
	if (cap > AM_MAX_PAYLOAD + 1)
		cap = AM_MAX_PAYLOAD + 1;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit(&zs) != Z_OK)
		return am_error_set(AM_ECOMPRESS, "zlib: inflateInit failed");
	buf = malloc(cap);
	if (buf == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory inflating a payload");
		goto out;
	}
	zs.next_in = (Bytef *) in;
	zs.avail_in = (uInt) len;
	for (;;) {
		zs.next_out = buf + zs.total_out;
		zs.avail_out = (uInt) (cap - zs.total_out);
		zr = inflate(&zs, Z_FINISH);
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_BUF_ERROR && zr != Z_OK) {
			rc = am_error_set(AM_ECOMPRESS, "zlib: payload stream is corrupt (%s)", zs.msg ? zs.msg : "?");
			goto out;
		}
		if (zs.avail_out != 0) {
			rc = am_error_set(AM_ECOMPRESS, "zlib: payload stream ends early");
			goto out;
		}
		if (cap > AM_MAX_PAYLOAD) {
			rc = am_error_set(AM_ECOMPRESS, "zlib: payload inflates past the %u-byte limit", AM_MAX_PAYLOAD);
			goto out;
		}
		cap = cap * 2 > AM_MAX_PAYLOAD + 1 ? AM_MAX_PAYLOAD + 1 : cap * 2;
		{
			uint8_t *nb = realloc(buf, cap);
			if (nb == NULL) {
				rc = am_error_set(AM_ENOMEM, "out of memory inflating a payload");
				goto out;
			}
			buf = nb;
		}
	}
	if (zs.total_out > AM_MAX_PAYLOAD) {
		rc = am_error_set(AM_ECOMPRESS, "zlib: payload inflates past the %u-byte limit", AM_MAX_PAYLOAD);
		goto out;
	}
	if (zs.avail_in != 0) {
		rc = am_error_set(AM_ECOMPRESS, "zlib: %u bytes after the end of the payload stream", zs.avail_in);
		goto out;
	}
	*out_len = zs.total_out;
	*out = buf;
	buf = NULL;
out:
	inflateEnd(&zs);
	free(buf);
	return rc;
}

int
am_envelope_payload(uint8_t **out, size_t *out_len, const am_envelope *env, const am_identity *me)
{
	uint8_t *opened = NULL;
	const uint8_t *p = env->body.payload;
	size_t n = env->body.payload_len;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	if (env->body_bytes == NULL)
		return am_error_set(AM_EINVAL, "envelope was not decoded");
	if (env->body.sealed) {
		if (me == NULL)
			return am_error_set(AM_ESEAL, "payload is sealed and no key was given to open it");
		if ((rc = am_identity_open_sealed(me, &opened, &n, p, n)) != 0)
			return rc;
		p = opened;
	}
	if (env->body.compressed) {
		rc = inflate_bounded(out, out_len, p, n);
	} else {
		*out = malloc(n ? n : 1);
		if (*out == NULL)
			rc = am_error_set(AM_ENOMEM, "out of memory copying a payload");
		else {
			memcpy(*out, p, n);
			*out_len = n;
		}
	}
	free(opened);
	return rc;
}

void
am_dest_format(char *out, size_t cap, const am_body *b)
{
	char hex[AM_NODE_ID_LEN + 1];

	switch (b->dest_kind) {
	case AM_DEST_NODE:
		am_node_id_format(hex, b->dest_node);
		snprintf(out, cap, "node:%s", hex);
		break;
	case AM_DEST_GROUP:
		snprintf(out, cap, "group:%s", b->dest_group);
		break;
	case AM_DEST_BROADCAST:
		snprintf(out, cap, "broadcast");
		break;
	default:
		snprintf(out, cap, "?");
	}
}
