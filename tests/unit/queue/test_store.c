/*
 * test_store.c — the LMDB store: dedup before verification, inbox
 * admission (node, group, broadcast, geo), outbox order, ack semantics,
 * tombstones, expiry and gc, batch commit, a full map, peers, settings.
 */
#define _GNU_SOURCE
#include "queue_private.h"
#include "am_sync.h"
#include "../../check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1767225600000ull

static am_identity *me, *other;
static char tmpdir[] = "/tmp/am-test-store-XXXXXX";

static uint8_t *
make(size_t *len, uint8_t id[32], am_identity *from, int kind, const void *to, const char *geo, uint8_t prio,
    uint64_t created, uint64_t ttl, const char *text)
{
	am_envelope_spec s = {0};
	am_geo g;
	uint8_t *raw = NULL;

	s.dest_kind = kind;
	if (kind == AM_DEST_NODE)
		memcpy(s.dest_node, to, 32);
	if (kind == AM_DEST_GROUP)
		s.dest_group = to;
	if (geo != NULL) {
		REQUIRE(am_geo_parse(&g, geo) == 0);
		s.geo = &g;
	}
	s.priority = prio;
	s.created_ms = created;
	s.expires_ms = created + ttl;
	s.payload = (const uint8_t *) text;
	s.payload_len = strlen(text);
	REQUIRE(am_envelope_create(&raw, len, id, &s, from) == 0);
	return raw;
}

static am_queue *
open_store(const char *name, uint64_t map_size)
{
	char path[256];
	am_queue *q = NULL;
	am_queue_options o = {.create = true, .map_size = map_size};

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	REQUIRE(am_queue_open(&q, path, &o) == 0);
	REQUIRE(am_queue_set_self(q, am_identity_pk(me)) == 0);
	return q;
}

static int
collect(void *ctx, const uint8_t id[32], const am_queue_meta *m)
{
	am_queue_meta *out = ctx;
	size_t i = 0;

	(void) id;
	while (out[i].created_ms != 0)
		i++;
	out[i] = *m;
	return 0;
}

static void
test_admission(void)
{
	am_queue *q = open_store("adm", 0);
	am_queue_result r;
	am_position pos = {.has_fix = true, .lat = 52.52, .lon = 13.405, .ntags = 1};
	char groups[2][AM_TAG_MAX + 1] = {"ops", "crane-3"};
	uint8_t id[32];
	size_t len;
	uint8_t *raw;
	am_queue_inbox_entry ent[16];
	size_t n;

	strcpy(pos.tags[0], "north-gate");
	CHECK_RC(am_queue_set_position(q, &pos), 0);
	CHECK_RC(am_queue_set_groups(q, groups, 2), 0);
	{
		am_position got;
		char g2[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
		size_t ng;
		CHECK_RC(am_queue_get_position(q, &got), 0);
		CHECK(got.has_fix && got.lat == 52.52 && got.ntags == 1 && strcmp(got.tags[0], "north-gate") == 0);
		CHECK_RC(am_queue_get_groups(q, g2, &ng), 0);
		CHECK(ng == 2 && strcmp(g2[1], "crane-3") == 0);
	}
	struct {
		int kind;
		const void *to;
		const char *geo;
		bool inboxed, outboxed;
	} cases[] = {
	    {AM_DEST_NODE, am_identity_pk(me), NULL, true, false},
	    {AM_DEST_NODE, am_identity_pk(other), NULL, false, true},
	    {AM_DEST_GROUP, "ops", NULL, true, true},
	    {AM_DEST_GROUP, "electricians", NULL, false, true},
	    {AM_DEST_BROADCAST, NULL, NULL, true, true},
	    {AM_DEST_BROADCAST, NULL, "circle:52.52,13.41,2000", true, true},
	    {AM_DEST_BROADCAST, NULL, "circle:48.85,2.35,2000", false, true},
	    {AM_DEST_BROADCAST, NULL, "zone:north-gate", true, true},
	    {AM_DEST_GROUP, "ops", "zone:south-gate", false, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw = make(&len, id, other, cases[i].kind, cases[i].to, cases[i].geo, 1, T0 + i, 3600000, "x");
		CHECK_RC(am_queue_put(q, raw, len, T0, &r), 0);
		if (r.inboxed != cases[i].inboxed)
			fprintf(stderr, "admission case %zu: inboxed=%d\n", i, r.inboxed);
		CHECK(r.inboxed == cases[i].inboxed);
		{
			uint8_t *back = NULL;
			size_t bl;
			am_queue_meta m;
			CHECK_RC(am_queue_get(q, id, &back, &bl, &m), 0);
			CHECK(bl == len && memcmp(back, raw, len) == 0);
			CHECK(!!(m.flags & AM_QF_OUTBOX) == cases[i].outboxed);
			free(back);
		}
		free(raw);
	}
	/* our own message is never in our inbox */
	raw = make(&len, id, me, AM_DEST_BROADCAST, NULL, NULL, 1, T0, 3600000, "mine");
	CHECK_RC(am_queue_put(q, raw, len, T0, &r), 0);
	CHECK(!r.inboxed);
	free(raw);
	CHECK_RC(am_queue_inbox_list(q, 0, ent, 16, &n), 0);
	CHECK(n == 5);
	for (size_t i = 1; i < n; i++)
		CHECK(ent[i].seq > ent[i - 1].seq);
	am_queue_close(q);
}

static void
test_dedup_ack_tomb(void)
{
	am_queue *q = open_store("dedup", 0);
	am_queue_result r;
	uint8_t id[32], gid[32];
	size_t len, glen, n;
	uint8_t *raw = make(&len, id, other, AM_DEST_NODE, am_identity_pk(me), NULL, 1, T0, 3600000, "for me");
	uint8_t *graw = make(&glen, gid, other, AM_DEST_BROADCAST, NULL, NULL, 1, T0, 3600000, "for all");
	am_queue_inbox_entry ent[4];

	CHECK_RC(am_queue_put(q, raw, len, T0, &r), 0);
	CHECK_RC(am_queue_put(q, raw, len, T0, &r), AM_EDUP);
	/* a copy with a broken signature has the same id: refused as a
	 * duplicate, i.e. before any signature check */
	raw[len - 10] ^= 1;
	CHECK_RC(am_queue_put(q, raw, len, T0, &r), AM_EDUP);
	raw[len - 10] ^= 1;
	CHECK_RC(am_queue_has(q, id), 0);
	CHECK_RC(am_queue_put(q, graw, glen, T0, &r), 0);

	CHECK_RC(am_queue_inbox_list(q, 0, ent, 4, &n), 0);
	CHECK(n == 2);
	/* listing again without ack gives the same entries (at least once) */
	CHECK_RC(am_queue_inbox_list(q, 0, ent, 4, &n), 0);
	CHECK(n == 2);
	CHECK_RC(am_queue_inbox_ack(q, id, T0 + 1), 0);
	CHECK_RC(am_queue_inbox_ack(q, id, T0 + 1), AM_ENOTFOUND);
	CHECK_RC(am_queue_inbox_ack(q, gid, T0 + 1), 0);
	CHECK_RC(am_queue_inbox_list(q, 0, ent, 4, &n), 0);
	CHECK(n == 0);
	/* delivered to its one recipient: dropped and tombstoned */
	CHECK_RC(am_queue_has(q, id), AM_ETOMBSTONE);
	CHECK_RC(am_queue_put(q, raw, len, T0, &r), AM_ETOMBSTONE);
	/* a broadcast stays to be carried, and never re-enters the inbox */
	CHECK_RC(am_queue_has(q, gid), 0);
	CHECK_RC(am_queue_put(q, graw, glen, T0, &r), AM_EDUP);

	/* explicit delete of something never held still refuses it later */
	{
		uint8_t id3[32];
		size_t l3;
		uint8_t *r3 = make(&l3, id3, other, AM_DEST_BROADCAST, NULL, NULL, 1, T0, 3600000, "later");
		CHECK_RC(am_queue_delete(q, id3, AM_TOMB_DELETED, T0 + 3600000, T0), 0);
		CHECK_RC(am_queue_put(q, r3, l3, T0, &r), AM_ETOMBSTONE);
		free(r3);
	}

	/* expiry: refused when already expired; gc removes, tombstones, then forgets */
	{
		uint8_t id4[32];
		size_t l4;
		am_queue_gc_stats gs;
		uint8_t *r4 = make(&l4, id4, other, AM_DEST_BROADCAST, NULL, NULL, 1, T0, 1000, "short");
		CHECK_RC(am_queue_put(q, r4, l4, T0 + 1000, &r), AM_EEXPIRED);
		CHECK_RC(am_queue_put(q, r4, l4, T0 + 10, &r), 0);
		CHECK_RC(am_queue_gc(q, T0 + 500, &gs), 0);
		CHECK(gs.expired == 0);
		CHECK_RC(am_queue_gc(q, T0 + 1000, &gs), 0);
		CHECK(gs.expired == 1);
		CHECK_RC(am_queue_has(q, id4), AM_ETOMBSTONE);
		/* the broadcast above expires at T0+3600000 */
		CHECK_RC(am_queue_gc(q, T0 + 3600000 + AM_QUEUE_TOMB_GRACE_MS + 1, &gs), 0);
		CHECK(gs.expired == 1);
		CHECK(gs.tombs_freed >= 3);
		CHECK_RC(am_queue_has(q, id4), AM_ENOTFOUND);
		free(r4);
	}
	free(raw);
	free(graw);
	am_queue_close(q);
}

static void
test_order_batch(void)
{
	am_queue *q = open_store("batch", 0);
	enum { N = 1000 };
	am_queue_item *items = calloc(N + 1, sizeof(*items));
	am_queue_result *res = calloc(N + 1, sizeof(*res));
	am_queue_meta *metas = calloc(N + 2, sizeof(*metas));
	am_queue_stats st;
	uint8_t id[32];
	size_t stored = 0;

	for (size_t i = 0; i < N; i++) {
		size_t len;
		/* priorities cycle 0..3, created times go down */
		items[i].raw = make(&len, id, other, AM_DEST_NODE, am_identity_pk(other), NULL, (uint8_t) (i % 4),
		    T0 + (N - i) * 10, 3600000, "batch");
		items[i].len = len;
	}
	items[N] = items[0]; /* a duplicate inside the batch */
	CHECK_RC(am_queue_put_batch(q, items, N + 1, T0, res), 0);
	for (size_t i = 0; i < N; i++)
		stored += res[i].rc == 0;
	CHECK(stored == N);
	CHECK(res[N].rc == AM_EDUP);
	CHECK_RC(am_queue_outbox_each(q, collect, metas), 0);
	for (size_t i = 1; i < N; i++) {
		bool ordered = metas[i - 1].priority > metas[i].priority ||
		    (metas[i - 1].priority == metas[i].priority && metas[i - 1].created_ms <= metas[i].created_ms);
		CHECK(ordered);
	}
	CHECK(metas[0].priority == 3);
	memset(metas, 0, (N + 2) * sizeof(*metas));
	CHECK_RC(am_queue_each(q, collect, metas), 0);
	for (size_t i = 1; i < N; i++)
		CHECK(metas[i - 1].created_ms <= metas[i].created_ms);
	CHECK_RC(am_queue_get_stats(q, &st), 0);
	CHECK(st.envelopes == N && st.outbox == N && st.inbox_unacked == 0);
	CHECK(st.by_priority[0] == N / 4);
	{
		/* the constant-time counts agree with the walk, and walk nothing */
		am_queue_stats c;
		CHECK_RC(am_queue_get_counts(q, &c), 0);
		CHECK(c.envelopes == st.envelopes && c.outbox == st.outbox && c.inbox_unacked == st.inbox_unacked);
		CHECK(c.map_used == st.map_used && c.bytes == 0 && c.by_priority[0] == 0);
	}
	for (size_t i = 0; i < N; i++)
		free((void *) items[i].raw);
	free(items);
	free(res);
	free(metas);
	am_queue_close(q);
}

/* A pipe gives the same results as plain puts, with a batch in flight. */
static void
test_pipe(void)
{
	am_queue *q = open_store("pipe", 0);
	am_queue_pipe *p = NULL;
	enum { B = 50 };
	am_queue_item items[3][B];
	am_queue_result res[3][B];
	uint8_t id[32];
	am_queue_stats st;

	for (int b = 0; b < 3; b++)
		for (int i = 0; i < B; i++) {
			size_t len;
			items[b][i].raw = make(&len, id, other, AM_DEST_NODE, am_identity_pk(me), NULL, 1,
			    T0 + (uint64_t) (b * B + i), 3600000, "piped");
			items[b][i].len = len;
		}
	/* batch 1 repeats one envelope of batch 0, which may still be in flight */
	free((void *) items[1][7].raw);
	items[1][7] = items[0][3];
	CHECK_RC(am_queue_pipe_open(&p, q), 0);
	CHECK_RC(am_queue_pipe_put_batch(p, items[0], B, T0, res[0]), 0);
	CHECK_RC(am_queue_pipe_put_batch(p, items[1], B, T0, res[1]), 0);
	CHECK_RC(am_queue_pipe_put_batch(p, items[2], B, T0, res[2]), 0);
	CHECK_RC(am_queue_pipe_close(p), 0);
	for (int b = 0; b < 3; b++)
		for (int i = 0; i < B; i++) {
			if (b == 1 && i == 7) {
				CHECK(res[b][i].rc == AM_EDUP);
				continue;
			}
			CHECK(res[b][i].rc == 0 && res[b][i].inboxed);
		}
	CHECK_RC(am_queue_get_stats(q, &st), 0);
	CHECK(st.envelopes == 3 * B - 1 && st.inbox_unacked == 3 * B - 1);
	for (int b = 0; b < 3; b++)
		for (int i = 0; i < B; i++)
			if (!(b == 1 && i == 7))
				free((void *) items[b][i].raw);
	am_queue_close(q);
}

/* Receipts: the destination's receipt purges a carrier's copy (by ref or
 * by a list of ids), anyone else's changes nothing, and an original that
 * arrives after its receipt is refused. */
static void
test_receipts(void)
{
	am_queue *q = open_store("rcpt", 0); /* self = me: a carrier here */
	am_identity *third = NULL;
	uint8_t seed[32] = {9}, ids[3][32], rid[32];
	uint8_t *raw[3];
	size_t len[3], rl;
	am_queue_result r;
	am_envelope_spec s;
	uint8_t *rr;

	REQUIRE(am_identity_from_seed(&third, seed) == 0);
	for (int i = 0; i < 3; i++) {
		raw[i] = make(&len[i], ids[i], third, AM_DEST_NODE, am_identity_pk(other), NULL, 1, T0 + i, 3600000, "x");
		if (i < 2)
			CHECK_RC(am_queue_put(q, raw[i], len[i], T0, &r), 0);
	}
	/* a forged receipt for 0, signed by someone who is not its destination */
	memset(&s, 0, sizeof(s));
	s.type = "receipt";
	s.dest_kind = AM_DEST_NODE;
	memcpy(s.dest_node, am_identity_pk(third), 32);
	s.ref = ids[0];
	s.created_ms = T0;
	s.expires_ms = T0 + 3600000;
	REQUIRE(am_envelope_create(&rr, &rl, rid, &s, me) == 0);
	CHECK_RC(am_queue_put(q, rr, rl, T0, &r), 0);
	CHECK(r.receipt_foreign); /* counted and audited by the caller */
	free(rr);
	CHECK_RC(am_queue_has(q, ids[0]), 0);
	CHECK_RC(am_queue_delivered(q, ids[0], am_identity_pk(other)), AM_ENOTFOUND);
	/* the destination's receipt listing 0 and 2: 0 is purged now, 2 is
	 * refused when it arrives later */
	{
		uint8_t list[64];
		am_envelope env;
		memcpy(list, ids[0], 32);
		memcpy(list + 32, ids[2], 32);
		REQUIRE(am_sync_receipts_create(&env, am_identity_pk(third), list, 2, T0 + 3600000, other, T0) == 0);
		CHECK_RC(am_queue_put(q, env.raw, env.raw_len, T0, &r), 0);
		CHECK(!r.inboxed);
		am_envelope_clear(&env);
	}
	CHECK_RC(am_queue_has(q, ids[0]), AM_ETOMBSTONE);
	/* the forged receipt came first and did not keep the real one out
	 * (failed on ee90c10: one receipt per id, the first signer won) */
	CHECK_RC(am_queue_delivered(q, ids[0], am_identity_pk(other)), 0);
	{
		uint8_t who[4][32];
		bool checked[4];
		size_t n = 0;
		CHECK_RC(am_queue_receipts(q, ids[0], who, checked, 4, &n), 0);
		CHECK(n == 2);
		for (size_t i = 0; i < n; i++)
			CHECK(checked[i] == (memcmp(who[i], am_identity_pk(other), 32) == 0));
	}
	CHECK_RC(am_queue_has(q, ids[1]), 0); /* not covered */
	CHECK_RC(am_queue_put(q, raw[2], len[2], T0, &r), AM_ETOMBSTONE);
	/* a single-id receipt by ref alone */
	memset(&s, 0, sizeof(s));
	s.type = "receipt";
	s.dest_kind = AM_DEST_NODE;
	memcpy(s.dest_node, am_identity_pk(third), 32);
	s.ref = ids[1];
	s.created_ms = T0;
	s.expires_ms = T0 + 3600000;
	REQUIRE(am_envelope_create(&rr, &rl, rid, &s, other) == 0);
	CHECK_RC(am_queue_put(q, rr, rl, T0, &r), 0);
	free(rr);
	CHECK_RC(am_queue_has(q, ids[1]), AM_ETOMBSTONE);
	for (int i = 0; i < 3; i++)
		free(raw[i]);
	am_identity_free(third);
	am_queue_close(q);
}

/* The destination's own copy, delivered and not yet acked, stays when a
 * second copy comes by another path after its receipt. One at a time the
 * duplicate check before the write catches it (this passed on 5c271d4
 * too); test_own_receipt_race below is the case that failed there. */
static void
test_own_receipt_dup(void)
{
	am_queue *q = open_store("rcptdup", 0); /* self = me: the destination */
	uint8_t id[32], list[32];
	size_t len, n = 0;
	am_queue_result r;
	am_envelope env;
	am_queue_inbox_entry ents[4];

	uint8_t *raw = make(&len, id, other, AM_DEST_NODE, am_identity_pk(me), NULL, 1, T0, 3600000, "unread");
	CHECK_RC(am_queue_put(q, raw, len, T0, &r), 0);
	CHECK(r.inboxed);
	memcpy(list, id, 32);
	REQUIRE(am_sync_receipts_create(&env, am_identity_pk(other), list, 1, T0 + 3600000, me, T0) == 0);
	CHECK_RC(am_queue_put(q, env.raw, env.raw_len, T0, &r), 0);
	am_envelope_clear(&env);
	CHECK_RC(am_queue_put(q, raw, len, T0 + 1, &r), AM_EDUP);
	CHECK_RC(am_queue_has(q, id), 0);
	CHECK_RC(am_queue_inbox_list(q, 0, ents, 4, &n), 0);
	CHECK(n == 1 && memcmp(ents[0].id, id, 32) == 0);
	/* once acked it is gone for good: a later copy is refused */
	CHECK_RC(am_queue_inbox_ack(q, id, T0 + 2), 0);
	CHECK_RC(am_queue_put(q, raw, len, T0 + 3, &r), AM_ETOMBSTONE);
	free(raw);
	am_queue_close(q);
}

/* The same, racing: a second copy checked for duplicates before the first
 * is written, written after the first and its receipt (two links bringing
 * it at once). The second copy used to remove the first (5c271d4: 3 of 5
 * ha-failover runs lost messages that way). */
struct dup_race {
	am_queue *q;
	pthread_mutex_t mu; /* raw, len: held while the racer puts them */
	const uint8_t *raw;
	size_t len;
	atomic_bool stop;
	atomic_int puts;
};

static void *
dup_racer(void *arg)
{
	struct dup_race *d = arg;
	am_queue_result r;

	while (!atomic_load(&d->stop)) {
		pthread_mutex_lock(&d->mu);
		if (d->raw != NULL) {
			int rc = am_queue_put(d->q, d->raw, d->len, T0, &r); /* stored, a duplicate, or refused: all fine */
			(void) rc;
			atomic_fetch_add(&d->puts, 1);
		}
		pthread_mutex_unlock(&d->mu);
	}
	return NULL;
}

static void
test_own_receipt_race(void)
{
	struct dup_race d = {.q = open_store("rcptrace", 0), .mu = PTHREAD_MUTEX_INITIALIZER};
	pthread_t t;
	int lost = 0;

	REQUIRE(pthread_create(&t, NULL, dup_racer, &d) == 0);
	for (int i = 0; i < 300; i++) {
		uint8_t id[32];
		size_t len;
		char text[32];
		am_queue_result r;
		am_envelope env;
		snprintf(text, sizeof(text), "race %d", i);
		uint8_t *raw = make(&len, id, other, AM_DEST_NODE, am_identity_pk(me), NULL, 1, T0 + (uint64_t) i, 3600000, text);
		pthread_mutex_lock(&d.mu);
		d.len = len;
		d.raw = raw;
		pthread_mutex_unlock(&d.mu);
		int rc1 = am_queue_put(d.q, raw, len, T0, &r);
		REQUIRE(am_sync_receipts_create(&env, am_identity_pk(other), id, 1, T0 + 3600000, me, T0) == 0);
		int rc2 = am_queue_put(d.q, env.raw, env.raw_len, T0, &r);
		CHECK((rc1 == 0 || rc1 == AM_EDUP) && rc2 == 0);
		am_envelope_clear(&env);
		int seen = atomic_load(&d.puts);
		while (atomic_load(&d.puts) < seen + 2) /* the racer's copies after the receipt, too */
			;
		pthread_mutex_lock(&d.mu); /* the racer is between puts: raw may go */
		d.raw = NULL;
		pthread_mutex_unlock(&d.mu);
		lost += am_queue_has(d.q, id) != 0;
		free(raw);
	}
	atomic_store(&d.stop, true);
	pthread_join(t, NULL);
	CHECK(lost == 0);
	if (lost)
		fprintf(stderr, "test_own_receipt_race: %d of 300 delivered messages lost to a second copy\n", lost);
	am_queue_close(d.q);
}

static void
test_full(void)
{
	am_queue *q = open_store("full", 256 * 1024);
	am_queue_result r;
	char text[4000];
	uint8_t ids[400][32];
	size_t stored = 0;
	int rc = 0;

	memset(text, 0, sizeof(text));
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = (char) ('a' + (i * 7919 + i / 3) % 26); /* poorly compressible */
	for (size_t i = 0; i < 400 && rc == 0; i++) {
		size_t len;
		text[0] = (char) ('a' + i % 26);
		text[1] = (char) ('a' + i / 26 % 26);
		uint8_t *raw = make(&len, ids[i], other, AM_DEST_BROADCAST, NULL, NULL, 1, T0 + i, 3600000, text);
		rc = am_queue_put(q, raw, len, T0, &r);
		if (rc == 0)
			stored++;
		free(raw);
	}
	CHECK(rc == AM_EFULL);
	CHECK(stored > 10);
	am_queue_close(q);
	/* a batch into a full map keeps the part that fits, refuses the rest */
	{
		am_queue *q2 = open_store("fullbatch", 256 * 1024);
		enum { NB = 400 };
		am_queue_item it[NB];
		am_queue_result rs[NB];
		uint8_t bid[32];
		size_t ok = 0, full = 0;
		am_queue_stats st;
		for (size_t i = 0; i < NB; i++) {
			size_t len;
			text[0] = (char) ('a' + i % 26);
			text[1] = (char) ('a' + i / 26 % 26);
			it[i].raw = make(&len, bid, other, AM_DEST_BROADCAST, NULL, NULL, 1, T0 + i, 3600000, text);
			it[i].len = len;
		}
		CHECK_RC(am_queue_put_batch(q2, it, NB, T0, rs), AM_EFULL);
		for (size_t i = 0; i < NB; i++) {
			ok += rs[i].rc == 0;
			full += rs[i].rc == AM_EFULL;
			if (rs[i].rc == 0)
				CHECK_RC(am_queue_has(q2, rs[i].id), 0);
			else
				CHECK_RC(am_queue_has(q2, rs[i].id), AM_ENOTFOUND);
			free((void *) it[i].raw);
		}
		if (!(ok > 10 && full > 0 && ok + full == NB))
			fprintf(stderr, "fullbatch: ok %zu full %zu rc[0] %d %s\n", ok, full, rs[0].rc, rs[0].detail);
		CHECK(ok > 10 && full > 0 && ok + full == NB);
		CHECK_RC(am_queue_get_stats(q2, &st), 0);
		CHECK(st.envelopes == ok);
		am_queue_close(q2);
	}
	/* everything committed before the full map is intact after reopening */
	q = open_store("full", 256 * 1024);
	for (size_t i = 0; i < stored; i++)
		CHECK_RC(am_queue_has(q, ids[i]), 0);
	{
		am_queue_stats st;
		CHECK_RC(am_queue_get_stats(q, &st), 0);
		CHECK(st.envelopes == stored);
	}
	am_queue_close(q);
}

static void
test_peers_and_open(void)
{
	am_queue *q = open_store("peers", 0);
	am_queue_peer p = {0}, got;
	char path[256];
	am_queue *q2 = NULL;

	memcpy(p.pk, am_identity_pk(other), 32);
	strcpy(p.name, "edge_node_1");
	strcpy(p.address, "tcp://127.0.0.1:7001");
	CHECK_RC(am_queue_peer_seen(q, &p, T0), 0);
	memset(p.name, 0, sizeof(p.name));
	CHECK_RC(am_queue_peer_seen(q, &p, T0 + 50), 0);
	CHECK_RC(am_queue_peer_get(q, p.pk, &got), 0);
	CHECK(got.contacts == 2 && got.first_seen_ms == T0 && got.last_seen_ms == T0 + 50);
	CHECK(strcmp(got.name, "edge_node_1") == 0);
	CHECK_RC(am_queue_peer_get(q, am_identity_pk(me), &got), AM_ENOTFOUND);

	/* a store written by another version is refused by name */
	{
		MDB_txn *txn;
		MDB_val k = {7, "version"}, v = {1, "\x63"};
		REQUIRE(mdb_txn_begin(q->env, NULL, 0, &txn) == 0);
		REQUIRE(mdb_put(txn, q->config, &k, &v, 0) == 0);
		REQUIRE(mdb_txn_commit(txn) == 0);
	}
	am_queue_close(q);
	snprintf(path, sizeof(path), "%s/peers", tmpdir);
	CHECK_RC(am_queue_open(&q2, path, NULL), AM_EVERSION);
	snprintf(path, sizeof(path), "%s/nothing-here", tmpdir);
	CHECK_RC(am_queue_open(&q2, path, NULL), AM_ENOSTORE);
	CHECK(q2 == NULL);
}

int
main(void)
{
	uint8_t seed[32] = {7};
	char cmd[300];

	REQUIRE(am_core_init() == 0);
	REQUIRE(mkdtemp(tmpdir) != NULL);
	REQUIRE(am_identity_from_seed(&me, seed) == 0);
	seed[0] = 8;
	REQUIRE(am_identity_from_seed(&other, seed) == 0);
	test_admission();
	test_dedup_ack_tomb();
	test_order_batch();
	test_pipe();
	test_receipts();
	test_own_receipt_dup();
	test_own_receipt_race();
	test_full();
	test_peers_and_open();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	CHECK(system(cmd) == 0);
	am_identity_free(me);
	am_identity_free(other);
	return check_done("test_store");
}
