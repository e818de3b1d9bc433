/*
 * records.c — the small envelopes the protocol makes for itself:
 * receipts, custody records and summaries.
 */
#include "am_sync.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000ull

void
am_sync_receipt_spec(am_envelope_spec *s, const am_queue_result *d, uint64_t now_ms)
{
	memset(s, 0, sizeof(*s));
	s->type = "receipt";
	s->dest_kind = AM_DEST_NODE;
	memcpy(s->dest_node, d->src, AM_PK_BYTES);
	s->ref = d->id;
	s->created_ms = now_ms;
	/* as long as the original may still be carried, and at least an hour */
	s->expires_ms = d->expires_ms > now_ms + HOUR_MS ? d->expires_ms : now_ms + HOUR_MS;
	s->priority = AM_PRIO_HIGH;
	s->no_compress = true;
}

int
am_sync_receipts_create(am_envelope *env, const uint8_t to[static AM_PK_BYTES], const uint8_t *ids, size_t n,
    uint64_t expires_ms, const am_identity *me, uint64_t now_ms)
{
	am_envelope_spec s = {0};

	if (n == 0 || n > AM_RECEIPT_MAX_IDS)
		return am_error_set(AM_EINVAL, "a receipt covers 1..%zu envelopes, not %zu", (size_t) AM_RECEIPT_MAX_IDS, n);
	s.type = "receipt";
	s.dest_kind = AM_DEST_NODE;
	memcpy(s.dest_node, to, AM_PK_BYTES);
	s.ref = ids;
	s.created_ms = now_ms;
	s.expires_ms = expires_ms > now_ms + HOUR_MS ? expires_ms : now_ms + HOUR_MS;
	s.priority = AM_PRIO_HIGH;
	s.content_type = "application/x-agent-mesh-ids";
	s.no_compress = true; /* ids are random */
	s.payload = ids;
	s.payload_len = n * AM_ID_BYTES;
	return am_envelope_create_decoded(env, &s, me);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/* Stick records are broadcast with one hop: carried on the stick only. */
static int
make_record(am_envelope *env, const char *type, const char *ctype, const void *payload, size_t len,
    const am_identity *node, uint64_t now_ms)
{
	am_envelope_spec s = {0};

	s.type = type;
	s.dest_kind = AM_DEST_BROADCAST;
	s.created_ms = now_ms;
	s.expires_ms = now_ms + 365ull * 24 * HOUR_MS;
	s.priority = AM_PRIO_BULK;
	s.content_type = ctype;
	s.no_compress = true;
	s.payload = payload;
	s.payload_len = len;
	s.hops = 1;
	return am_envelope_create_decoded(env, &s, node);
}

int
am_custody_create(am_envelope *env, const am_custody *c, const am_identity *node, uint64_t now_ms)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_str(&pk, "bundle");
	pack_str(&pk, c->bundle);
	pack_str(&pk, "added");
	msgpack_pack_uint64(&pk, c->added);
	pack_str(&pk, "taken");
	msgpack_pack_uint64(&pk, c->taken);
	pack_str(&pk, "taken_ids");
	msgpack_pack_bin(&pk, c->taken * 8);
	msgpack_pack_bin_body(&pk, c->taken_prefixes, c->taken * 8);
	pack_str(&pk, "store");
	msgpack_pack_uint64(&pk, c->store_count);
	if (sb.data == NULL || sb.size > AM_MAX_PAYLOAD)
		rc = am_error_set(AM_ETOOBIG, "custody record too large (%zu envelopes taken)", (size_t) c->taken);
	else
		rc = make_record(env, "custody", "application/msgpack", sb.data, sb.size, node, now_ms);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int
am_custody_decode(am_custody *c, const am_envelope *env)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (strcmp(env->body.type, "custody") != 0 || env->body.compressed || env->body.sealed)
		return am_error_set(AM_EFIELD, "not a custody record (type %s)", env->body.type);
	{
		size_t end = 0;
		if ((rc = am_msgpack_check(&end, env->body.payload, env->body.payload_len, 4, 64)) != 0)
			return am_error_set(rc == AM_ETRUNC ? AM_EMALFORMED : rc, "custody record payload: %s", am_error_detail());
		if (end != env->body.payload_len)
			return am_error_set(AM_EMALFORMED, "custody record payload has bytes after its map");
	}
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *) env->body.payload, env->body.payload_len, &off) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP) {
		rc = am_error_set(AM_EMALFORMED, "custody record payload is not a msgpack map");
		goto out;
	}
	for (uint32_t i = 0; i < up.data.via.map.size; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
#define KEY(name) (k->via.str.size == strlen(name) && memcmp(k->via.str.ptr, name, strlen(name)) == 0)
		if (KEY("bundle") && v->type == MSGPACK_OBJECT_STR && v->via.str.size < sizeof(c->bundle)) {
			memcpy(c->bundle, v->via.str.ptr, v->via.str.size);
			c->bundle[v->via.str.size] = '\0';
		} else if (KEY("added") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			c->added = v->via.u64;
		} else if (KEY("taken") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			c->taken = v->via.u64;
		} else if (KEY("store") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			c->store_count = v->via.u64;
		} else if (KEY("taken_ids") && v->type == MSGPACK_OBJECT_BIN) {
			c->taken_prefixes = (const uint8_t *) v->via.bin.ptr;
			if (v->via.bin.size % 8 != 0) {
				rc = am_error_set(AM_EFIELD, "custody taken_ids is not a list of 8-byte prefixes");
				goto out;
			}
		}
#undef KEY
	}
	if (c->taken_prefixes == NULL && c->taken > 0)
		rc = am_error_set(AM_EFIELD, "custody record lacks taken_ids");
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

static int
cmp8(const void *a, const void *b)
{
	return memcmp(a, b, 8);
}

int
am_summary_create(am_envelope *env, const uint8_t *prefixes, size_t n, const am_identity *node, uint64_t now_ms)
{
	uint8_t *sorted;
	int rc;

	if (n * 8 > AM_MAX_PAYLOAD)
		n = AM_MAX_PAYLOAD / 8; /* the newest ones are left out: a missed saving, never a loss */
	if ((sorted = malloc(n ? n * 8 : 1)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a summary");
	memcpy(sorted, prefixes, n * 8);
	qsort(sorted, n, 8, cmp8);
	rc = make_record(env, "summary", "application/x-agent-mesh-summary", sorted, n * 8, node, now_ms);
	free(sorted);
	return rc;
}

bool
am_summary_has(const am_envelope *s, const uint8_t id[static AM_ID_BYTES])
{
	const uint8_t *p = s->body.payload;
	size_t lo = 0, hi;

	if (strcmp(s->body.type, "summary") != 0 || s->body.compressed || s->body.sealed || s->body.payload_len % 8)
		return false;
	hi = s->body.payload_len / 8;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(p + mid * 8, id, 8);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

int
am_revocation_create(am_envelope *env, const uint8_t *records, size_t n, uint64_t expires_ms,
    const am_identity *issuer, uint64_t now_ms)
{
	am_envelope_spec s = {0};

	if (n == 0 || n * AM_REVOCATION_RECORD > AM_MAX_PAYLOAD)
		return am_error_set(AM_ELIMIT, "a revocation holds 1..%zu records", (size_t) (AM_MAX_PAYLOAD / AM_REVOCATION_RECORD));
	s.type = "revocation";
	s.dest_kind = AM_DEST_BROADCAST;
	s.created_ms = now_ms;
	/* it must outlive what it revokes; at least a year */
	s.expires_ms = expires_ms > now_ms + 365ull * 24 * HOUR_MS ? expires_ms : now_ms + 365ull * 24 * HOUR_MS;
	if (s.expires_ms - now_ms > AM_MAX_LIFETIME_MS) /* tokens live at most 10 years less a day */
		s.expires_ms = now_ms + AM_MAX_LIFETIME_MS;
	s.priority = AM_PRIO_URGENT;
	s.content_type = "application/x-agent-mesh-revocation";
	s.no_compress = true;
	s.payload = records;
	s.payload_len = n * AM_REVOCATION_RECORD;
	return am_envelope_create_decoded(env, &s, issuer);
}
