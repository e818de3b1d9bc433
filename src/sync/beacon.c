/*
 * beacon.c — the discovery beacon (docs/PROTOCOL.md section 14), sent over
 * UDP multicast so nodes on a LAN find each other's link port:
 *
 *   "AMB1" | pk[32] | port u16 | ts_ms u64 | name_len u8 | name |
 *   ("AMB2": the same, for links as a websocket at /mesh on that port,
 *   the daemons' default: old receivers ignore it, as they must)
 *   sig[64] (Ed25519 by pk over everything before it) |
 *   mac[32] (BLAKE2b-256 keyed with the discovery key over everything before it)
 *
 * The discovery key is BLAKE2b-256(key = network key, "agent-mesh discovery
 * v1"), so a device without the network key can neither make a beacon that
 * others accept nor learn anything by checking one against a guessed key
 * of its own. The MAC is checked first (cheap, turns away outsiders), then
 * the signature (a member cannot announce another member's key). A beacon
 * only ever makes a node dial; the link handshake proves the rest.
 */
#include "am_sync.h"

#include <sodium.h>
#include <string.h>

#define MAGIC "AMB1"
#define MAGIC_WS "AMB2"
#define FIXED (4 + AM_PK_BYTES + 2 + 8 + 1)

static void
discovery_key(uint8_t k[32], const uint8_t netkey[32])
{
	static const char label[] = "agent-mesh discovery v1";
	crypto_generichash(k, 32, (const uint8_t *) label, sizeof(label) - 1, netkey, 32);
}

int
am_beacon_encode(uint8_t *out, size_t cap, size_t *len, const am_beacon *b, const am_identity *me,
    const uint8_t netkey[static 32])
{
	size_t nl = strlen(b->name), n = FIXED + nl;
	uint8_t k[32];

	if (nl > AM_TAG_MAX || cap < n + AM_SIG_BYTES + 32)
		return am_error_set(AM_ETOOBIG, "beacon: name or buffer too long");
	memcpy(out, b->ws ? MAGIC_WS : MAGIC, 4);
	memcpy(out + 4, am_identity_pk(me), AM_PK_BYTES);
	out[36] = (uint8_t) (b->port >> 8);
	out[37] = (uint8_t) b->port;
	for (int i = 0; i < 8; i++)
		out[38 + i] = (uint8_t) (b->ts_ms >> (56 - 8 * i));
	out[46] = (uint8_t) nl;
	memcpy(out + FIXED, b->name, nl);
	am_identity_sign(me, out + n, out, n);
	n += AM_SIG_BYTES;
	discovery_key(k, netkey);
	crypto_generichash(out + n, 32, out, n, k, sizeof(k));
	sodium_memzero(k, sizeof(k));
	*len = n + 32;
	return 0;
}

int
am_beacon_decode(am_beacon *b, const uint8_t *buf, size_t len, const uint8_t netkey[static 32])
{
	uint8_t k[32], mac[32];
	size_t nl, n;
	int bad;

	memset(b, 0, sizeof(*b));
	if (len < FIXED + AM_SIG_BYTES + 32)
		return am_error_set(AM_ETRUNC, "beacon of %zu bytes is too short", len);
	if (memcmp(buf, MAGIC, 4) != 0 && memcmp(buf, MAGIC_WS, 4) != 0)
		return am_error_set(AM_EVERSION, "not an agent-mesh beacon (magic)");
	nl = buf[46];
	n = FIXED + nl;
	if (nl > AM_TAG_MAX || len != n + AM_SIG_BYTES + 32)
		return am_error_set(AM_EMALFORMED, "beacon: length %zu does not match its name length %zu", len, nl);
	discovery_key(k, netkey);
	crypto_generichash(mac, 32, buf, n + AM_SIG_BYTES, k, sizeof(k));
	bad = sodium_memcmp(mac, buf + n + AM_SIG_BYTES, 32);
	sodium_memzero(k, sizeof(k));
	if (bad != 0)
		return am_error_set(AM_ENETKEY, "beacon: network key does not match");
	if (crypto_sign_verify_detached(buf + n, buf, n, buf + 4) != 0)
		return am_error_set(AM_EBADSIG, "beacon: signature does not verify");
	if (am_tag_check("beacon name", (const char *) buf + FIXED, nl) != 0)
		return AM_EFIELD;
	memcpy(b->pk, buf + 4, AM_PK_BYTES);
	b->ws = memcmp(buf, MAGIC_WS, 4) == 0;
	b->port = (uint16_t) (buf[36] << 8 | buf[37]);
	for (int i = 0; i < 8; i++)
		b->ts_ms = b->ts_ms << 8 | buf[38 + i];
	memcpy(b->name, buf + FIXED, nl);
	b->name[nl] = '\0';
	if (b->port == 0) {
		memset(b, 0, sizeof(*b));
		return am_error_set(AM_EFIELD, "beacon: port 0");
	}
	return 0;
}
