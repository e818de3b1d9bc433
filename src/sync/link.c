/*
 * link.c — the authenticated, encrypted link: a handshake in the spirit of
 * Scuttlebutt's Secret Handshake, then framed AEAD. No I/O: the caller
 * moves the bytes (nng in runtime, memory in tests).
 *
 *   1  I -> R  "AML" v (4) | a_pub (32) | HMAC-SHA512-256(netkey, "AML" v | a_pub) (32)
 *   2  R -> I  "AML" v (4) | b_pub (32) | HMAC-SHA512-256(netkey, "AML" v | b_pub) (32)
 *              (v = AM_LINK_VERSION, one byte)
 *              both: ab = X25519(a, b); h = BLAKE2b-256(netkey | ab | a_pub | b_pub)
 *   3  I -> R  box(k3, pk_i (32) | Ed25519_i(netkey | h | "initiator"))
 *   4  R -> I  box(k4, pk_r (32) | Ed25519_r(netkey | h | pk_i | "responder"))
 *   keys: k3, k4, k_i2r, k_r2i = BLAKE2b-256 keyed with h over a label
 *         (and the two public keys for the session keys)
 *   box = XChaCha20-Poly1305 with a zero nonce (each key is used once)
 *   frames after it: u32 length | XChaCha20-Poly1305(key of the
 *         direction, nonce = 64-bit frame counter, little-endian, padded)
 *
 * Without the network key a device fails at message 1 or 2 (the MAC), so
 * it learns nothing about who is on the mesh. Ephemeral keys give forward
 * secrecy; the signatures bind each identity to this session's secret, so
 * neither side can be impersonated or replayed into another session.
 * Frame counters make every nonce unique and refuse replayed, dropped or
 * reordered frames.
 */
#include "am_sync.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum state { S_NEW, S_SENT1, S_SENT2, S_SENT3, S_OPEN, S_FAILED };

struct am_link {
	const am_identity *me;
	uint8_t netkey[32];
	bool initiator;
	enum state st;
	uint8_t eph_pk[32], eph_sk[32], peer_eph[32];
	uint8_t h[32];                 /* session hash */
	uint8_t peer[AM_PK_BYTES];
	uint8_t tx[32], rx[32];
	uint64_t tx_n, rx_n;
};

#define MSG12 AM_LINK_HELLO_LEN
#define BOX_OVERHEAD crypto_aead_xchacha20poly1305_ietf_ABYTES
#define MSG3 AM_LINK_PROOF_LEN
_Static_assert(MSG3 == 32 + 64 + BOX_OVERHEAD, "proof length");

static void
derive(uint8_t out[32], const uint8_t h[32], const char *label, const uint8_t *a, const uint8_t *b)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, h, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *) label, strlen(label));
	if (a != NULL)
		crypto_generichash_update(&st, a, 32);
	if (b != NULL)
		crypto_generichash_update(&st, b, 32);
	crypto_generichash_final(&st, out, 32);
}

static int
fail(am_link *l, int rc, const char *why)
{
	l->st = S_FAILED;
	sodium_memzero(l->eph_sk, sizeof(l->eph_sk));
	return am_error_set(rc, "link: %s", why);
}

int
am_link_new(am_link **out, const am_identity *me, const uint8_t netkey[static 32], bool initiator)
{
	am_link *l = sodium_malloc(sizeof(*l));

	*out = NULL;
	if (l == NULL)
		return am_error_set(AM_ENOMEM, "out of memory for a link");
	memset(l, 0, sizeof(*l));
	l->me = me;
	memcpy(l->netkey, netkey, 32);
	l->initiator = initiator;
	crypto_box_keypair(l->eph_pk, l->eph_sk);
	*out = l;
	return 0;
}

int
am_link_new_with_ephemeral(am_link **out, const am_identity *me, const uint8_t netkey[static 32], bool initiator,
    const uint8_t eph_sk[static 32])
{
	int rc = am_link_new(out, me, netkey, initiator);

	if (rc != 0)
		return rc;
	memcpy((*out)->eph_sk, eph_sk, 32);
	crypto_scalarmult_base((*out)->eph_pk, (*out)->eph_sk);
	return 0;
}

void
am_link_free(am_link *l)
{
	if (l != NULL)
		sodium_free(l); /* wipes the keys */
}

static void
hello(am_link *l, uint8_t out[MSG12])
{
	memcpy(out, "AML", 3);
	out[3] = AM_LINK_VERSION;
	memcpy(out + 4, l->eph_pk, 32);
	crypto_auth_hmacsha512256(out + 36, out, 36, l->netkey);
}

static int
take_hello(am_link *l, const uint8_t *in, size_t len)
{
	uint8_t ab[32];
	crypto_generichash_state st;

	if (len != MSG12)
		return fail(l, AM_EMALFORMED, "handshake hello has the wrong length");
	/* the version first, so a peer on another one is told apart from one
	 * with another network key */
	if (memcmp(in, "AML", 3) != 0)
		return fail(l, AM_EVERSION, "the peer does not speak the agent-mesh link protocol "
		    "(or a version before 1, which had no version byte)");
	if (in[3] != AM_LINK_VERSION) {
		l->st = S_FAILED;
		sodium_memzero(l->eph_sk, sizeof(l->eph_sk));
		return am_error_set(AM_EVERSION, "link: the peer speaks link protocol version %u, this side %u", in[3],
		    AM_LINK_VERSION);
	}
	if (crypto_auth_hmacsha512256_verify(in + 36, in, 36, l->netkey) != 0)
		return fail(l, AM_ENETKEY, "peer does not hold this network's key");
	memcpy(l->peer_eph, in + 4, 32);
	if (crypto_scalarmult(ab, l->eph_sk, l->peer_eph) != 0)
		return fail(l, AM_EBADSIG, "peer's ephemeral key is degenerate");
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, l->netkey, 32);
	crypto_generichash_update(&st, ab, 32);
	crypto_generichash_update(&st, l->initiator ? l->eph_pk : l->peer_eph, 32);
	crypto_generichash_update(&st, l->initiator ? l->peer_eph : l->eph_pk, 32);
	crypto_generichash_final(&st, l->h, 32);
	sodium_memzero(ab, sizeof(ab));
	sodium_memzero(l->eph_sk, sizeof(l->eph_sk));
	return 0;
}

/* proof = pk | sig(netkey | h | extra | role), boxed under key(label) */
/* Labels are fixed strings of at most 32 bytes (msg has room for that). */
static int
make_proof(am_link *l, uint8_t *out, const char *label, const uint8_t *extra)
{
	uint8_t key[32], plain[96], msg[32 + 32 + 32 + 32] /* netkey, h, extra, label */, nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
	size_t mlen = 0;

	memcpy(msg, l->netkey, 32);
	memcpy(msg + 32, l->h, 32);
	mlen = 64;
	if (extra != NULL) {
		memcpy(msg + mlen, extra, 32);
		mlen += 32;
	}
	memcpy(msg + mlen, label, strlen(label));
	mlen += strlen(label);
	memcpy(plain, am_identity_pk(l->me), 32);
	am_identity_sign(l->me, plain + 32, msg, mlen);
	derive(key, l->h, label, NULL, NULL);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, plain, sizeof(plain), NULL, 0, NULL, nonce, key);
	sodium_memzero(key, sizeof(key));
	return 0;
}

static int
check_proof(am_link *l, const uint8_t *in, size_t len, const char *label, const uint8_t *extra)
{
	uint8_t key[32], plain[96], msg[32 + 32 + 32 + 32] /* netkey, h, extra, label */, nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
	unsigned long long plen = 0;
	size_t mlen = 64;

	if (len != MSG3)
		return fail(l, AM_EMALFORMED, "handshake proof has the wrong length");
	derive(key, l->h, label, NULL, NULL);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, in, len, NULL, 0, nonce, key) != 0) {
		sodium_memzero(key, sizeof(key));
		return fail(l, AM_EBADSIG, "handshake proof does not decrypt (altered, or another session)");
	}
	sodium_memzero(key, sizeof(key));
	memcpy(msg, l->netkey, 32);
	memcpy(msg + 32, l->h, 32);
	if (extra != NULL) {
		memcpy(msg + mlen, extra, 32);
		mlen += 32;
	}
	memcpy(msg + mlen, label, strlen(label));
	mlen += strlen(label);
	if (crypto_sign_verify_detached(plain + 32, msg, mlen, plain) != 0)
		return fail(l, AM_EBADSIG, "peer's identity signature does not verify");
	memcpy(l->peer, plain, 32);
	return 0;
}

static void
open_session(am_link *l)
{
	const uint8_t *pi = l->initiator ? am_identity_pk(l->me) : l->peer;
	const uint8_t *pr = l->initiator ? l->peer : am_identity_pk(l->me);
	uint8_t i2r[32], r2i[32];

	derive(i2r, l->h, "agent_mesh i2r", pi, pr);
	derive(r2i, l->h, "agent_mesh r2i", pi, pr);
	memcpy(l->tx, l->initiator ? i2r : r2i, 32);
	memcpy(l->rx, l->initiator ? r2i : i2r, 32);
	sodium_memzero(i2r, sizeof(i2r));
	sodium_memzero(r2i, sizeof(r2i));
	l->st = S_OPEN;
}

static int
emit(uint8_t **out, size_t *out_len, size_t n)
{
	*out = malloc(n);
	*out_len = n;
	return *out == NULL ? am_error_set(AM_ENOMEM, "out of memory") : 0;
}

int
am_link_start(am_link *l, uint8_t **out, size_t *out_len)
{
	int rc;

	if (!l->initiator || l->st != S_NEW)
		return am_error_set(AM_EINVAL, "link: only a new initiator starts");
	if ((rc = emit(out, out_len, MSG12)) != 0)
		return rc;
	hello(l, *out);
	l->st = S_SENT1;
	return 0;
}

int
am_link_on_handshake(am_link *l, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	int rc;

	*out = NULL;
	*out_len = 0;
	switch (l->st) {
	case S_NEW: /* responder: got hello 1, send hello 2 */
		if (l->initiator)
			return am_error_set(AM_EINVAL, "link: call am_link_start first");
		if ((rc = emit(out, out_len, MSG12)) != 0)
			return rc;
		hello(l, *out);
		if ((rc = take_hello(l, in, len)) != 0) {
			free(*out);
			*out = NULL;
			*out_len = 0;
			return rc;
		}
		l->st = S_SENT2;
		return 0;
	case S_SENT1: /* initiator: got hello 2, send proof 3 */
		if ((rc = take_hello(l, in, len)) != 0)
			return rc;
		if ((rc = emit(out, out_len, MSG3)) != 0)
			return rc;
		make_proof(l, *out, "agent_mesh initiator", NULL);
		l->st = S_SENT3;
		return 0;
	case S_SENT2: /* responder: got proof 3, send proof 4 */
		if ((rc = check_proof(l, in, len, "agent_mesh initiator", NULL)) != 0)
			return rc;
		if ((rc = emit(out, out_len, MSG3)) != 0)
			return rc;
		make_proof(l, *out, "agent_mesh responder", l->peer);
		open_session(l);
		return 0;
	case S_SENT3: /* initiator: got proof 4 */
		if ((rc = check_proof(l, in, len, "agent_mesh responder", am_identity_pk(l->me))) != 0)
			return rc;
		open_session(l);
		return 0;
	case S_OPEN:
		return am_error_set(AM_EINVAL, "link: handshake already complete");
	case S_FAILED:
		break;
	}
	return am_error_set(AM_EINVAL, "link: failed before; start a new one");
}

bool
am_link_open_p(const am_link *l)
{
	return l->st == S_OPEN;
}

const uint8_t *
am_link_peer(const am_link *l)
{
	return l->st == S_OPEN ? l->peer : NULL;
}

static void
counter_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], uint64_t n)
{
	memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	for (int i = 0; i < 8; i++)
		nonce[i] = (uint8_t) (n >> (8 * i));
}

int
am_link_seal(am_link *l, uint8_t **out, size_t *out_len, const uint8_t *plain, size_t len)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	uint8_t hdr[4];
	unsigned long long clen = 0;

	*out = NULL;
	*out_len = 0;
	if (l->st != S_OPEN)
		return am_error_set(AM_EINVAL, "link: not open");
	if (len > AM_LINK_MAX_FRAME)
		return am_error_set(AM_ETOOBIG, "link: frame of %zu bytes, limit %u", len, AM_LINK_MAX_FRAME);
	if (l->tx_n == UINT64_MAX)
		return am_error_set(AM_ELIMIT, "link: frame counter exhausted; reconnect");
	if ((*out = malloc(4 + len + BOX_OVERHEAD)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	counter_nonce(nonce, l->tx_n);
	/* the length is authenticated as associated data */
	hdr[0] = (uint8_t) ((len + BOX_OVERHEAD) >> 24);
	hdr[1] = (uint8_t) ((len + BOX_OVERHEAD) >> 16);
	hdr[2] = (uint8_t) ((len + BOX_OVERHEAD) >> 8);
	hdr[3] = (uint8_t) (len + BOX_OVERHEAD);
	memcpy(*out, hdr, 4);
	crypto_aead_xchacha20poly1305_ietf_encrypt(*out + 4, &clen, plain, len, hdr, 4, NULL, nonce, l->tx);
	l->tx_n++;
	*out_len = 4 + (size_t) clen;
	return 0;
}

int
am_link_open(am_link *l, uint8_t **plain, size_t *plen, const uint8_t *frame, size_t len)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long n = 0;
	uint32_t clen;

	*plain = NULL;
	*plen = 0;
	if (l->st != S_OPEN)
		return am_error_set(AM_EINVAL, "link: not open");
	if (len < 4 + BOX_OVERHEAD)
		return am_error_set(AM_ETRUNC, "link: frame of %zu bytes is shorter than its header", len);
	clen = (uint32_t) frame[0] << 24 | (uint32_t) frame[1] << 16 | (uint32_t) frame[2] << 8 | frame[3];
	if (clen > AM_LINK_MAX_FRAME + BOX_OVERHEAD)
		return am_error_set(AM_ETOOBIG, "link: frame claims %u bytes, limit %u", clen, AM_LINK_MAX_FRAME);
	if (clen != len - 4)
		return am_error_set(clen > len - 4 ? AM_ETRUNC : AM_ETRAILING, "link: frame says %u bytes, carries %zu", clen,
		    len - 4);
	if ((*plain = malloc(clen - BOX_OVERHEAD + 1)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	counter_nonce(nonce, l->rx_n);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(*plain, &n, NULL, frame + 4, clen, frame, 4, nonce, l->rx) != 0) {
		free(*plain);
		*plain = NULL;
		/* the counter did not move: a replayed, dropped or altered frame */
		return am_error_set(AM_EBADSIG, "link: frame %llu does not authenticate (altered, replayed or out of order)",
		    (unsigned long long) l->rx_n);
	}
	l->rx_n++;
	*plen = (size_t) n;
	return 0;
}
