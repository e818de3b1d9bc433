/*
 * gen_link_vector.c — writes the link transcript vector (tests/vectors/
 * link.json): the four handshake messages and the first frames of a session
 * between two fixed identities over a fixed network key, with fixed
 * ephemeral keys (am_link_new_with_ephemeral, which exists for this file
 * alone). Both ends run the real am_link code against each other, and
 * every frame is opened by the other end before it is written out, so the
 * vector is a transcript that worked. `meson test link-vector-current`
 * re-runs it and compares with the checked-in file; the Python cross-check
 * rebuilds every byte from docs/PROTOCOL.md section 12 alone.
 *
 * usage: gen_link_vector OUTPUT.json
 */
#include "am_core.h"
#include "am_sync.h"
#include "vector_json.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
fill(uint8_t *p, uint8_t first)
{
	for (int i = 0; i < 32; i++)
		p[i] = (uint8_t) (first + i);
}

static void
die(const char *what)
{
	fprintf(stderr, "gen_link_vector: %s: %s\n", what, am_error_detail());
	exit(1);
}

/* seal plain on from, open it on to, and record it */
static void
frame(json_t *frames, am_link *from, am_link *to, const char *dir, unsigned counter, const char *about,
    const uint8_t *plain, size_t len)
{
	uint8_t *f = NULL, *back = NULL;
	size_t flen = 0, blen = 0;
	json_t *o = json_object();

	if (am_link_seal(from, &f, &flen, plain, len) != 0)
		die("seal");
	if (am_link_open(to, &back, &blen, f, flen) != 0 || blen != len || memcmp(back, plain, len) != 0)
		die("the other end does not open the frame");
	json_object_set_new(o, "direction", json_string(dir));
	json_object_set_new(o, "counter", json_integer(counter));
	json_object_set_new(o, "about", json_string(about));
	set_hex(o, "plaintext", plain, len);
	set_hex(o, "frame", f, flen);
	json_array_append_new(frames, o);
	free(f);
	free(back);
}

/* 'N' + pi's peer info, as the first frame (counter 0) from `from` */
static void
n_frame(json_t *frames, am_link *from, am_link *to, const char *dir, const char *about, const am_peer_info *pi)
{
	uint8_t *info = NULL, *n = NULL;
	size_t len = 0;

	if (am_peer_info_encode(&info, &len, pi) != 0 || (n = malloc(1 + len)) == NULL)
		die("peer info");
	n[0] = 'N';
	memcpy(n + 1, info, len);
	frame(frames, from, to, dir, 0, about, n, 1 + len);
	free(n);
	free(info);
}

int
main(int argc, char **argv)
{
	uint8_t seed_i[32], seed_r[32], netkey[32], eph_i[32], eph_r[32], pub[32];
	uint8_t *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL, *none = NULL;
	size_t l1 = 0, l2 = 0, l3 = 0, l4 = 0, lnone = 0;
	am_identity *ii = NULL, *ir = NULL;
	am_link *li = NULL, *lr = NULL;
	am_peer_info pi = {0};
	json_t *out = json_object(), *frames = json_array();

	if (argc != 2) {
		fprintf(stderr, "usage: gen_link_vector OUTPUT.json\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	fill(seed_i, 0x00);
	fill(seed_r, 0x20);
	fill(netkey, 0x40);
	fill(eph_i, 0x60);
	fill(eph_r, 0x80);
	if (am_identity_from_seed(&ii, seed_i) != 0 || am_identity_from_seed(&ir, seed_r) != 0)
		die("identity");
	if (am_link_new_with_ephemeral(&li, ii, netkey, true, eph_i) != 0 ||
	    am_link_new_with_ephemeral(&lr, ir, netkey, false, eph_r) != 0)
		die("link");
	if (am_link_start(li, &m1, &l1) != 0 || am_link_on_handshake(lr, m1, l1, &m2, &l2) != 0 ||
	    am_link_on_handshake(li, m2, l2, &m3, &l3) != 0 || am_link_on_handshake(lr, m3, l3, &m4, &l4) != 0 ||
	    am_link_on_handshake(li, m4, l4, &none, &lnone) != 0)
		die("handshake");
	if (!am_link_open_p(li) || !am_link_open_p(lr) || memcmp(am_link_peer(li), am_identity_pk(ir), 32) != 0 ||
	    memcmp(am_link_peer(lr), am_identity_pk(ii), 32) != 0 || none != NULL)
		die("the handshake did not prove both keys");

	json_object_set_new(out, "format", json_string("agent_mesh link transcript, PROTOCOL.md section 12, link version 1"));
	set_hex(out, "network_key", netkey, 32);
	set_hex(out, "initiator_seed", seed_i, 32);
	set_hex(out, "initiator_pk", am_identity_pk(ii), 32);
	set_hex(out, "responder_seed", seed_r, 32);
	set_hex(out, "responder_pk", am_identity_pk(ir), 32);
	set_hex(out, "initiator_ephemeral_secret", eph_i, 32);
	crypto_scalarmult_base(pub, eph_i);
	set_hex(out, "initiator_ephemeral_public", pub, 32);
	set_hex(out, "responder_ephemeral_secret", eph_r, 32);
	crypto_scalarmult_base(pub, eph_r);
	set_hex(out, "responder_ephemeral_public", pub, 32);
	set_hex(out, "message1", m1, l1);
	set_hex(out, "message2", m2, l2);
	set_hex(out, "message3", m3, l3);
	set_hex(out, "message4", m4, l4);

	/* the first frames of a session: 'N' each way, then a refusal */
	snprintf(pi.name, sizeof(pi.name), "crane-1");
	snprintf(pi.role, sizeof(pi.role), "node");
	snprintf(pi.listen, sizeof(pi.listen), "tcp://0.0.0.0:7400");
	pi.ngroups = 1;
	snprintf(pi.groups[0], sizeof(pi.groups[0]), "site");
	pi.outbox = 3;
	n_frame(frames, li, lr, "i2r", "'N' + crane-1's peer info", &pi);
	memset(&pi, 0, sizeof(pi));
	snprintf(pi.name, sizeof(pi.name), "site-gw");
	snprintf(pi.role, sizeof(pi.role), "gateway");
	n_frame(frames, lr, li, "r2i", "'N' + site-gw's peer info", &pi);
	frame(frames, li, lr, "i2r", 1, "'K' (keepalive): the second frame I->R, counter 1", (const uint8_t *) "K", 1);
	frame(frames, lr, li, "r2i", 1, "'X' + a refusal's reason", (const uint8_t *) "Xnot trusted here", 17);
	json_object_set_new(out, "frames", frames);

	if (write_vectors(out, argv[1], "gen_link_vector", JSON_PRESERVE_ORDER) != 0)
		return 1;
	free(m1);
	free(m2);
	free(m3);
	free(m4);
	am_link_free(li);
	am_link_free(lr);
	am_identity_free(ii);
	am_identity_free(ir);
	return 0;
}
