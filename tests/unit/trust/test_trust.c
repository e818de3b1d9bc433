/*
 * test_trust.c — the TOFU trust store (src/trust/trust.c): pin, refuse a
 * changed key and a second name, survive a reopen, refuse a damaged file
 * without touching it.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"
#include "../../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/am-test-trust-XXXXXX";

static void
trust(void)
{
	am_trust *t = NULL;
	uint8_t k1[AM_PK_BYTES], k2[AM_PK_BYTES];
	bool pinned = false;
	char path[256];

	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	REQUIRE(am_trust_open(&t, dir) == 0);
	CHECK_RC(am_trust_check(t, "crane-1", k1, "tcp://x", 1, &pinned), 0);
	CHECK(pinned);
	CHECK_RC(am_trust_check(t, "crane-1", k1, "tcp://x", 2, &pinned), 0);
	CHECK(!pinned);
	CHECK_RC(am_trust_check(t, "crane-1", k2, "tcp://y", 3, &pinned), AM_EKEYCHANGED); /* AM_EUNTRUSTED on 955567a */
	CHECK(strstr(am_error_detail(), "crane-1") != NULL && strstr(am_error_detail(), "pinned") != NULL);
	CHECK_RC(am_trust_check(t, "crane-2", k1, "tcp://x", 4, &pinned), AM_EKEYCHANGED); /* AM_EUNTRUSTED on 955567a */
	am_trust_close(t);
	/* the pin is on disk */
	REQUIRE(am_trust_open(&t, dir) == 0);
	CHECK_RC(am_trust_check(t, "crane-1", k2, "tcp://y", 5, &pinned), AM_EKEYCHANGED); /* AM_EUNTRUSTED on 955567a */
	CHECK_RC(am_trust_check(t, "crane-2", k2, "tcp://y", 5, &pinned), 0);
	am_trust_close(t);
	/* a damaged file is refused and left as it is */
	snprintf(path, sizeof(path), "%s/trust/trust_store.json", dir);
	check_write_file(path, "{\"peers\": {\"x\": ");
	CHECK(am_trust_open(&t, dir) == AM_EMALFORMED);
	CHECK(strstr(am_error_detail(), "trust_store.json") != NULL);
	{
		char *text = NULL;
		size_t len = 0;
		REQUIRE(am_file_read(&text, &len, path, 4096) == 0);
		CHECK(strcmp(text, "{\"peers\": {\"x\": ") == 0);
		free(text);
	}
	check_write_file(path, "{\"peers\": {\"x\": {\"key\": \"nothex\"}}}");
	CHECK(am_trust_open(&t, dir) == AM_EFIELD);
}

int
main(void)
{
	REQUIRE(am_core_init() == 0 && mkdtemp(dir) != NULL);
	trust();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_done("test_trust");
}
