/*
 * link_hostile.c — test helper: a peer holding the network key and a key
 * of its own that completes the real handshake (src/sync/link.c) with a
 * running daemon and then misbehaves in one way, to check that each is
 * refused by name and counted while the daemon keeps serving.
 * usage: link_hostile HOST PORT NETKEY_FILE MODE [NAME]
 *   MODE: garbage   a frame of random bytes after the handshake
 *         replay    the peer-info frame sent twice (same ciphertext)
 *         oversize  a frame header claiming 64 MiB
 *         truncated a frame header and half a frame, then close
 *         hello     a proper peer-info frame under NAME, then wait for the
 *                   daemon's answer: prints "refused: <why>" or "accepted"
 * Exit 0 when the misbehaviour was sent (the daemon's reaction is
 * checked by the calling script through its log and metrics).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"
#include "am_runtime.h"
#include "am_sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int
all(int fd, uint8_t *buf, size_t n, bool sending)
{
	while (n > 0) {
		ssize_t k = sending ? write(fd, buf, n) : read(fd, buf, n);
		if (k <= 0)
			return -1;
		buf += k;
		n -= (size_t) k;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	uint8_t netkey[32], in[AM_LINK_PROOF_LEN], *out = NULL, *frame = NULL;
	size_t out_len = 0, flen = 0;
	am_identity *me = NULL;
	am_link *l = NULL;
	struct sockaddr_in sa = {0};
	int fd, step;
	const char *mode;

	if (argc < 5 || am_core_init() != 0 || am_netkey_parse(netkey, argv[3]) != 0) {
		fprintf(stderr, "usage: link_hostile HOST PORT NETKEY_FILE(@) MODE [NAME]\n");
		return 2;
	}
	mode = argv[4];
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		perror("link_hostile: connect");
		return 1;
	}
	if (am_identity_generate(&me) != 0 || am_link_new(&l, me, netkey, true) != 0 ||
	    am_link_start(l, &out, &out_len) != 0 || all(fd, out, out_len, true) != 0)
		return 1;
	for (step = 0; !am_link_open_p(l) && step < 3; step++) {
		size_t want = step == 0 ? AM_LINK_HELLO_LEN : AM_LINK_PROOF_LEN;
		free(out);
		out = NULL;
		if (all(fd, in, want, false) != 0 || am_link_on_handshake(l, in, want, &out, &out_len) != 0) {
			fprintf(stderr, "link_hostile: handshake failed: %s\n", am_error_detail());
			return 1;
		}
		if (out != NULL && all(fd, out, out_len, true) != 0)
			return 1;
	}
	free(out);
	{
		am_peer_info pi = {0};
		uint8_t *enc = NULL, *plain;
		size_t elen = 0;
		snprintf(pi.name, sizeof(pi.name), "%s", argc > 5 ? argv[5] : "hostile");
		snprintf(pi.role, sizeof(pi.role), "node");
		if (am_peer_info_encode(&enc, &elen, &pi) != 0 || (plain = malloc(elen + 1)) == NULL)
			return 1;
		plain[0] = 'N';
		memcpy(plain + 1, enc, elen);
		if (am_link_seal(l, &frame, &flen, plain, elen + 1) != 0)
			return 1;
		free(enc);
		free(plain);
	}
	if (strcmp(mode, "garbage") == 0) {
		uint8_t g[4 + 200];
		randombytes_buf(g, sizeof(g));
		g[0] = 0, g[1] = 0, g[2] = 0, g[3] = 200;
		(void) all(fd, g, sizeof(g), true);
	} else if (strcmp(mode, "replay") == 0) {
		(void) all(fd, frame, flen, true);
		(void) all(fd, frame, flen, true);
	} else if (strcmp(mode, "oversize") == 0) {
		uint8_t h[4] = {0x04, 0, 0, 0};
		(void) all(fd, h, 4, true);
	} else if (strcmp(mode, "truncated") == 0) {
		(void) all(fd, frame, flen / 2, true);
		shutdown(fd, SHUT_WR);
	} else if (strcmp(mode, "hello") == 0) {
		uint8_t hdr[4], *body = NULL, *plain = NULL;
		size_t plen = 0;
		uint32_t n;
		if (all(fd, frame, flen, true) != 0)
			return 1;
		/* the daemon's own info comes first; then its verdict: 'X' with
		 * why, or the first reconciliation frame */
		for (int k = 0; k < 2; k++) {
			free(plain);
			free(body);
			plain = body = NULL;
			if (all(fd, hdr, 4, false) != 0) {
				printf("closed\n");
				break;
			}
			n = (uint32_t) hdr[0] << 24 | (uint32_t) hdr[1] << 16 | (uint32_t) hdr[2] << 8 | hdr[3];
			if (n > (1u << 20) || (body = malloc(4 + n)) == NULL)
				return 1;
			memcpy(body, hdr, 4);
			if (all(fd, body + 4, n, false) != 0 || am_link_open(l, &plain, &plen, body, 4 + n) != 0)
				return 1;
			if (plen > 0 && plain[0] == 'X') {
				printf("refused: %.*s\n", (int) plen - 1, (const char *) plain + 1);
				break;
			}
			if (k == 1)
				printf("accepted\n");
		}
		free(plain);
		free(body);
	} else {
		fprintf(stderr, "link_hostile: unknown mode %s\n", mode);
		return 2;
	}
	/* give the daemon a moment to read it all before the close */
	{
		uint8_t sink[256];
		struct timeval tv = {2, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (read(fd, sink, sizeof(sink)) > 0)
			;
	}
	close(fd);
	free(frame);
	am_link_free(l);
	am_identity_free(me);
	return 0;
}
