/*
 * test_schedule.c — the push order: priority 3 first, then oldest, then
 * id; an id that is not among the items is refused.
 */
#include "am_sync.h"
#include "../../check.h"

#include <string.h>

int
main(void)
{
	enum { N = 8 };
	am_recon_item items[N];
	uint8_t prio[N] = {0, 3, 1, 3, 2, 1, 0, 2}, ids[N * AM_ID_BYTES];
	/* the push order expected for all of them, as item indexes */
	static const int want[N] = {1, 3, 4, 7, 2, 5, 0, 6};

	for (int i = 0; i < N; i++) { /* sorted by (created, id), as collected */
		items[i].created_ms = 1000 + (uint64_t) i * 10;
		memset(items[i].id, 0, AM_ID_BYTES);
		items[i].id[0] = (uint8_t) (200 - i); /* id order is not time order */
		memcpy(ids + (N - 1 - i) * AM_ID_BYTES, items[i].id, AM_ID_BYTES);
	}
	CHECK_RC(am_push_order(ids, N, items, prio, N), 0);
	for (int i = 0; i < N; i++)
		CHECK(memcmp(ids + i * AM_ID_BYTES, items[want[i]].id, AM_ID_BYTES) == 0);
	/* a subset keeps the same rule */
	memcpy(ids, items[6].id, AM_ID_BYTES);
	memcpy(ids + AM_ID_BYTES, items[0].id, AM_ID_BYTES);
	memcpy(ids + 2 * AM_ID_BYTES, items[3].id, AM_ID_BYTES);
	CHECK_RC(am_push_order(ids, 3, items, prio, N), 0);
	CHECK(memcmp(ids, items[3].id, AM_ID_BYTES) == 0 && memcmp(ids + AM_ID_BYTES, items[0].id, AM_ID_BYTES) == 0 &&
	      memcmp(ids + 2 * AM_ID_BYTES, items[6].id, AM_ID_BYTES) == 0);
	/* an unknown id */
	memset(ids, 0xee, AM_ID_BYTES);
	CHECK_RC(am_push_order(ids, 3, items, prio, N), AM_EINVAL);
	return check_done("test_schedule");
}
