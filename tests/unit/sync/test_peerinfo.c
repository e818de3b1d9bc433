/*
 * test_peerinfo.c — the peer-info frame and the discovery beacon: round
 * trips, every field refused by name when wrong, a beacon under another
 * network key or with a forged signature refused.
 */
#include "am_sync.h"
#include "../../check.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static void
peer_info(void)
{
	am_peer_info a = {0}, b;
	uint8_t *buf = NULL;
	size_t len = 0;

	snprintf(a.name, sizeof(a.name), "crane-3");
	snprintf(a.role, sizeof(a.role), "node");
	snprintf(a.listen, sizeof(a.listen), "tcp://0.0.0.0:7400");
	a.pos.has_fix = true;
	a.pos.lat = 52.52;
	a.pos.lon = -13.405;
	a.pos.ntags = 2;
	snprintf(a.pos.tags[0], AM_TAG_MAX + 1, "north-yard");
	snprintf(a.pos.tags[1], AM_TAG_MAX + 1, "zone:7");
	a.ngroups = 1;
	snprintf(a.groups[0], AM_TAG_MAX + 1, "cranes");
	a.outbox = 123456789012ull;
	REQUIRE(am_peer_info_encode(&buf, &len, &a) == 0);
	CHECK_RC(am_peer_info_decode(&b, buf, len), 0);
	CHECK(strcmp(b.name, "crane-3") == 0 && strcmp(b.role, "node") == 0 && strcmp(b.listen, a.listen) == 0);
	CHECK(b.pos.has_fix && b.pos.lat == 52.52 && b.pos.lon == -13.405);
	CHECK(b.pos.ntags == 2 && strcmp(b.pos.tags[1], "zone:7") == 0);
	CHECK(b.ngroups == 1 && strcmp(b.groups[0], "cranes") == 0 && b.outbox == a.outbox);
	/* every cut is refused, never read past */
	for (size_t i = 0; i < len; i++)
		CHECK(am_peer_info_decode(&b, buf, i) != 0);
	{
		uint8_t *more = malloc(len + 1);
		memcpy(more, buf, len);
		more[len] = 0xc0;
		CHECK_RC(am_peer_info_decode(&b, more, len + 1), AM_ETRAILING);
		free(more);
	}
	free(buf);

	/* hand-made maps with one thing wrong each */
	struct {
		const char *what;
		int want;
	} cases[] = {{"no name", AM_EFIELD}, {"bad name", AM_EFIELD}, {"lat only", AM_EFIELD}, {"lat 91", AM_EFIELD},
	    {"name int", AM_EFIELD}, {"17 zones", AM_EFIELD}, {"not a map", AM_EMALFORMED}};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
#define S(x) (msgpack_pack_str(&pk, strlen(x)), msgpack_pack_str_body(&pk, x, strlen(x)))
		switch (c) {
		case 0: msgpack_pack_map(&pk, 1); S("role"); S("node"); break;
		case 1: msgpack_pack_map(&pk, 1); S("name"); S("crane 3"); break;
		case 2: msgpack_pack_map(&pk, 2); S("name"); S("x"); S("lat"); msgpack_pack_double(&pk, 1); break;
		case 3:
			msgpack_pack_map(&pk, 3); S("name"); S("x"); S("lat"); msgpack_pack_double(&pk, 91);
			S("lon"); msgpack_pack_double(&pk, 1);
			break;
		case 4: msgpack_pack_map(&pk, 1); S("name"); msgpack_pack_int(&pk, 7); break;
		case 5:
			msgpack_pack_map(&pk, 2); S("name"); S("x"); S("zones"); msgpack_pack_array(&pk, 17);
			for (int i = 0; i < 17; i++)
				S("z");
			break;
		case 6: msgpack_pack_array(&pk, 1); S("x"); break;
		}
#undef S
		int rc = am_peer_info_decode(&b, (const uint8_t *) sb.data, sb.size);
		if (rc != cases[c].want)
			fprintf(stderr, "case %s: got %d (%s)\n", cases[c].what, rc, am_error_detail());
		CHECK(rc == cases[c].want);
		CHECK(b.name[0] == '\0'); /* zeroed on error */
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
beacons(void)
{
	uint8_t key[32], other[32], buf[AM_BEACON_MAX], seed[32] = {9};
	size_t len = 0;
	am_identity *me = NULL;
	am_beacon b = {0}, d;

	memset(key, 1, sizeof(key));
	memset(other, 2, sizeof(other));
	REQUIRE(am_identity_from_seed(&me, seed) == 0);
	b.port = 7400;
	b.ts_ms = 1700000000123ull;
	snprintf(b.name, sizeof(b.name), "office-1");
	REQUIRE(am_beacon_encode(buf, sizeof(buf), &len, &b, me, key) == 0);
	CHECK_RC(am_beacon_decode(&d, buf, len, key), 0);
	CHECK(d.port == 7400 && d.ts_ms == b.ts_ms && strcmp(d.name, "office-1") == 0);
	CHECK(memcmp(d.pk, am_identity_pk(me), AM_PK_BYTES) == 0);
	CHECK_RC(am_beacon_decode(&d, buf, len, other), AM_ENETKEY); /* AM_EBADSIG on 955567a */
	CHECK(strstr(am_error_detail(), "network key") != NULL);
	for (size_t i = 0; i < len; i++) { /* any flipped bit is refused */
		buf[i] ^= 0x10;
		CHECK(am_beacon_decode(&d, buf, len, key) != 0);
		buf[i] ^= 0x10;
	}
	for (size_t i = 0; i < len; i++)
		CHECK(am_beacon_decode(&d, buf, i, key) != 0);
	CHECK_RC(am_beacon_decode(&d, buf, len, key), 0);
	am_identity_free(me);
}

/* The beacon vector in docs/PROTOCOL.md section 14, made in Python. */
static void
beacon_vector(const char *path)
{
	char *bytes = NULL;
	size_t len = 0;
	uint8_t key[32], pk[AM_PK_BYTES], seed[32];
	am_identity *id = NULL;
	am_beacon b;

	REQUIRE(am_file_read(&bytes, &len, path, 4096) == 0);
	memset(key, 1, sizeof(key));
	memset(seed, 9, sizeof(seed));
	REQUIRE(am_identity_from_seed(&id, seed) == 0);
	memcpy(pk, am_identity_pk(id), AM_PK_BYTES);
	CHECK_RC(am_beacon_decode(&b, (const uint8_t *) bytes, len, key), 0);
	CHECK(b.port == 7400 && b.ts_ms == 1700000000123ull && strcmp(b.name, "office-1") == 0);
	CHECK(memcmp(b.pk, pk, AM_PK_BYTES) == 0);
	/* and ours is byte for byte the same */
	{
		uint8_t mine[AM_BEACON_MAX];
		size_t mlen = 0;
		am_beacon in = {0};
		in.port = 7400;
		in.ts_ms = 1700000000123ull;
		snprintf(in.name, sizeof(in.name), "office-1");
		CHECK_RC(am_beacon_encode(mine, sizeof(mine), &mlen, &in, id, key), 0);
		CHECK(mlen == len && memcmp(mine, bytes, len) == 0);
	}
	am_identity_free(id);
	free(bytes);
}

/* The "AMB2" vector (links on the HTTP port, ws), made in Python too. */
static void
beacon_ws_vector(const char *path)
{
	char *bytes = NULL;
	size_t len = 0, mlen = 0;
	uint8_t key[32], seed[32], mine[AM_BEACON_MAX];
	am_identity *id = NULL;
	am_beacon b, in = {0};

	REQUIRE(am_file_read(&bytes, &len, path, 4096) == 0);
	memset(key, 1, sizeof(key));
	memset(seed, 9, sizeof(seed));
	REQUIRE(am_identity_from_seed(&id, seed) == 0);
	CHECK_RC(am_beacon_decode(&b, (const uint8_t *) bytes, len, key), 0);
	CHECK(b.ws && b.port == 8787 && strcmp(b.name, "office-1") == 0);
	in.port = 8787;
	in.ws = true;
	in.ts_ms = 1700000000123ull;
	snprintf(in.name, sizeof(in.name), "office-1");
	CHECK_RC(am_beacon_encode(mine, sizeof(mine), &mlen, &in, id, key), 0);
	CHECK(mlen == len && memcmp(mine, bytes, len) == 0);
	in.ws = false; /* the tcp one differs in its magic only, and is not taken for ws */
	CHECK_RC(am_beacon_encode(mine, sizeof(mine), &mlen, &in, id, key), 0);
	CHECK_RC(am_beacon_decode(&b, mine, mlen, key), 0);
	CHECK(!b.ws);
	am_identity_free(id);
	free(bytes);
}

/* instance: carried when set, 16 hex or refused by name; an older peer
 * without it decodes to "" */
static void
peer_instance(void)
{
	am_peer_info in = {0}, out;
	uint8_t *buf = NULL;
	size_t len = 0;

	snprintf(in.name, sizeof(in.name), "site-gw");
	snprintf(in.role, sizeof(in.role), "gateway");
	snprintf(in.instance, sizeof(in.instance), "0123456789abcdef");
	CHECK_RC(am_peer_info_encode(&buf, &len, &in), 0);
	CHECK_RC(am_peer_info_decode(&out, buf, len), 0);
	CHECK(strcmp(out.instance, "0123456789abcdef") == 0);
	free(buf);
	in.instance[0] = '\0';
	CHECK_RC(am_peer_info_encode(&buf, &len, &in), 0);
	CHECK_RC(am_peer_info_decode(&out, buf, len), 0);
	CHECK(out.instance[0] == '\0');
	free(buf);
	snprintf(in.instance, sizeof(in.instance), "0123456789ABCDEF");
	CHECK_RC(am_peer_info_encode(&buf, &len, &in), 0);
	CHECK_RC(am_peer_info_decode(&out, buf, len), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "instance") != NULL);
	free(buf);
}

int
main(int argc, char **argv)
{
	REQUIRE(am_core_init() == 0);
	peer_info();
	peer_instance();
	beacons();
	if (argc > 1)
		beacon_vector(argv[1]);
	if (argc > 2)
		beacon_ws_vector(argv[2]);
	return check_done("test_peerinfo");
}
