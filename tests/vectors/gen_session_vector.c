/*
 * gen_session_vector.c — writes the session transcript vector (tests/
 * vectors/session.json): every byte two real session engines (src/sync/
 * session.c) send each other in one first sync — handshake, peer info,
 * reconciliation, push, done and commit — between the link vector's fixed
 * identities, network key and ephemeral secrets (am_session_config's
 * `ephemeral`, set for this file alone), at a fixed `now`, with real LMDB
 * stores holding one fixed envelope each (to a third node, so no receipt
 * and no random nonce enters the transcript). Each engine reads exactly
 * what the other sent, so the vector is a session that worked; `meson
 * test session-vector-current` re-runs it and compares with the
 * checked-in file, and the Python cross-check rebuilds every byte from
 * docs/PROTOCOL.md sections 1, 10 and 12 alone.
 *
 * usage: gen_session_vector OUTPUT.json
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"
#include "vector_json.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1767225600000ull /* 2026-01-01 */

/* One end: its engine, its store, what it has sent (a byte stream). */
struct end {
	const char *dir; /* "i2r" or "r2i": the direction of what it sends */
	am_session *s;
	am_queue *q;
	am_recon_item items[4];
	uint8_t prio[4];
	size_t nitems;
	uint8_t *out;
	size_t out_len, out_off;
	bool pushed, peer_done, committed, synced;
};

static void
die(const char *what)
{
	fprintf(stderr, "gen_session_vector: %s: %s\n", what, am_error_detail());
	exit(1);
}

static void
fill(uint8_t *p, uint8_t first)
{
	for (int i = 0; i < 32; i++)
		p[i] = (uint8_t) (first + i);
}

static void
sent(struct end *e, am_session_step *st)
{
	if (st->send_len == 0)
		return;
	if ((e->out = realloc(e->out, e->out_len + st->send_len)) == NULL)
		die("out of memory");
	memcpy(e->out + e->out_len, st->send, st->send_len);
	e->out_len += st->send_len;
}

static int
collect(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct end *e = ctx;

	if (e->nitems == 4)
		return AM_ELIMIT;
	e->items[e->nitems].created_ms = m->created_ms;
	memcpy(e->items[e->nitems].id, id, AM_ID_BYTES);
	e->prio[e->nitems++] = m->priority;
	return 0;
}

static void
try_commit(struct end *e)
{
	am_session_step st;

	if (!e->pushed || !e->peer_done || e->committed)
		return;
	if (am_session_commit(e->s, &st) != 0)
		die("commit");
	e->committed = true;
	e->synced |= st.event == AM_SESSION_SYNCED;
	sent(e, &st);
	am_session_step_clear(&st);
}

static void
push_all(struct end *e, uint64_t now)
{
	size_t n = 0;
	const uint8_t *ids = am_session_lacks(e->s, &n);
	am_session_step st;

	for (size_t i = 0; i < n; i++) {
		uint8_t *raw = NULL;
		size_t len = 0;
		am_queue_meta m;
		if (am_queue_get(e->q, ids + i * AM_ID_BYTES, &raw, &len, &m) != 0 ||
		    am_session_push(e->s, ids + i * AM_ID_BYTES, raw, len, &m, now, &st) != 0)
			die("push");
		free(raw);
		sent(e, &st);
		am_session_step_clear(&st);
	}
	if (am_session_push_end(e->s, now, &st) != 0)
		die("push end");
	sent(e, &st);
	am_session_step_clear(&st);
	e->pushed = true;
}

/* what the daemons' pump does with each event, in line */
static void
on_event(struct end *e, am_session_step *st, uint64_t now)
{
	am_queue_result res[AM_SESSION_BATCH];
	am_session_step sa;
	uint64_t foreign = 0;

	switch (st->event) {
	case AM_SESSION_PEER:
		if (am_queue_each(e->q, collect, e) != 0 || am_session_accept(e->s, e->items, e->prio, e->nitems, &sa) != 0)
			die("accept");
		sent(e, &sa);
		am_session_step_clear(&sa);
		break;
	case AM_SESSION_RECONCILED:
		push_all(e, now);
		try_commit(e);
		break;
	case AM_SESSION_STORE:
		if (am_queue_put_batch(e->q, am_session_batch_items(st->batch), am_session_batch_count(st->batch), now,
		        res) != 0 ||
		    am_session_stored(e->s, st->batch, res, &foreign) != 0)
			die("store");
		break;
	case AM_SESSION_PEER_DONE:
		e->peer_done = true;
		try_commit(e);
		break;
	case AM_SESSION_SYNCED:
		e->synced = true;
		break;
	case AM_SESSION_NOTHING:
		break;
	}
}

/* everything from has sent and to has not read, read by to */
static bool
deliver(struct end *from, struct end *to, uint64_t now)
{
	bool moved = false;

	while (from->out_off < from->out_len) {
		size_t want = 0, n;
		uint8_t *dst = am_session_want(to->s, &want);
		am_session_step st;
		if (dst == NULL || want == 0)
			die("the reader wants nothing");
		n = from->out_len - from->out_off < want ? from->out_len - from->out_off : want;
		memcpy(dst, from->out + from->out_off, n);
		from->out_off += n;
		if (am_session_received(to->s, n, now, &st) != 0)
			die("receive");
		sent(to, &st);
		on_event(to, &st, now);
		am_session_step_clear(&st);
		moved = true;
	}
	return moved;
}

static void
end_open(struct end *e, const char *dir, const char *path, am_identity *me, const uint8_t *netkey,
    const uint8_t *eph, bool initiator, const am_peer_info *info, uint64_t now)
{
	am_queue_options o = {.create = true, .map_size = 16ull << 20};
	am_session_config c = {.me = me, .netkey = netkey, .initiator = initiator, .info = info,
	    .handshake_ms = 5000, .ephemeral = eph};

	memset(e, 0, sizeof(*e));
	e->dir = dir;
	if (am_queue_open(&e->q, path, &o) != 0 || am_queue_set_self(e->q, am_identity_pk(me)) != 0)
		die(path);
	if (am_session_new(&e->s, &c, now) != 0)
		die("session");
}

/* one fixed envelope from `from` to the third node, stored in q */
static void
put_fixed(am_queue *q, am_identity *from, const uint8_t *third, uint64_t created, const char *text,
    uint8_t nonce_byte, json_t *out, const char *key)
{
	uint8_t nonce[8], id[AM_ID_BYTES], *raw = NULL;
	size_t len = 0;
	am_envelope_spec sp = {0};
	am_queue_result r;

	memset(nonce, nonce_byte, sizeof(nonce));
	sp.dest_kind = AM_DEST_NODE;
	memcpy(sp.dest_node, third, 32);
	sp.created_ms = created;
	sp.expires_ms = T0 + 30ull * 24 * 3600 * 1000;
	sp.payload = (const uint8_t *) text;
	sp.payload_len = strlen(text);
	sp.content_type = "text/plain";
	sp.hops = 8;
	sp.no_compress = true;
	sp.nonce = nonce;
	if (am_envelope_create(&raw, &len, id, &sp, from) != 0 || am_queue_put(q, raw, len, T0, &r) != 0 || r.rc != 0)
		die("envelope");
	set_hex(out, key, raw, len);
	free(raw);
}

int
main(int argc, char **argv)
{
	uint8_t seed_i[32], seed_r[32], seed_c[32], netkey[32], eph_i[32], eph_r[32];
	char tmp[] = "/tmp/am-session-vector-XXXXXX", path[128];
	am_identity *ii = NULL, *ir = NULL, *ic = NULL;
	am_peer_info pi_i = {0}, pi_r = {0};
	struct end a, b;
	uint64_t now = T0 + 60000;
	json_t *out = json_object();
	int rounds = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_session_vector OUTPUT.json\n");
		return 2;
	}
	if (sodium_init() < 0 || mkdtemp(tmp) == NULL)
		return 1;
	fill(seed_i, 0x00);
	fill(seed_r, 0x20);
	fill(seed_c, 0xc0);
	fill(netkey, 0x40);
	fill(eph_i, 0x60);
	fill(eph_r, 0x80);
	if (am_identity_from_seed(&ii, seed_i) != 0 || am_identity_from_seed(&ir, seed_r) != 0 ||
	    am_identity_from_seed(&ic, seed_c) != 0)
		die("identity");
	snprintf(pi_i.name, sizeof(pi_i.name), "crane-1");
	snprintf(pi_i.role, sizeof(pi_i.role), "node");
	snprintf(pi_r.name, sizeof(pi_r.name), "site-gw");
	snprintf(pi_r.role, sizeof(pi_r.role), "gateway");
	snprintf(path, sizeof(path), "%s/i", tmp);
	end_open(&a, "i2r", path, ii, netkey, eph_i, true, &pi_i, now);
	snprintf(path, sizeof(path), "%s/r", tmp);
	end_open(&b, "r2i", path, ir, netkey, eph_r, false, &pi_r, now);

	json_object_set_new(out, "format",
	    json_string("agent_mesh session transcript, PROTOCOL.md sections 1, 10 and 12, link version 1"));
	json_object_set_new(out, "about",
	    json_string("the link vector's identities, network key and ephemeral secrets; each side holds one "
	                "envelope (to the third node) the other lacks; a one-shot first sync at now_ms"));
	json_object_set_new(out, "now_ms", json_integer((json_int_t) now));
	set_hex(out, "network_key", netkey, 32);
	set_hex(out, "initiator_seed", seed_i, 32);
	set_hex(out, "responder_seed", seed_r, 32);
	set_hex(out, "third_node_seed", seed_c, 32);
	set_hex(out, "initiator_ephemeral_secret", eph_i, 32);
	set_hex(out, "responder_ephemeral_secret", eph_r, 32);
	put_fixed(a.q, ii, am_identity_pk(ic), T0 + 1000, "from the crane", 0x11, out, "initiator_holds");
	put_fixed(b.q, ir, am_identity_pk(ic), T0 + 2000, "from the gateway", 0x22, out, "responder_holds");

	{
		am_session_step st;
		if (am_session_start(a.s, &st) != 0)
			die("start");
		sent(&a, &st);
		am_session_step_clear(&st);
	}
	for (;;) { /* both ways each round, until neither has anything to send */
		bool ab = deliver(&a, &b, now), ba = deliver(&b, &a, now);
		if (!ab && !ba)
			break;
		if (++rounds > 100)
			die("the session does not settle");
	}
	if (!a.synced || !b.synced)
		die("the session did not sync");
	set_hex(out, "i2r", a.out, a.out_len);
	set_hex(out, "r2i", b.out, b.out_len);
	{
		/* both now hold both envelopes */
		am_queue_stats sa = {0}, sb = {0};
		if (am_queue_get_counts(a.q, &sa) != 0 || am_queue_get_counts(b.q, &sb) != 0 || sa.envelopes != 2 ||
		    sb.envelopes != 2)
			die("the stores do not hold both envelopes");
	}
	if (write_vectors(out, argv[1], "gen_session_vector", JSON_PRESERVE_ORDER) != 0)
		return 1;
	am_session_free(a.s);
	am_session_free(b.s);
	am_queue_close(a.q);
	am_queue_close(b.q);
	free(a.out);
	free(b.out);
	am_identity_free(ii);
	am_identity_free(ir);
	am_identity_free(ic);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	return system(path) == 0 ? 0 : 1;
}
