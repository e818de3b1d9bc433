/*
 * test_hub.c — the hub's ring (src/net/hub.c): echo suppression, a lapped
 * cursor, the inbox counter.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_net.h"
#include "../../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/am-test-hub-XXXXXX";

static void
hub(void)
{
	am_hub *h = NULL;
	uint8_t ids[4 * AM_ID_BYTES], out[8 * AM_ID_BYTES];
	uint64_t cur, t1, t2;
	size_t n = 0;

	REQUIRE(am_hub_new(&h, 4) == 0);
	t1 = am_hub_tag(h);
	t2 = am_hub_tag(h);
	CHECK(t1 != t2 && t1 != 0);
	cur = am_hub_cursor(h);
	for (int i = 0; i < 4; i++)
		memset(ids + i * AM_ID_BYTES, i + 1, AM_ID_BYTES);
	am_hub_note(h, ids, 2, t1, 0);      /* brought by session t1 */
	am_hub_note(h, ids + 64, 1, 0, 1); /* our own, inboxed */
	CHECK_RC(am_hub_next(h, &cur, t1, out, 8, 0, &n), 0);
	CHECK(n == 1 && out[0] == 3); /* t1 does not get its own back */
	{
		uint64_t c2 = 0;
		CHECK_RC(am_hub_next(h, &c2, t2, out, 8, 0, &n), 0);
		CHECK(n == 3);
	}
	CHECK(am_hub_inbox_seq(h) == 1);
	CHECK(!am_hub_wait_inbox(h, 1, 20));
	CHECK(am_hub_wait_inbox(h, 0, 20));
	/* a cursor more than the ring behind must reconcile instead */
	{
		uint64_t old = am_hub_cursor(h);
		for (int i = 0; i < 5; i++)
			am_hub_note(h, ids, 1, 0, 0);
		CHECK_RC(am_hub_next(h, &old, t2, out, 8, 0, &n), AM_ELIMIT);
	}
	/* waiting: nothing comes, a timeout with n == 0 */
	cur = am_hub_cursor(h);
	CHECK_RC(am_hub_next(h, &cur, t2, out, 8, 30, &n), 0);
	CHECK(n == 0);
	/* what was noted is remembered (the watcher's filter) */
	CHECK(am_hub_seen(h, ids));
	{
		uint8_t fresh[AM_ID_BYTES];
		memset(fresh, 0x77, sizeof(fresh));
		CHECK(!am_hub_seen(h, fresh));
	}
	am_hub_stop(h);
	CHECK_RC(am_hub_next(h, &cur, t2, out, 8, 1000, &n), AM_ENOTFOUND);
	am_hub_free(h);
}

int
main(void)
{
	REQUIRE(am_core_init() == 0 && mkdtemp(dir) != NULL);
	hub();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_done("test_hub");
}
