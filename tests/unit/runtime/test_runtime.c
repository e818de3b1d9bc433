/*
 * test_runtime.c — the daemon's small parts without sockets: the .env
 * reader (precedence, errors naming file and line), the TOFU trust store
 * (pin, refuse a changed key and a second name, survive a reopen, refuse
 * a damaged file without touching it), and the hub's ring (echo
 * suppression, a lapped cursor, the inbox counter).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"
#include "../../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/am-test-runtime-XXXXXX";

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void
env_file(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/.env", dir);
	write_file(path, "# site config\n\nGATEWAY_PORT=8788\nexport AM_T_QUOTED=\"a b\"\nAM_T_SINGLE='c'\n"
	                 "AM_T_KEEP=from-file\n  AM_T_SPACED = x \n");
	setenv("AM_T_KEEP", "from-env", 1);
	unsetenv("GATEWAY_PORT");
	CHECK_RC(am_env_file_load(path, true), 0);
	CHECK(getenv("GATEWAY_PORT") && strcmp(getenv("GATEWAY_PORT"), "8788") == 0);
	CHECK(getenv("AM_T_QUOTED") && strcmp(getenv("AM_T_QUOTED"), "a b") == 0);
	CHECK(getenv("AM_T_SINGLE") && strcmp(getenv("AM_T_SINGLE"), "c") == 0);
	CHECK(strcmp(getenv("AM_T_KEEP"), "from-env") == 0); /* the environment wins */
	CHECK(getenv("AM_T_SPACED") && strcmp(getenv("AM_T_SPACED"), "x") == 0);
	/* the seed's .env as it is written (refused on 47f2cf2: the comment
	 * was part of the value) and dotenv's other forms */
	write_file(path, "TRUST_MODE=pki  # or 'tofu'\nAM_T_HASH=a#b\nAM_T_DQ=\"x # y\"  # comment\n"
	                 "AM_T_ESC=\"l1\\nl2 \\\"q\\\"\"\nAM_T_SQ='no \\n here' # c\nAM_T_EMPTY=\nAM_T_ONLY=# all comment\n");
	unsetenv("TRUST_MODE");
	CHECK_RC(am_env_file_load(path, true), 0);
	CHECK(getenv("TRUST_MODE") && strcmp(getenv("TRUST_MODE"), "pki") == 0);
	CHECK(getenv("AM_T_HASH") && strcmp(getenv("AM_T_HASH"), "a#b") == 0);
	CHECK(getenv("AM_T_DQ") && strcmp(getenv("AM_T_DQ"), "x # y") == 0);
	CHECK(getenv("AM_T_ESC") && strcmp(getenv("AM_T_ESC"), "l1\nl2 \"q\"") == 0);
	CHECK(getenv("AM_T_SQ") && strcmp(getenv("AM_T_SQ"), "no \\n here") == 0);
	CHECK(getenv("AM_T_EMPTY") && strcmp(getenv("AM_T_EMPTY"), "") == 0);
	CHECK(getenv("AM_T_ONLY") && strcmp(getenv("AM_T_ONLY"), "") == 0);
	unsetenv("TRUST_MODE");
	write_file(path, "Q=\"closed\" trailing\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "after the closing quote") != NULL);
	write_file(path, "A=1\nthis line is wrong\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "line 2") != NULL);
	write_file(path, "1BAD=x\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	write_file(path, "Q=\"open\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "quote") != NULL);
	snprintf(path, sizeof(path), "%s/missing.env", dir);
	CHECK_RC(am_env_file_load(path, false), 0);
	CHECK(am_env_file_load(path, true) == AM_EIO);
}

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
	write_file(path, "{\"peers\": {\"x\": ");
	CHECK(am_trust_open(&t, dir) == AM_EMALFORMED);
	CHECK(strstr(am_error_detail(), "trust_store.json") != NULL);
	{
		char *text = NULL;
		size_t len = 0;
		REQUIRE(am_file_read(&text, &len, path, 4096) == 0);
		CHECK(strcmp(text, "{\"peers\": {\"x\": ") == 0);
		free(text);
	}
	write_file(path, "{\"peers\": {\"x\": {\"key\": \"nothex\"}}}");
	CHECK(am_trust_open(&t, dir) == AM_EFIELD);
}

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

static void
prune(void)
{
	char old[300], fresh[300], other[300];
	struct timespec times[2] = {{0, 0}, {0, 0}};

	snprintf(old, sizeof(old), "%s/old.json", dir);
	snprintf(fresh, sizeof(fresh), "%s/fresh.json", dir);
	snprintf(other, sizeof(other), "%s/old.txt", dir);
	write_file(old, "{}");
	write_file(fresh, "{}");
	write_file(other, "x");
	times[0].tv_sec = times[1].tv_sec = time(NULL) - 40 * 24 * 3600;
	REQUIRE(utimensat(AT_FDCWD, old, times, 0) == 0 && utimensat(AT_FDCWD, other, times, 0) == 0);
	am_prune_dir(dir, ".json", AM_KEEP_RECORDS_MS);
	CHECK(access(old, F_OK) != 0);   /* old record: gone */
	CHECK(access(fresh, F_OK) == 0); /* recent: kept */
	CHECK(access(other, F_OK) == 0); /* another suffix: not ours */
}

int
main(void)
{
	REQUIRE(am_core_init() == 0 && mkdtemp(dir) != NULL);
	env_file();
	trust();
	hub();
	prune();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_done("test_runtime");
}
