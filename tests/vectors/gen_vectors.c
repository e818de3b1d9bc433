/*
 * gen_vectors.c — writes the envelope test vectors (tests/vectors/
 * envelopes.json) deterministically: fixed seeds, fixed nonces, fixed
 * times. Positive vectors go through am_envelope_create; negative ones are
 * built by hand around a valid envelope so that each breaks exactly one
 * rule. `meson test vectors-current` re-runs it and compares with the
 * checked-in file, so an accidental wire change fails loudly.
 *
 * usage: gen_vectors OUTPUT.json
 */
#include "am_core.h"
#include "am_sync.h"
#include "../membuf.h"
#include "vector_json.h"

#include <jansson.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1767225600000ull /* 2026-01-01T00:00:00Z */

static uint8_t seed_a[32], seed_b[32], nonce[8];

static json_t *
positive(const char *name, const char *about, am_envelope_spec *spec, am_identity *a, const char *payload_text)
{
	uint8_t *env = NULL, id[32];
	size_t len = 0;
	am_envelope d;
	json_t *o = json_object();

	spec->nonce = nonce;
	if (am_envelope_create(&env, &len, id, spec, a) != 0 || am_envelope_decode(&d, env, len) != 0) {
		fprintf(stderr, "gen_vectors: %s: %s\n", name, am_error_detail());
		exit(1);
	}
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "about", json_string(about));
	set_hex(o, "signer_seed", seed_a, 32);
	set_hex(o, "signer_pk", am_identity_pk(a), 32);
	set_hex(o, "envelope", env, len);
	set_hex(o, "body", d.body_bytes, d.body_len);
	set_hex(o, "id", id, 32);
	set_hex(o, "signature", d.sig, 64);
	json_object_set_new(o, "hops_left", json_integer(d.hops_left));
	json_object_set_new(o, "type", json_string(d.body.type));
	json_object_set_new(o, "created", json_integer((json_int_t) d.body.created_ms));
	json_object_set_new(o, "expires", json_integer((json_int_t) d.body.expires_ms));
	json_object_set_new(o, "prio", json_integer(d.body.priority));
	json_object_set_new(o, "zlib", json_boolean(d.body.compressed));
	json_object_set_new(o, "payload_text", json_string(payload_text));
	am_envelope_clear(&d);
	free(env);
	return o;
}

/* --- hand-built bodies for negative vectors --- */

enum variant { V_OK, V_LAT91, V_POLY0, V_NOSRC, V_DUPKEY, V_DEEP, V_EXPIRY, V_BIGPAYLOAD, V_PRIO9, V_BADDST };

static void
pstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void
pbin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

static void
build_body(msgpack_sbuffer *sb, enum variant v, const uint8_t *src, const uint8_t *dst)
{
	msgpack_packer pk;
	size_t plen = v == V_BIGPAYLOAD ? AM_MAX_PAYLOAD + 100 : 5;
	uint8_t *payload = calloc(1, plen);
	unsigned n = 9 + (v == V_DUPKEY) - (v == V_NOSRC);

	memcpy(payload, "hello", 5);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	pstr(&pk, "type");
	pstr(&pk, "message");
	if (v != V_NOSRC) {
		pstr(&pk, "src");
		pbin(&pk, src, 32);
	}
	pstr(&pk, "dst");
	if (v == V_BADDST) {
		msgpack_pack_array(&pk, 2);
		pstr(&pk, "planet");
		pstr(&pk, "mars");
	} else {
		msgpack_pack_array(&pk, 2);
		pstr(&pk, "node");
		pbin(&pk, dst, 32);
	}
	pstr(&pk, "geo");
	if (v == V_LAT91) {
		msgpack_pack_array(&pk, 4);
		pstr(&pk, "circle");
		msgpack_pack_double(&pk, 91.0);
		msgpack_pack_double(&pk, 10.0);
		msgpack_pack_double(&pk, 100.0);
	} else if (v == V_POLY0) {
		msgpack_pack_array(&pk, 2);
		pstr(&pk, "polygon");
		msgpack_pack_array(&pk, 0);
	} else if (v == V_DEEP) {
		msgpack_pack_array(&pk, 2);
		pstr(&pk, "zone");
		for (int i = 0; i < 8; i++)
			msgpack_pack_array(&pk, 1);
		pstr(&pk, "x");
	} else {
		msgpack_pack_array(&pk, 2);
		pstr(&pk, "zone");
		msgpack_pack_array(&pk, 1);
		pstr(&pk, "north-gate");
	}
	pstr(&pk, "created");
	msgpack_pack_uint64(&pk, T0);
	pstr(&pk, "expires");
	msgpack_pack_uint64(&pk, v == V_EXPIRY ? T0 : T0 + 3600000);
	pstr(&pk, "prio");
	msgpack_pack_uint8(&pk, v == V_PRIO9 ? 9 : 1);
	pstr(&pk, "nonce");
	pbin(&pk, nonce, 8);
	pstr(&pk, "payload");
	pbin(&pk, payload, plen);
	if (v == V_DUPKEY) {
		pstr(&pk, "prio");
		msgpack_pack_uint8(&pk, 2);
	}
	free(payload);
}

/* Wrap body bytes: [version, body, sig, hops] signed by a. */
static void
wrap(msgpack_sbuffer *out, unsigned version, const uint8_t *body, size_t blen, const uint8_t sig[64])
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, (uint8_t) version);
	pbin(&pk, body, blen);
	pbin(&pk, sig, 64);
	msgpack_sbuffer_write(out, "\xcc\x10", 2);
}

static void
negative(json_t *arr, const char *name, const char *error, const char *about, const uint8_t *p, size_t n)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "error", json_string(error));
	json_object_set_new(o, "about", json_string(about));
	set_hex(o, "envelope", p, n);
	json_array_append_new(arr, o);
}

static void
negative_body(json_t *arr, const char *name, const char *error, const char *about, enum variant v, am_identity *a,
    const uint8_t *dst)
{
	msgpack_sbuffer body, out;
	uint8_t sig[64];

	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&out);
	build_body(&body, v, am_identity_pk(a), dst);
	am_identity_sign(a, sig, (uint8_t *) body.data, body.size);
	wrap(&out, 1, (uint8_t *) body.data, body.size, sig);
	negative(arr, name, error, about, (uint8_t *) out.data, out.size);
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&out);
}

int
main(int argc, char **argv)
{
	am_identity *a = NULL, *b = NULL;
	json_t *root = json_object(), *pos = json_array(), *neg = json_array();
	am_envelope_spec s;
	am_geo geo;
	uint8_t *env = NULL, id[32], ref[32];
	size_t len;
	char big[600];

	if (argc != 2 || am_core_init() != 0) {
		fprintf(stderr, "usage: gen_vectors OUTPUT.json\n");
		return 2;
	}
	for (int i = 0; i < 32; i++) {
		seed_a[i] = (uint8_t) i;
		seed_b[i] = (uint8_t) (0x20 + i);
	}
	for (int i = 0; i < 8; i++)
		nonce[i] = (uint8_t) (i + 1);
	if (am_identity_from_seed(&a, seed_a) != 0 || am_identity_from_seed(&b, seed_b) != 0)
		return 1;

	memset(&s, 0, sizeof(s));
	s.dest_kind = AM_DEST_NODE;
	memcpy(s.dest_node, am_identity_pk(b), 32);
	s.created_ms = T0;
	s.expires_ms = T0 + 86400000;
	s.priority = AM_PRIO_HIGH;
	s.content_type = "text/plain; charset=utf-8";
	s.workflow_id = "wf-demo";
	s.payload = (const uint8_t *) "hello, field";
	s.payload_len = 12;
	json_array_append_new(pos, positive("node-text", "to one node, short text (not compressed), workflow id", &s, a,
	    "hello, field"));

	memset(&s, 0, sizeof(s));
	s.dest_kind = AM_DEST_GROUP;
	s.dest_group = "crane-ops";
	if (am_geo_parse(&geo, "circle:52.52,13.405,1500") != 0)
		return 1;
	s.geo = &geo;
	s.created_ms = T0 + 1000;
	s.expires_ms = T0 + 7200000;
	s.priority = AM_PRIO_NORMAL;
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 10; i++)
		strcat(big, "lift plan approved for crane 3; ");
	s.payload = (const uint8_t *) big;
	s.payload_len = strlen(big);
	s.content_type = "text/plain; charset=utf-8";
	json_array_append_new(pos, positive("group-circle-zlib", "to a group inside a 1.5 km circle, zlib-compressed payload",
	    &s, a, big));

	memset(&s, 0, sizeof(s));
	s.dest_kind = AM_DEST_BROADCAST;
	if (am_geo_parse(&geo, "polygon:-10,179;-10,-179;10,-179;10,179") != 0)
		return 1;
	s.geo = &geo;
	s.created_ms = T0 + 2000;
	s.expires_ms = T0 + 600000;
	s.priority = AM_PRIO_URGENT;
	s.type = "alert";
	for (int i = 0; i < 32; i++)
		ref[i] = (uint8_t) (0xa0 + i);
	s.ref = ref;
	s.payload = (const uint8_t *) "evacuate";
	s.payload_len = 8;
	json_array_append_new(pos, positive("broadcast-polygon-ref",
	    "broadcast inside a polygon across the antimeridian, type alert, with a reference id", &s, a, "evacuate"));

	/* negatives derived from the first positive envelope */
	{
		json_t *first = json_array_get(pos, 0);
		const char *h = json_string_value(json_object_get(first, "envelope"));
		size_t hl = strlen(h) / 2;
		uint8_t *e = malloc(hl + 1);
		sodium_hex2bin(e, hl, h, strlen(h), NULL, &len, NULL);
		/* body starts after 0x94 0x01 0xc4 LEN (bin8) or 0xc5 LEN LEN */
		size_t body_off = e[2] == 0xc4 ? 4 : 5;
		size_t sig_off = len - 2 - 64;

		e[sig_off + 10] ^= 0x01;
		negative(neg, "sig-bitflip", "AM_EBADSIG", "one bit of the signature flipped", e, len);
		e[sig_off + 10] ^= 0x01;
		e[len - 2 - 64 - 2 - 3] ^= 0x20; /* inside the payload bytes at the end of the body */
		negative(neg, "body-bitflip", "AM_EBADSIG", "one bit of the payload flipped", e, len);
		e[len - 2 - 64 - 2 - 3] ^= 0x20;
		negative(neg, "truncated", "AM_ETRUNC", "last 10 bytes cut off", e, len - 10);
		negative(neg, "truncated-in-body", "AM_ETRUNC", "cut in the middle of the body", e, body_off + 20);
		e[1] = 2;
		negative(neg, "wrong-version", "AM_EVERSION", "version 2", e, len);
		e[1] = 1;
		e[len] = 0x00;
		negative(neg, "trailing-byte", "AM_ETRAILING", "one zero byte after the envelope", e, len + 1);
		e[0] = 0x93;
		negative(neg, "three-elements", "AM_EMALFORMED", "outer array of 3 elements", e, len);
		e[0] = 0x94;
		/* wrong key: the body names B as source but A signed it */
		{
			msgpack_sbuffer body, out;
			uint8_t sig[64];
			msgpack_sbuffer_init(&body);
			msgpack_sbuffer_init(&out);
			build_body(&body, V_OK, am_identity_pk(b), am_identity_pk(a));
			am_identity_sign(a, sig, (uint8_t *) body.data, body.size);
			wrap(&out, 1, (uint8_t *) body.data, body.size, sig);
			negative(neg, "wrong-key", "AM_EBADSIG", "src is key B, signature by key A", (uint8_t *) out.data,
			    out.size);
			msgpack_sbuffer_destroy(&body);
			msgpack_sbuffer_destroy(&out);
		}
		free(e);
	}
	negative_body(neg, "latitude-91", "AM_EGEO", "validly signed, circle latitude 91", V_LAT91, a, am_identity_pk(b));
	negative_body(neg, "polygon-0-points", "AM_EGEO", "validly signed, polygon with no points", V_POLY0, a,
	    am_identity_pk(b));
	negative_body(neg, "missing-src", "AM_EFIELD", "validly signed body without src", V_NOSRC, a, am_identity_pk(b));
	negative_body(neg, "duplicate-key", "AM_EFIELD", "body map names prio twice", V_DUPKEY, a, am_identity_pk(b));
	negative_body(neg, "too-deep", "AM_ELIMIT", "geo nested 10 levels deep", V_DEEP, a, am_identity_pk(b));
	negative_body(neg, "expires-before-created", "AM_EFIELD", "expires equals created", V_EXPIRY, a,
	    am_identity_pk(b));
	negative_body(neg, "priority-9", "AM_EFIELD", "prio out of 0..3", V_PRIO9, a, am_identity_pk(b));
	negative_body(neg, "unknown-destination", "AM_EFIELD", "dst kind planet", V_BADDST, a, am_identity_pk(b));

	/* a bundle of the three positive envelopes, written by A */
	{
		struct membuf sb = {0};
		am_bundle_writer *w = NULL;
		uint8_t hdr[AM_BUNDLE_HDR_LEN];
		json_t *bo = json_object();
		size_t i;
		json_t *pv;
		if (am_bundle_writer_new(&w, a, T0 + 60000, NULL, membuf_write, &sb) != 0)
			return 1;
		json_array_foreach(pos, i, pv) {
			const char *h = json_string_value(json_object_get(pv, "envelope"));
			const char *ih = json_string_value(json_object_get(pv, "id"));
			size_t hl = strlen(h) / 2, il;
			uint8_t *e = malloc(hl), eid[32];
			sodium_hex2bin(e, hl, h, strlen(h), NULL, &len, NULL);
			sodium_hex2bin(eid, 32, ih, 64, NULL, &il, NULL);
			if (am_bundle_writer_add(w, e, len, eid) != 0)
				return 1;
			free(e);
		}
		if (am_bundle_writer_finish(w, hdr) != 0)
			return 1;
		memcpy(sb.buf, hdr, sizeof(hdr));
		am_bundle_writer_free(w);
		json_object_set_new(bo, "about", json_string("the three positive envelopes in one bundle written by the signer at T0+60s"));
		set_hex(bo, "file", sb.buf, sb.len);
		set_hex(bo, "header", sb.buf, AM_BUNDLE_HDR_LEN);
		json_object_set_new(bo, "count", json_integer(3));
		json_object_set_new(bo, "created", json_integer((json_int_t) (T0 + 60000)));
		json_object_set_new(root, "bundle", bo);
		free(sb.buf);
	}
	json_object_set_new(root, "format", json_string("agent_mesh envelope v1 test vectors; see docs/PROTOCOL.md"));
	set_hex(root, "recipient_seed", seed_b, 32);
	set_hex(root, "recipient_pk", am_identity_pk(b), 32);
	json_object_set_new(root, "positive", pos);
	json_object_set_new(root, "negative", neg);
	if (write_vectors(root, argv[1], "gen_vectors", JSON_SORT_KEYS) != 0)
		return 1;
	free(env);
	(void) id;
	am_identity_free(a);
	am_identity_free(b);
	return 0;
}
