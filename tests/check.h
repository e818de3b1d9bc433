/*
 * check.h — the tests' tiny assertion kit: CHECK keeps going and counts,
 * REQUIRE stops the test; check_done() turns the count into an exit code
 * meson understands.
 */
#ifndef AM_TEST_CHECK_H
#define AM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		check_count++;                                                         \
		if (!(cond)) {                                                         \
			check_failures++;                                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                      \
	} while (0)

#define CHECK_RC(expr, want)                                                           \
	do {                                                                           \
		int check_rc_ = (expr);                                                \
		check_count++;                                                         \
		if (check_rc_ != (want)) {                                             \
			check_failures++;                                              \
			fprintf(stderr, "%s:%d: %s returned %d (%s: %s), wanted %d (%s)\n", \
			    __FILE__, __LINE__, #expr, check_rc_, am_strerror(check_rc_), \
			    am_error_detail(), (want), am_strerror(want));             \
		}                                                                      \
	} while (0)

#define REQUIRE(cond)                                                                  \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

/* write text to path (a test's input file); stops the test if it cannot */
static inline void
check_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static inline int
check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
