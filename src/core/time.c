/*
 * time.c — the wall clock in milliseconds and the duration syntax users
 * type (--ttl 2h). Core code never reads the clock itself; callers pass
 * `now` down so the sync engine and tests stay deterministic.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t
am_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

int
am_duration_parse(uint64_t *out_ms, const char *text)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000}, {"", 1000}};
	char *end = NULL;
	unsigned long long v;

	if (text == NULL || *text < '0' || *text > '9')
		return am_error_set(AM_EFIELD, "duration \"%s\" must look like 90s, 15m, 2h, 7d", text ? text : "");
	v = strtoull(text, &end, 10);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v == 0 || v > UINT64_MAX / units[i].ms / 2)
				return am_error_set(AM_EFIELD, "duration \"%s\" out of range", text);
			*out_ms = v * units[i].ms;
			return 0;
		}
	}
	return am_error_set(AM_EFIELD, "duration \"%s\": unknown unit (use ms, s, m, h, d, w)", text);
}
