/*
 * test_envfile.c — the .env reader (src/api/envfile.c): precedence, dotenv
 * quoting and comments, errors naming file and line.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_api.h"
#include "../../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/am-test-envfile-XXXXXX";

static void
env_file(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/.env", dir);
	check_write_file(path, "# site config\n\nGATEWAY_PORT=8788\nexport AM_T_QUOTED=\"a b\"\nAM_T_SINGLE='c'\n"
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
	check_write_file(path, "TRUST_MODE=pki  # or 'tofu'\nAM_T_HASH=a#b\nAM_T_DQ=\"x # y\"  # comment\n"
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
	check_write_file(path, "Q=\"closed\" trailing\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "after the closing quote") != NULL);
	check_write_file(path, "A=1\nthis line is wrong\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), ":2: ") != NULL); /* file:line, as compilers say it */
	check_write_file(path, "1BAD=x\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	check_write_file(path, "Q=\"open\n");
	CHECK_RC(am_env_file_load(path, true), AM_EFIELD);
	CHECK(strstr(am_error_detail(), "quote") != NULL);
	snprintf(path, sizeof(path), "%s/missing.env", dir);
	CHECK_RC(am_env_file_load(path, false), 0);
	CHECK(am_env_file_load(path, true) == AM_EIO);
}

int
main(void)
{
	REQUIRE(am_core_init() == 0 && mkdtemp(dir) != NULL);
	env_file();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_done("test_envfile");
}
