/*
 * envelope.c — the signed envelope: decode with limits, verify, payload
 * extraction, and the hop counter rewrite (making one: envelope_build.c).
 *
 * Wire shape (docs/PROTOCOL.md is normative):
 *   outer = [version:uint, body:bin, signature:bin(64), hops_left:uint]
 *   id    = BLAKE2b-256(body), signature = Ed25519(src, body)
 * The body bytes are signed as they are, so nothing is re-canonicalised;
 * a decoder only has to find the body, hash it and check the signature.
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

#define BODY_MAX_OBJECTS 2048

/* ------------------------------------------------------------ decode --- */


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
int
am_env_parse_outer(struct outer *o, const uint8_t *buf, size_t len)
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
	int rc = am_env_parse_outer(&o, buf, len);

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
	int rc = am_env_parse_outer(&o, buf, len);

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

	if ((rc = am_env_parse_outer(&o, buf, len)) != 0)
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
