/*
 * test_files.c — pruning old records (src/core/files.c): old files of the
 * suffix go, recent ones and other suffixes stay.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"
#include "../../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/am-test-files-XXXXXX";

static void
prune(void)
{
	char old[300], fresh[300], other[300];
	struct timespec times[2] = {{0, 0}, {0, 0}};

	snprintf(old, sizeof(old), "%s/old.json", dir);
	snprintf(fresh, sizeof(fresh), "%s/fresh.json", dir);
	snprintf(other, sizeof(other), "%s/old.txt", dir);
	check_write_file(old, "{}");
	check_write_file(fresh, "{}");
	check_write_file(other, "x");
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
	prune();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_done("test_files");
}
