#define _GNU_SOURCE
/*
 * test_link.c — the link handshake and frames: both ends learn each other's
 * key; a wrong network key, an altered or replayed handshake message, and
 * altered, replayed, reordered, truncated or oversize frames are refused
 * by name; messages out of turn are refused.
 */
#include "am_sync.h"
#include "../../check.h"

#include <stdlib.h>
#include <string.h>

static am_identity *ida, *idb;

/* run a handshake; returns 0 when both ends are open */
static int
handshake(am_link *i, am_link *r, int tamper_msg, size_t at)
{
	uint8_t *m = NULL, *o = NULL;
	size_t ml, ol;
	am_link *to[2] = {r, i};
	int rc = 0, turn = 0, msgno = 1;

	REQUIRE(am_link_start(i, &m, &ml) == 0);
	while (m != NULL && msgno <= 4) {
		if (tamper_msg == msgno)
			m[at % ml] ^= 1;
		rc = am_link_on_handshake(to[turn], m, ml, &o, &ol);
		free(m);
		m = o;
		ml = ol;
		if (rc != 0)
			break;
		turn ^= 1;
		msgno++;
	}
	free(m);
	return rc;
}

int
main(void)
{
	uint8_t net[32], other_net[32], sa[32] = {1}, sb[32] = {2};
	am_link *i = NULL, *r = NULL;

	REQUIRE(am_core_init() == 0);
	REQUIRE(am_identity_from_seed(&ida, sa) == 0 && am_identity_from_seed(&idb, sb) == 0);
	memset(net, 0x42, 32);
	memset(other_net, 0x43, 32);

	/* the good case */
	REQUIRE(am_link_new(&i, ida, net, true) == 0 && am_link_new(&r, idb, net, false) == 0);
	CHECK_RC(handshake(i, r, 0, 0), 0);
	CHECK(am_link_open_p(i) && am_link_open_p(r));
	CHECK(memcmp(am_link_peer(i), am_identity_pk(idb), 32) == 0);
	CHECK(memcmp(am_link_peer(r), am_identity_pk(ida), 32) == 0);
	{
		uint8_t *f1, *f2, *f3, *p;
		size_t l1, l2, l3, pl;
		const char *m1 = "first frame", *m2 = "second frame";
		CHECK_RC(am_link_seal(i, &f1, &l1, (const uint8_t *) m1, strlen(m1)), 0);
		CHECK_RC(am_link_seal(i, &f2, &l2, (const uint8_t *) m2, strlen(m2)), 0);
		CHECK(memmem(f1, l1, m1, strlen(m1)) == NULL); /* encrypted */
		/* reordered: the second first is refused, and nothing moves */
		CHECK_RC(am_link_open(r, &p, &pl, f2, l2), AM_EBADSIG);
		CHECK_RC(am_link_open(r, &p, &pl, f1, l1), 0);
		CHECK(pl == strlen(m1) && memcmp(p, m1, pl) == 0);
		free(p);
		/* replayed */
		CHECK_RC(am_link_open(r, &p, &pl, f1, l1), AM_EBADSIG);
		/* altered */
		f2[l2 - 3] ^= 1;
		CHECK_RC(am_link_open(r, &p, &pl, f2, l2), AM_EBADSIG);
		f2[l2 - 3] ^= 1;
		/* truncated, padded */
		CHECK_RC(am_link_open(r, &p, &pl, f2, l2 - 1), AM_ETRUNC);
		CHECK_RC(am_link_open(r, &p, &pl, f2, 3), AM_ETRUNC);
		{
			uint8_t *pad = malloc(l2 + 1);
			memcpy(pad, f2, l2);
			pad[l2] = 0;
			CHECK_RC(am_link_open(r, &p, &pl, pad, l2 + 1), AM_ETRAILING);
			free(pad);
		}
		CHECK_RC(am_link_open(r, &p, &pl, f2, l2), 0);
		CHECK(pl == strlen(m2) && memcmp(p, m2, pl) == 0);
		free(p);
		/* the other direction has its own key and counter */
		CHECK_RC(am_link_seal(r, &f3, &l3, (const uint8_t *) m1, strlen(m1)), 0);
		CHECK_RC(am_link_open(i, &p, &pl, f3, l3), 0);
		free(p);
		CHECK_RC(am_link_open(r, &p, &pl, f3, l3), AM_EBADSIG); /* r's own frame back at r */
		/* oversize claims */
		{
			uint8_t big[64] = {0x7f, 0xff, 0xff, 0xff};
			CHECK_RC(am_link_open(r, &p, &pl, big, sizeof(big)), AM_ETOOBIG);
		}
		free(f1);
		free(f2);
		free(f3);
	}
	am_link_free(i);
	am_link_free(r);

	/* a device without the network key fails at the first message */
	REQUIRE(am_link_new(&i, ida, other_net, true) == 0 && am_link_new(&r, idb, net, false) == 0);
	/* its own code (AM_EBADSIG on 955567a, told apart by its words) */
	CHECK_RC(handshake(i, r, 0, 0), AM_ENETKEY);
	CHECK(strstr(am_error_detail(), "network") != NULL);
	CHECK(!am_link_open_p(r) && am_link_peer(r) == NULL);
	am_link_free(i);
	am_link_free(r);

	/* any altered handshake message fails the handshake */
	for (int msg = 1; msg <= 4; msg++)
		for (size_t at = 0; at < 200; at += 7) {
			REQUIRE(am_link_new(&i, ida, net, true) == 0 && am_link_new(&r, idb, net, false) == 0);
			CHECK(handshake(i, r, msg, at) != 0);
			CHECK(!(am_link_open_p(i) && am_link_open_p(r)));
			am_link_free(i);
			am_link_free(r);
		}

	/* out of turn, and a replay of a hello into a finished link */
	{
		uint8_t *m, *o;
		size_t ml, ol;
		REQUIRE(am_link_new(&i, ida, net, true) == 0 && am_link_new(&r, idb, net, false) == 0);
		CHECK_RC(am_link_start(r, &m, &ml), AM_EINVAL);
		CHECK_RC(am_link_start(i, &m, &ml), 0);
		CHECK_RC(am_link_on_handshake(r, m, ml - 1, &o, &ol), AM_EMALFORMED);
		free(m);
		am_link_free(i);
		am_link_free(r);
	}
	am_identity_free(ida);
	am_identity_free(idb);
	return check_done("test_link");
}
