/*
 * schedule.c — the push scheduler: the order in which a session pushes
 * what the peer lacks. Most urgent first (priority 3 .. 0), then oldest
 * first, so on a link that may drop any moment the alarm goes before the
 * bulk log and old messages do not starve behind a flood of new ones.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>

struct ranked {
	uint8_t prio;
	uint64_t created_ms;
	const uint8_t *id;
};

static int
by_id(const void *a, const void *b)
{
	return memcmp(a, b, AM_ID_BYTES);
}

static int
by_rank(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;

	if (a->prio != b->prio)
		return a->prio > b->prio ? -1 : 1;
	if (a->created_ms != b->created_ms)
		return a->created_ms < b->created_ms ? -1 : 1;
	return memcmp(a->id, b->id, AM_ID_BYTES);
}

int
am_push_order(uint8_t *ids, size_t k, const am_recon_item *items, const uint8_t *prio, size_t n)
{
	uint8_t *sorted = NULL;
	struct ranked *r = NULL;
	size_t m = 0;
	int rc = 0;

	if (k < 2)
		return 0;
	if ((sorted = malloc(k * AM_ID_BYTES)) == NULL || (r = malloc(k * sizeof(*r))) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory ordering the push");
		goto out;
	}
	memcpy(sorted, ids, k * AM_ID_BYTES);
	qsort(sorted, k, AM_ID_BYTES, by_id);
	/* one pass over what we hold, probing the (small) lacked set */
	for (size_t i = 0; i < n && m < k; i++) {
		const uint8_t *hit = bsearch(items[i].id, sorted, k, AM_ID_BYTES, by_id);
		if (hit != NULL) {
			r[m].prio = prio[i];
			r[m].created_ms = items[i].created_ms;
			r[m].id = hit;
			m++;
		}
	}
	if (m != k) {
		rc = am_error_set(AM_EINVAL, "push order: %zu of %zu ids are not among the items", k - m, k);
		goto out;
	}
	qsort(r, m, sizeof(*r), by_rank);
	for (size_t i = 0; i < m; i++)
		memcpy(ids + i * AM_ID_BYTES, r[i].id, AM_ID_BYTES);
out:
	free(sorted);
	free(r);
	return rc;
}
