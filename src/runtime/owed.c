/*
 * owed.c — receipts owed: see owed.h.
 */
#include "owed.h"

#include <stdlib.h>
#include <string.h>

int
am_owed_note(struct am_owed_list *l, const am_queue_result *res)
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
am_owed_send(struct am_owed_list *l, am_queue *q, const am_identity *me, uint64_t now_ms, uint64_t *made, am_hub *hub)
{
	am_envelope *envs = NULL;
	am_queue_result *res = NULL;
	uint8_t *ids = NULL;
	size_t k = l->n, count = 0;
	int rc = 0;

	if (k == 0 || me == NULL)
		return 0;
	envs = calloc(k, sizeof(*envs));
	res = calloc(k, sizeof(*res));
	ids = malloc(k * AM_ID_BYTES);
	if (envs == NULL || res == NULL || ids == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory for receipts");
		goto out;
	}
	qsort(l->v, k, sizeof(*l->v), by_src);
	for (size_t i = 0; i < k;) {
		size_t j = i, n = 0;
		uint64_t expires = 0;
		while (j < k && n < AM_RECEIPT_MAX_IDS && memcmp(l->v[j].src, l->v[i].src, AM_PK_BYTES) == 0) {
			memcpy(ids + n * AM_ID_BYTES, l->v[j].id, AM_ID_BYTES);
			if (l->v[j].expires_ms > expires)
				expires = l->v[j].expires_ms;
			n++;
			j++;
		}
		if ((rc = am_sync_receipts_create(&envs[count], l->v[i].src, ids, n, expires, me, now_ms)) != 0)
			goto out;
		count++;
		i = j;
	}
	rc = am_queue_put_own(q, envs, count, now_ms, res);
	for (size_t i = 0; i < count; i++) {
		*made += res[i].rc == 0;
		/* live links carry receipts at once */
		if (rc == 0 && res[i].rc == 0)
			am_hub_note(hub, envs[i].id, 1, 0, 0);
	}
	l->n = 0;
out:
	for (size_t i = 0; envs != NULL && i < count; i++)
		am_envelope_clear(&envs[i]);
	free(envs);
	free(res);
	free(ids);
	return rc;
}

void
am_owed_free(struct am_owed_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int
am_owed_recover(am_queue *q, const am_identity *me, uint64_t now_ms, am_hub *hub, uint64_t *made)
{
	struct am_owed_list l = {0};
	am_queue_inbox_entry ents[256];
	uint64_t after = 0;
	size_t n = 0;
	int rc = 0;

	*made = 0;
	do {
		if ((rc = am_queue_inbox_list(q, after, ents, 256, &n)) != 0)
			break;
		for (size_t i = 0; i < n && rc == 0; i++) {
			uint8_t *raw = NULL;
			size_t len = 0;
			am_envelope env;
			after = ents[i].seq;
			if (am_queue_delivered(q, ents[i].id, am_identity_pk(me)) == 0)
				continue; /* our receipt is stored */
			if (am_queue_get(q, ents[i].id, &raw, &len, NULL) != 0)
				continue;
			/* in the inbox: to us, or to a group we are in */
			if (am_envelope_decode_view(&env, raw, len, ents[i].id) == 0 &&
			    ((env.body.dest_kind == AM_DEST_NODE &&
			         memcmp(env.body.dest_node, am_identity_pk(me), AM_PK_BYTES) == 0) ||
			        env.body.dest_kind == AM_DEST_GROUP) &&
			    memcmp(env.body.src, am_identity_pk(me), AM_PK_BYTES) != 0 && strcmp(env.body.type, "receipt") != 0) {
				am_queue_result r = {0};
				r.receipt_due = true;
				memcpy(r.id, ents[i].id, AM_ID_BYTES);
				memcpy(r.src, env.body.src, AM_PK_BYTES);
				r.expires_ms = env.body.expires_ms;
				rc = am_owed_note(&l, &r);
			}
			free(raw);
		}
	} while (rc == 0 && n == 256);
	if (rc == 0)
		rc = am_owed_send(&l, q, me, now_ms, made, hub);
	am_owed_free(&l);
	return rc;
}
