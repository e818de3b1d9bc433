/*
 * fuzz_engine.c — libFuzzer target for the I/O-free link session engine
 * (src/sync/session.c) as a responder in the live phase, driven the way the
 * runtime's pump drives it, on a real LMDB store, with no sockets or
 * threads: fast, and every byte reaches the engine. The harness holds a
 * real am_link, does a correct handshake, then plays the input (the same
 * records as fuzz_session, so its corpus seeds this one):
 *
 *   input  = record*     record = op(1) len(2, big-endian) data(len)
 *   op % 6 = 0  data is a plaintext frame (its first byte the frame type),
 *               sealed and fed
 *            1  a fresh E batch: data[0] % 8 + 1 envelopes signed now,
 *               each of data[1] * 64 bytes, broadcast or to the engine's
 *               node by data[2]
 *            2  our peer info ('N', valid)
 *            3  a valid first reconciliation message ('R', empty set)
 *            4  data as raw bytes (not sealed: the frame decoder)
 *            5  from now on bytes go in cuts of up to data[0] (0: whole)
 * The engine's events are answered as the pump answers them (accept,
 * push what the peer lacks, store, commit, receipts). Nothing may crash or
 * leak, and every frame the engine writes must open with the harness's
 * link (it never sends what its peer cannot read).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_sync.h"
#include "am_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1767225600000ull

static am_identity *me, *peer;
static uint8_t net[32];
static am_queue *q;
static char dir[100];
static unsigned inputs;

struct run {
	am_session *s;
	am_link *h;          /* the harness's end */
	bool open;           /* h is open: frames from the engine are opened */
	uint8_t *rx;         /* what the engine sent, not yet parsed */
	size_t rx_len;
	size_t cut;
	uint64_t now;
	am_recon_item *items;
	uint8_t *prio;
	size_t nitems, cap;
	bool pushed, peer_done, committed;
	int rc;
};

static void
cleanup(void)
{
	char path[200];

	am_queue_close(q);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static void
setup(void)
{
	uint8_t s[32] = {5};
	am_queue_options qo = {.create = true, .map_size = 256u << 20};

	if (am_core_init() != 0 || am_identity_from_seed(&me, s) != 0)
		abort();
	s[0] = 6;
	if (am_identity_from_seed(&peer, s) != 0)
		abort();
	memset(net, 9, sizeof(net));
	snprintf(dir, sizeof(dir), "/tmp/am-fuzz-engine-%d", (int) getpid());
	if (am_queue_open(&q, dir, &qo) != 0 || am_queue_set_self(q, am_identity_pk(me)) != 0) {
		fprintf(stderr, "fuzz_engine: %s\n", am_error_detail());
		abort();
	}
	atexit(cleanup);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

/* Take what the engine wrote; once open, every whole frame must open. */
static void
take(struct run *r, am_session_step *st)
{
	size_t off = 0;

	if (st->send_len == 0)
		return;
	if ((r->rx = realloc(r->rx, r->rx_len + st->send_len)) == NULL)
		abort();
	memcpy(r->rx + r->rx_len, st->send, st->send_len);
	r->rx_len += st->send_len;
	if (!r->open)
		return;
	while (r->rx_len - off >= 4) {
		uint32_t n = get32(r->rx + off);
		uint8_t *plain = NULL;
		size_t pl = 0;
		if (n > AM_LINK_MAX_FRAME + 16)
			abort(); /* the engine never writes past the limit */
		if (r->rx_len - off - 4 < n)
			break;
		if (am_link_open(r->h, &plain, &pl, r->rx + off, 4 + (size_t) n) != 0)
			abort();
		free(plain);
		off += 4 + n;
	}
	memmove(r->rx, r->rx + off, r->rx_len - off);
	r->rx_len -= off;
}

static int
collect(void *ctx, const uint8_t id[AM_ID_BYTES], const am_queue_meta *m)
{
	struct run *r = ctx;

	if (r->nitems == 4096)
		return 1; /* enough for a fuzz run */
	if (r->nitems == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		if ((r->items = realloc(r->items, r->cap * sizeof(*r->items))) == NULL ||
		    (r->prio = realloc(r->prio, r->cap)) == NULL)
			abort();
	}
	r->items[r->nitems].created_ms = m->created_ms;
	memcpy(r->items[r->nitems].id, id, AM_ID_BYTES);
	r->prio[r->nitems++] = m->priority;
	return 0;
}

static void
try_commit(struct run *r)
{
	am_session_step st;

	if (!r->pushed || !r->peer_done || r->committed)
		return;
	if (am_session_commit(r->s, &st) != 0)
		abort(); /* everything stored, both pushes ended: commit cannot be early */
	r->committed = true;
	take(r, &st);
	am_session_step_clear(&st);
}

static void
on_event(struct run *r, am_session_step *ev)
{
	static am_queue_result res[AM_SESSION_BATCH];
	am_session_step st;
	uint64_t foreign;

	switch (ev->event) {
	case AM_SESSION_PEER:
		r->nitems = 0;
		(void) am_queue_each(q, collect, r);
		if (am_session_accept(r->s, r->items, r->prio, r->nitems, &st) == 0)
			take(r, &st);
		am_session_step_clear(&st);
		break;
	case AM_SESSION_RECONCILED: {
		size_t n = 0;
		const uint8_t *ids = am_session_lacks(r->s, &n);
		for (size_t i = 0; i < n && i < 64; i++) {
			uint8_t *raw;
			size_t len;
			am_queue_meta m;
			if (am_queue_get(q, ids + i * AM_ID_BYTES, &raw, &len, &m) != 0)
				continue;
			if (am_session_push(r->s, ids + i * AM_ID_BYTES, raw, len, &m, r->now, &st) == 0)
				take(r, &st);
			am_session_step_clear(&st);
			free(raw);
		}
		if (am_session_push_end(r->s, r->now, &st) == 0)
			take(r, &st);
		am_session_step_clear(&st);
		r->pushed = true;
		try_commit(r);
		break;
	}
	case AM_SESSION_STORE:
		if (am_queue_put_batch(q, am_session_batch_items(ev->batch), am_session_batch_count(ev->batch), r->now,
		        res) == 0 &&
		    am_session_stored(r->s, ev->batch, res, &foreign) != 0)
			abort();
		break;
	case AM_SESSION_PEER_DONE:
		r->peer_done = true;
		try_commit(r);
		break;
	case AM_SESSION_SYNCED: {
		am_envelope *envs = NULL;
		size_t n = 0;
		if (am_session_receipts(r->s, r->now, &envs, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				am_envelope_clear(&envs[i]);
			free(envs);
		}
		break;
	}
	default:
		break;
	}
}

/* Feed bytes to the engine in the run's cuts; 0 while it takes them. */
static int
feed(struct run *r, const uint8_t *p, size_t n)
{
	while (n > 0 && r->rc == 0) {
		size_t want = 0, k;
		uint8_t *dst = am_session_want(r->s, &want);
		am_session_step st;
		if (dst == NULL || want == 0)
			return -1;
		k = n < want ? n : want;
		if (r->cut > 0 && k > r->cut)
			k = r->cut;
		memcpy(dst, p, k);
		p += k;
		n -= k;
		if ((r->rc = am_session_received(r->s, k, r->now, &st)) == 0) {
			take(r, &st);
			on_event(r, &st);
		}
		am_session_step_clear(&st);
	}
	return r->rc;
}

static int
feed_plain(struct run *r, const uint8_t *p, size_t n)
{
	uint8_t *f = NULL;
	size_t fl = 0;
	int rc = am_link_seal(r->h, &f, &fl, p, n);

	if (rc == 0)
		rc = feed(r, f, fl);
	free(f);
	return rc;
}

/* op 1: count envelopes of data[1] x 64 bytes in one E frame */
static int
feed_batch(struct run *r, const uint8_t *d, size_t n)
{
	unsigned count = n > 0 ? d[0] % 8 + 1 : 1;
	size_t each = n > 1 ? (size_t) d[1] * 64 : 100, len = 5;
	bool to_me = n > 2 && (d[2] & 1);
	uint8_t *frame = malloc(AM_LINK_MAX_FRAME), *pl = malloc(each ? each : 1);
	int rc;

	if (frame == NULL || pl == NULL)
		abort();
	frame[0] = 'E';
	for (unsigned i = 0; i < count; i++) {
		am_envelope_spec sp = {0};
		uint8_t *raw = NULL, id[AM_ID_BYTES];
		size_t rl = 0;
		for (size_t k = 0; k < each; k++)
			pl[k] = (uint8_t) (k * 31 + i + inputs);
		sp.dest_kind = to_me ? AM_DEST_NODE : AM_DEST_BROADCAST;
		if (to_me)
			memcpy(sp.dest_node, am_identity_pk(me), AM_PK_BYTES);
		sp.created_ms = r->now;
		sp.expires_ms = r->now + 60000;
		sp.no_compress = true;
		sp.payload = pl;
		sp.payload_len = each;
		if (am_envelope_create(&raw, &rl, id, &sp, peer) != 0)
			abort();
		put32(frame + len, (uint32_t) rl);
		memcpy(frame + len + 4, raw, rl);
		len += 4 + rl;
		free(raw);
	}
	put32(frame + 1, count);
	rc = feed_plain(r, frame, len);
	free(frame);
	free(pl);
	return rc;
}

static int
feed_info(struct run *r)
{
	am_peer_info pi = {0};
	uint8_t *b = NULL, *f;
	size_t bl = 0;
	int rc;

	snprintf(pi.name, sizeof(pi.name), "fuzz-peer");
	snprintf(pi.role, sizeof(pi.role), "node");
	if (am_peer_info_encode(&b, &bl, &pi) != 0 || (f = malloc(bl + 1)) == NULL)
		abort();
	f[0] = 'N';
	memcpy(f + 1, b, bl);
	rc = feed_plain(r, f, bl + 1);
	free(b);
	free(f);
	return rc;
}

static int
feed_recon(struct run *r)
{
	am_recon *rec = NULL;
	uint8_t *m = NULL, *f;
	size_t ml = 0;
	int rc;

	if (am_recon_new(&rec, NULL, 0) != 0 || am_recon_initiate(rec, &m, &ml) != 0 || (f = malloc(ml + 1)) == NULL)
		abort();
	f[0] = 'R';
	memcpy(f + 1, m, ml);
	rc = feed_plain(r, f, ml + 1);
	free(m);
	free(f);
	am_recon_free(rec);
	return rc;
}

/* The handshake as the initiator; the engine's answers come back in rx. */
static int
handshake(struct run *r)
{
	uint8_t *out = NULL;
	size_t olen = 0;
	int rc;

	if ((rc = am_link_start(r->h, &out, &olen)) != 0 || (rc = feed(r, out, olen)) != 0)
		goto out;
	for (int step = 0; step < 2 && !am_link_open_p(r->h); step++) {
		size_t want = step == 0 ? AM_LINK_HELLO_LEN : AM_LINK_PROOF_LEN;
		free(out);
		out = NULL;
		if (r->rx_len < want)
			abort(); /* the engine answers a correct handshake at once */
		if ((rc = am_link_on_handshake(r->h, r->rx, want, &out, &olen)) != 0)
			abort();
		memmove(r->rx, r->rx + want, r->rx_len - want);
		r->rx_len -= want;
		if (out != NULL && (rc = feed(r, out, olen)) != 0)
			goto out;
	}
	if (!am_link_open_p(r->h))
		abort();
	r->open = true;
	{
		am_session_step none = {0};
		take(r, &none); /* open the 'N' already there */
	}
out:
	free(out);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	am_session_config c = {.live = true, .handshake_ms = 5000, .keepalive_ms = 1000};
	struct run r = {0};

	if (!init) {
		setup();
		init = 1;
	}
	inputs++;
	c.me = me;
	c.netkey = net;
	r.now = T0 + inputs;
	if (am_session_new(&r.s, &c, r.now) != 0 || am_link_new(&r.h, peer, net, true) != 0)
		abort();
	if (handshake(&r) != 0)
		goto done;
	for (size_t off = 0; off + 3 <= size;) {
		uint8_t op = data[off] % 6;
		size_t n = (size_t) data[off + 1] << 8 | data[off + 2];
		const uint8_t *p = data + off + 3;
		int rc = 0;
		if (n > size - off - 3)
			n = size - off - 3;
		off += 3 + n;
		switch (op) {
		case 0:
			if (n > 0)
				rc = feed_plain(&r, p, n);
			break;
		case 1:
			rc = feed_batch(&r, p, n);
			break;
		case 2:
			rc = feed_info(&r);
			break;
		case 3:
			rc = feed_recon(&r);
			break;
		case 4:
			rc = feed(&r, p, n);
			break;
		default:
			r.cut = n > 0 ? p[0] : 0;
			break;
		}
		if (rc != 0)
			break; /* the engine refused: what it did is what we test */
		{
			am_session_step st;
			if (am_session_tick(r.s, r.now + 2000, &st) == 0)
				take(&r, &st);
			am_session_step_clear(&st);
		}
	}
done:
	am_session_free(r.s);
	am_link_free(r.h);
	free(r.rx);
	free(r.items);
	free(r.prio);
	if (inputs % 2000 == 0)
		(void) am_queue_gc(q, r.now + 120000, NULL);
	return 0;
}
