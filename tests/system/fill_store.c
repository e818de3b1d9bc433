/*
 * fill_store.c — test helper: sign N envelopes of SIZE random bytes with a
 * node folder's key, addressed to DEST (a node id, or "broadcast"), and
 * commit them to its store in batches. A CLI `send` per envelope would make
 * the bigger system tests slow for no reason.
 * usage: fill_store DIR N SIZE DEST
 */
#include "am_core.h"
#include "am_queue.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	char path[4096];
	am_identity *me = NULL;
	am_queue *q = NULL;
	size_t n, size;
	uint8_t dest[AM_PK_BYTES];
	bool broadcast;
	enum { B = 512 };
	am_envelope envs[B];
	am_queue_result res[B];
	uint8_t *payload;

	if (argc != 5 || am_core_init() != 0) {
		fprintf(stderr, "usage: fill_store DIR N SIZE DEST|broadcast\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	size = strtoul(argv[3], NULL, 10);
	broadcast = strcmp(argv[4], "broadcast") == 0;
	if ((!broadcast && am_node_id_parse(dest, argv[4]) != 0) || size > AM_MAX_PAYLOAD) {
		fprintf(stderr, "fill_store: bad DEST or SIZE\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/identity.pem", argv[1]);
	if (am_identity_load_pem(&me, path) != 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/store", argv[1]);
	if (am_queue_open(&q, path, NULL) != 0)
		goto fail;
	/* FILL_PRIORITY=0..3: all at one priority (default: the four in turn) */
	int one_prio = getenv("FILL_PRIORITY") ? atoi(getenv("FILL_PRIORITY")) % 4 : -1;
	payload = malloc(size ? size : 1);
	for (size_t done = 0; done < n;) {
		size_t k = n - done < B ? n - done : B;
		uint64_t now = am_now_ms();
		for (size_t i = 0; i < k; i++) {
			am_envelope_spec s = {0};
			randombytes_buf(payload, size);
			s.dest_kind = broadcast ? AM_DEST_BROADCAST : AM_DEST_NODE;
			memcpy(s.dest_node, dest, AM_PK_BYTES);
			s.created_ms = now;
			s.expires_ms = now + 86400000;
			s.priority = one_prio >= 0 ? (uint8_t) one_prio : (uint8_t) (i % 4);
			s.payload = payload;
			s.payload_len = size;
			if (am_envelope_create_decoded(&envs[i], &s, me) != 0)
				goto fail;
		}
		if (am_queue_put_own(q, envs, k, now, res) != 0)
			goto fail;
		for (size_t i = 0; i < k; i++)
			am_envelope_clear(&envs[i]);
		done += k;
	}
	free(payload);
	am_queue_close(q);
	am_identity_free(me);
	return 0;
fail:
	fprintf(stderr, "fill_store: %s\n", am_error_detail());
	return 1;
}
