/*
 * test_error.c — every AM_E* code has its own phrase, and AM_ERROR_MIN is
 * the last code (on 955567a it said -28 while AM_ETIMEDOUT was -29).
 */
#include "am_core.h"
#include "../../check.h"

#include <string.h>

int
main(void)
{
	CHECK(strcmp(am_strerror(0), "success") == 0);
	for (int a = AM_ERROR_MIN; a < 0; a++) {
		CHECK(strcmp(am_strerror(a), "unknown error") != 0);
		for (int b = a + 1; b < 0; b++)
			CHECK(strcmp(am_strerror(a), am_strerror(b)) != 0);
	}
	CHECK(strcmp(am_strerror(AM_ERROR_MIN - 1), "unknown error") == 0);
	CHECK(AM_ERROR_MIN == AM_EREADONLY);
	return check_done("test_error");
}
