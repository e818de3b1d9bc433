/*
 * owed_list.c — receipts owed (a session's or a bundle import's): noted
 * from the store's put results, made one signed receipt per sender.
 */
#include "am_sync.h"

#include <stdlib.h>
#include <string.h>


int
am_owed_note(am_owed_list *l, const am_queue_result *res)
{
	if (!res->receipt_due)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct am_owed *nv = realloc(l->v, cap * sizeof(*nv));
		if (nv == NULL)
			return am_error_set(AM_ENOMEM, "out of memory for receipts");
		l->v = nv;
		l->cap = cap;
	}
	memcpy(l->v[l->n].src, res->src, AM_PK_BYTES);
	memcpy(l->v[l->n].id, res->id, AM_ID_BYTES);
	l->v[l->n].expires_ms = res->expires_ms;
	l->n++;
	return 0;
}

static int
by_src(const void *a, const void *b)
{
	return memcmp(((const struct am_owed *) a)->src, ((const struct am_owed *) b)->src, AM_PK_BYTES);
}

int
am_owed_make(am_owed_list *l, const am_identity *me, uint64_t now_ms, am_envelope **envs, size_t *n)
{
	am_envelope *e = NULL;
	uint8_t *ids = NULL;
	size_t k = l->n, count = 0;
	int rc = 0;

	*envs = NULL;
	*n = 0;
	if (k == 0 || me == NULL)
		return 0;
	e = calloc(k, sizeof(*e));
	ids = malloc(k * AM_ID_BYTES);
	if (e == NULL || ids == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory for receipts");
		goto out;
	}
	qsort(l->v, k, sizeof(*l->v), by_src);
	for (size_t i = 0; i < k;) {
		size_t j = i, m = 0;
		uint64_t expires = 0;
		while (j < k && m < AM_RECEIPT_MAX_IDS && memcmp(l->v[j].src, l->v[i].src, AM_PK_BYTES) == 0) {
			memcpy(ids + m * AM_ID_BYTES, l->v[j].id, AM_ID_BYTES);
			if (l->v[j].expires_ms > expires)
				expires = l->v[j].expires_ms;
			m++;
			j++;
		}
		if ((rc = am_sync_receipts_create(&e[count], l->v[i].src, ids, m, expires, me, now_ms)) != 0)
			goto out;
		count++;
		i = j;
	}
	l->n = 0;
	*envs = e;
	*n = count;
	e = NULL;
out:
	for (size_t i = 0; e != NULL && i < count; i++)
		am_envelope_clear(&e[i]);
	free(e);
	free(ids);
	return rc;
}

void
am_owed_free(am_owed_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}
