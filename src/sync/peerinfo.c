/*
 * peerinfo.c — the first frame each side sends on an open link ('N'): who
 * it says it is (a name, pinned by TOFU against the proven key), its role,
 * where it accepts links, its position and zones, its groups and how much
 * it carries. A msgpack map; unknown keys are ignored so later versions
 * can add fields (docs/PROTOCOL.md section 13).
 */
#include "am_sync.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

int
am_peer_info_encode(uint8_t **out, size_t *out_len, const am_peer_info *pi)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	*out = NULL;
	*out_len = 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, (pi->pos.has_fix ? 8 : 6) + (pi->cert[0] ? 1 : 0) + (pi->instance[0] ? 1 : 0));
	if (pi->instance[0]) {
		pack_str(&pk, "instance");
		pack_str(&pk, pi->instance);
	}
	if (pi->cert[0]) {
		pack_str(&pk, "cert");
		pack_str(&pk, pi->cert);
	}
	pack_str(&pk, "name");
	pack_str(&pk, pi->name);
	pack_str(&pk, "role");
	pack_str(&pk, pi->role);
	pack_str(&pk, "listen");
	pack_str(&pk, pi->listen);
	if (pi->pos.has_fix) {
		pack_str(&pk, "lat");
		msgpack_pack_double(&pk, pi->pos.lat);
		pack_str(&pk, "lon");
		msgpack_pack_double(&pk, pi->pos.lon);
	}
	pack_str(&pk, "zones");
	msgpack_pack_array(&pk, pi->pos.ntags);
	for (size_t i = 0; i < pi->pos.ntags; i++)
		pack_str(&pk, pi->pos.tags[i]);
	pack_str(&pk, "groups");
	msgpack_pack_array(&pk, pi->ngroups);
	for (size_t i = 0; i < pi->ngroups; i++)
		pack_str(&pk, pi->groups[i]);
	pack_str(&pk, "outbox");
	msgpack_pack_uint64(&pk, pi->outbox);
	if (sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return am_error_set(AM_ENOMEM, "out of memory for the peer info");
	}
	*out = (uint8_t *) sb.data; /* the sbuffer's malloc'd data is ours now */
	*out_len = sb.size;
	return 0;
}

static int
copy_str(char *dst, size_t cap, const msgpack_object *v, const char *what, bool tag)
{
	if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= cap)
		return am_error_set(AM_EFIELD, "peer info: %s must be a string of at most %zu bytes", what, cap - 1);
	memset(dst, 0, cap); /* a key given twice leaves nothing of the first */
	if (tag && v->via.str.size > 0 && am_tag_check(what, v->via.str.ptr, v->via.str.size) != 0)
		return AM_EFIELD;
	memcpy(dst, v->via.str.ptr, v->via.str.size);
	dst[v->via.str.size] = '\0';
	/* a string with a NUL inside would be cut short silently */
	if (strlen(dst) != v->via.str.size)
		return am_error_set(AM_EFIELD, "peer info: %s holds a NUL byte", what);
	return 0;
}

static int
tag_list(char (*dst)[AM_TAG_MAX + 1], size_t cap, uint8_t *n, const msgpack_object *v, const char *what)
{
	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > cap)
		return am_error_set(AM_EFIELD, "peer info: %s must be a list of at most %zu names", what, cap);
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		int rc = copy_str(dst[i], AM_TAG_MAX + 1, &v->via.array.ptr[i], what, true);
		if (rc != 0)
			return rc;
	}
	*n = (uint8_t) v->via.array.size;
	return 0;
}

static int
number(double *out, const msgpack_object *v)
{
	switch (v->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *out = v->via.f64; return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double) v->via.u64; return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double) v->via.i64; return 0;
	default: return -1;
	}
}

int
am_peer_info_decode(am_peer_info *pi, const uint8_t *buf, size_t len)
{
	msgpack_unpacked up;
	size_t end = 0, off = 0;
	bool has_lat = false, has_lon = false;
	int rc;

	memset(pi, 0, sizeof(*pi));
	if (len > AM_PEER_INFO_MAX)
		return am_error_set(AM_ETOOBIG, "peer info of %zu bytes (limit %d)", len, AM_PEER_INFO_MAX);
	if ((rc = am_msgpack_check(&end, buf, len, 3, 256)) != 0)
		return am_error_set(rc, "peer info: %s", am_error_detail());
	if (end != len)
		return am_error_set(AM_ETRAILING, "peer info has %zu bytes after its map", len - end);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *) buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP) {
		rc = am_error_set(AM_EMALFORMED, "peer info is not a msgpack map");
		goto out;
	}
	/* a key given twice is ambiguous (which one did the sender mean?):
	 * refused, as the JSON readers refuse duplicates */
	for (uint32_t i = 0; i < up.data.via.map.size && rc == 0; i++)
		for (uint32_t j = i + 1; j < up.data.via.map.size && rc == 0; j++) {
			const msgpack_object *a = &up.data.via.map.ptr[i].key, *b = &up.data.via.map.ptr[j].key;
			if (a->type == MSGPACK_OBJECT_STR && b->type == MSGPACK_OBJECT_STR && a->via.str.size == b->via.str.size &&
			    memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0)
				rc = am_error_set(AM_EMALFORMED, "peer info: key \"%.*s\" appears twice", (int) (a->via.str.size > 32 ? 32 : a->via.str.size),
				    a->via.str.ptr);
		}
	for (uint32_t i = 0; i < up.data.via.map.size && rc == 0; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
#define KEY(s) (k->via.str.size == strlen(s) && memcmp(k->via.str.ptr, s, strlen(s)) == 0)
		if (KEY("name"))
			rc = copy_str(pi->name, sizeof(pi->name), v, "name", true);
		else if (KEY("role"))
			rc = copy_str(pi->role, sizeof(pi->role), v, "role", true);
		else if (KEY("listen"))
			rc = copy_str(pi->listen, sizeof(pi->listen), v, "listen", false);
		else if (KEY("cert"))
			rc = copy_str(pi->cert, sizeof(pi->cert), v, "cert", false);
		else if (KEY("instance")) {
			if ((rc = copy_str(pi->instance, sizeof(pi->instance), v, "instance", false)) == 0 &&
			    (strlen(pi->instance) != 16 || strspn(pi->instance, "0123456789abcdef") != 16))
				rc = am_error_set(AM_EFIELD, "peer info: instance must be 16 hex digits");
		}
		else if (KEY("lat")) {
			if (number(&pi->pos.lat, v) != 0 || !(pi->pos.lat >= -90 && pi->pos.lat <= 90))
				rc = am_error_set(AM_EFIELD, "peer info: lat must be a number in -90..90");
			has_lat = true;
		} else if (KEY("lon")) {
			if (number(&pi->pos.lon, v) != 0 || !(pi->pos.lon >= -180 && pi->pos.lon <= 180))
				rc = am_error_set(AM_EFIELD, "peer info: lon must be a number in -180..180");
			has_lon = true;
		} else if (KEY("zones"))
			rc = tag_list(pi->pos.tags, AM_GEO_MAX_TAGS, &pi->pos.ntags, v, "zones");
		else if (KEY("groups"))
			rc = tag_list(pi->groups, AM_QUEUE_MAX_GROUPS, &pi->ngroups, v, "groups");
		else if (KEY("outbox")) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				rc = am_error_set(AM_EFIELD, "peer info: outbox must be a count");
			else
				pi->outbox = v->via.u64;
		}
#undef KEY
	}
	if (rc == 0 && has_lat != has_lon)
		rc = am_error_set(AM_EFIELD, "peer info: lat and lon come together");
	if (rc == 0 && pi->name[0] == '\0')
		rc = am_error_set(AM_EFIELD, "peer info: the name is missing");
	pi->pos.has_fix = has_lat && has_lon;
out:
	msgpack_unpacked_destroy(&up);
	if (rc != 0)
		memset(pi, 0, sizeof(*pi));
	return rc;
}
