/*
 * fuzz_session.c — libFuzzer target for a whole link session after the
 * handshake: the real am_link_session (responder, with a hub, so the live
 * phase too) on a real LMDB store, over an ipc:// stream. The harness does
 * a correct handshake, then plays the input as frames, in any order:
 *
 *   input  = record*     record = op(1) len(2, big-endian) data(len)
 *   op % 6 = 0  data is a plaintext frame (its first byte the frame type:
 *               N X R F E D C K or anything), sealed and sent
 *            1  a fresh E batch: data[0] % 8 + 1 envelopes signed now,
 *               each of data[1] * 4 KiB (so up to ~1 MiB, near the frame
 *               limit), broadcast or to the session's node by data[2]
 *            2  our peer info ('N', valid)
 *            3  a valid first reconciliation message ('R', empty set)
 *            4  data as raw bytes on the stream (not sealed: the frame
 *               decoder before the AEAD)
 *            5  a pause of data[0] % 20 ms (lets the session answer)
 * A reader thread drains and opens what the session sends. Nothing may
 * crash, leak or hang; the session must end when the harness closes.
 * Found on its first runs: nothing (the batch overflow of issue 10 was
 * in the pushing side, which fuzz_session reaches through op 1 + live).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static am_identity *me, *peer;
static uint8_t net[32];
static am_queue *q;
static am_hub *hub;
static am_link_server *srv;
static char url[200], dir[100];
static unsigned inputs;

struct sess {
	nng_stream *s;
	am_link_report r;
	int rc;
};

static void *
session_thread(void *arg)
{
	struct sess *x = arg;
	am_link_options o = {0};
	am_peer_info info = {0};

	snprintf(info.name, sizeof(info.name), "fuzz-node");
	snprintf(info.role, sizeof(info.role), "node");
	o.now_ms = am_now_ms();
	o.netkey = net;
	o.timeout_ms = 1500;
	o.hub = hub;
	o.info = &info;
	x->rc = am_link_session(x->s, false, q, me, &o, &x->r);
	return NULL;
}

static int
io(nng_stream *s, nng_aio *aio, uint8_t *buf, size_t n, bool tx)
{
	while (n > 0) {
		nng_iov iov = {buf, n};
		nng_aio_set_iov(aio, 1, &iov);
		if (tx)
			nng_stream_send(s, aio);
		else
			nng_stream_recv(s, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0 || nng_aio_count(aio) == 0)
			return -1;
		buf += nng_aio_count(aio);
		n -= nng_aio_count(aio);
	}
	return 0;
}

struct reader {
	nng_stream *s;
	am_link *l;
	nng_aio *aio;
	unsigned frames;
	_Atomic int stop, done;
};

/* drains the session's frames so it never blocks on a full socket */
static void *
reader_thread(void *arg)
{
	struct reader *rd = arg;
	while (!rd->stop) {
		uint8_t hdr[4], *f, *plain = NULL;
		size_t plen = 0;
		if (io(rd->s, rd->aio, hdr, 4, false) != 0)
			break;
		uint32_t n = (uint32_t) hdr[0] << 24 | (uint32_t) hdr[1] << 16 | (uint32_t) hdr[2] << 8 | hdr[3];
		if (n > AM_LINK_MAX_FRAME + 64 || (f = malloc(4 + (size_t) n)) == NULL)
			abort(); /* the session never sends past the limit */
		memcpy(f, hdr, 4);
		int rc = io(rd->s, rd->aio, f + 4, n, false);
		if (rc == 0 && am_link_open(rd->l, &plain, &plen, f, 4 + n) != 0)
			abort(); /* what the session sends always authenticates */
		free(f);
		free(plain);
		if (rc != 0)
			break;
		rd->frames++;
	}
	rd->done = 1;
	return NULL;
}

static void
cleanup(void)
{
	const char *files[] = {"data.mdb", "lock.mdb", "link.sock"};
	char path[200];

	am_link_server_close(srv);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void
setup(void)
{
	uint8_t s[32] = {3};
	am_queue_options qo = {.create = true, .map_size = 256u << 20};

	if (am_core_init() != 0 || am_identity_from_seed(&me, s) != 0)
		abort();
	s[0] = 4;
	if (am_identity_from_seed(&peer, s) != 0)
		abort();
	memset(net, 9, sizeof(net));
	snprintf(dir, sizeof(dir), "/tmp/am-fuzz-session-%d", (int) getpid());
	snprintf(url, sizeof(url), "ipc://%s/link.sock", dir);
	if (am_queue_open(&q, dir, &qo) != 0 || am_queue_set_self(q, am_identity_pk(me)) != 0 ||
	    am_hub_new(&hub, 4096) != 0 || am_link_server_open(&srv, url) != 0) {
		fprintf(stderr, "fuzz_session: %s\n", am_error_detail());
		abort();
	}
	atexit(cleanup);
}

static int
send_plain(nng_stream *s, nng_aio *aio, am_link *l, const uint8_t *p, size_t n)
{
	uint8_t *f = NULL;
	size_t fl = 0;
	int rc = am_link_seal(l, &f, &fl, p, n);
	if (rc == 0)
		rc = io(s, aio, f, fl, true);
	free(f);
	return rc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

/* op 1: count envelopes of kib KiB each in one E frame (as many as fit) */
static int
send_batch(nng_stream *s, nng_aio *aio, am_link *l, const uint8_t *d, size_t n)
{
	unsigned count = n > 0 ? d[0] % 8 + 1 : 1;
	size_t each = n > 1 ? (size_t) d[1] * 4096 : 100;
	bool to_me = n > 2 && (d[2] & 1);
	uint8_t *frame = malloc(AM_LINK_MAX_FRAME), *pl = malloc(each ? each : 1);
	size_t len = 5;
	unsigned put = 0;
	int rc = 0;

	if (frame == NULL || pl == NULL)
		abort();
	if (each > AM_MAX_PAYLOAD)
		each = AM_MAX_PAYLOAD;
	frame[0] = 'E';
	for (unsigned i = 0; i < count; i++) {
		am_envelope_spec sp = {0};
		uint8_t *raw = NULL, id[AM_ID_BYTES];
		size_t rl = 0;
		uint64_t now = am_now_ms();
		for (size_t k = 0; k < each; k++)
			pl[k] = (uint8_t) (k * 31 + i + inputs);
		sp.dest_kind = to_me ? AM_DEST_NODE : AM_DEST_BROADCAST;
		if (to_me)
			memcpy(sp.dest_node, am_identity_pk(me), AM_PK_BYTES);
		sp.created_ms = now;
		sp.expires_ms = now + 60000;
		sp.no_compress = true;
		sp.payload = pl;
		sp.payload_len = each;
		if (am_envelope_create(&raw, &rl, id, &sp, peer) != 0)
			abort();
		if (len + 4 + rl <= AM_LINK_MAX_FRAME) {
			put32(frame + len, (uint32_t) rl);
			memcpy(frame + len + 4, raw, rl);
			len += 4 + rl;
			put++;
		}
		free(raw);
	}
	put32(frame + 1, put);
	rc = send_plain(s, aio, l, frame, len);
	free(frame);
	free(pl);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	nng_stream_dialer *d = NULL;
	nng_aio *aio = NULL, *raio = NULL;
	nng_stream *cs = NULL;
	am_link *l = NULL;
	struct sess x = {0};
	struct reader rd = {0};
	pthread_t st, rt;
	bool started = false, reading = false;
	uint8_t *out = NULL, in[AM_LINK_PROOF_LEN];
	size_t olen = 0;

	if (!init) {
		setup();
		init = 1;
	}
	inputs++;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0 || nng_aio_alloc(&raio, NULL, NULL) != 0 ||
	    nng_stream_dialer_alloc(&d, url) != 0)
		abort();
	nng_aio_set_timeout(aio, 3000);
	nng_stream_dialer_dial(d, aio);
	if (am_link_server_accept(srv, &x.s, 3000) != 0)
		abort();
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0)
		abort();
	cs = nng_aio_get_output(aio, 0);
	if (pthread_create(&st, NULL, session_thread, &x) != 0)
		abort();
	started = true;
	/* the handshake, as an initiator */
	if (am_link_new(&l, peer, net, true) != 0 || am_link_start(l, &out, &olen) != 0 || io(cs, aio, out, olen, true) != 0)
		goto done;
	for (int step = 0; !am_link_open_p(l) && step < 3; step++) {
		size_t want = step == 0 ? AM_LINK_HELLO_LEN : AM_LINK_PROOF_LEN;
		free(out);
		out = NULL;
		if (io(cs, aio, in, want, false) != 0 || am_link_on_handshake(l, in, want, &out, &olen) != 0)
			goto done;
		if (out != NULL && io(cs, aio, out, olen, true) != 0)
			goto done;
	}
	if (!am_link_open_p(l))
		abort(); /* a correct handshake opens */
	rd.s = cs;
	rd.l = l;
	rd.aio = raio;
	nng_aio_set_timeout(raio, 5000);
	if (pthread_create(&rt, NULL, reader_thread, &rd) != 0)
		abort();
	reading = true;
	for (size_t off = 0; off + 3 <= size;) {
		uint8_t op = data[off] % 6;
		size_t n = (size_t) data[off + 1] << 8 | data[off + 2];
		const uint8_t *p = data + off + 3;
		if (n > size - off - 3)
			n = size - off - 3;
		off += 3 + n;
		int rc = 0;
		switch (op) {
		case 0:
			if (n > 0)
				rc = send_plain(cs, aio, l, p, n);
			break;
		case 1:
			rc = send_batch(cs, aio, l, p, n);
			break;
		case 2: {
			am_peer_info pi = {0};
			uint8_t *b = NULL, *f;
			size_t bl = 0;
			snprintf(pi.name, sizeof(pi.name), "fuzz-peer");
			snprintf(pi.role, sizeof(pi.role), "node");
			if (am_peer_info_encode(&b, &bl, &pi) != 0 || (f = malloc(bl + 1)) == NULL)
				abort();
			f[0] = 'N';
			memcpy(f + 1, b, bl);
			rc = send_plain(cs, aio, l, f, bl + 1);
			free(b);
			free(f);
			break;
		}
		case 3: {
			am_recon *rec = NULL;
			uint8_t *m = NULL, *f;
			size_t ml = 0;
			if (am_recon_new(&rec, NULL, 0) != 0 || am_recon_initiate(rec, &m, &ml) != 0 ||
			    (f = malloc(ml + 1)) == NULL)
				abort();
			f[0] = 'R';
			memcpy(f + 1, m, ml);
			rc = send_plain(cs, aio, l, f, ml + 1);
			free(m);
			free(f);
			am_recon_free(rec);
			break;
		}
		case 4:
			if (n > 0)
				rc = io(cs, aio, (uint8_t *) p, n, true);
			break;
		default: {
			struct timespec ts = {0, (long) (n > 0 ? p[0] % 20 : 1) * 1000000L};
			nanosleep(&ts, NULL);
			break;
		}
		}
		if (rc != 0)
			break; /* the session closed: what it did is what we test */
	}
done:
	/* closing our end ends the session, whatever phase it is in; nng
	 * closes the socket only once our own receive is done */
	if (cs != NULL)
		nng_stream_close(cs);
	if (reading) {
		rd.stop = 1;
		while (!rd.done) {
			nng_aio_cancel(raio);
			struct timespec ts = {0, 1000000L};
			nanosleep(&ts, NULL);
		}
		pthread_join(rt, NULL);
	}
	if (cs != NULL)
		nng_stream_free(cs);
	if (started)
		pthread_join(st, NULL);
	free(out);
	am_link_free(l);
	nng_aio_free(aio);
	nng_aio_free(raio);
	nng_stream_dialer_free(d);
	/* the store only grows: start again now and then */
	if (inputs % 2000 == 0)
		(void) am_queue_gc(q, am_now_ms() + 120000, NULL);
	return 0;
}
