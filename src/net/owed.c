/*
 * owed.c — storing receipts owed, and recovering those never made: see
 * owed.h.
 */
#include "am_net.h"

#include <stdlib.h>
#include <string.h>

int
am_owed_store(am_envelope *envs, size_t n, am_queue *q, uint64_t now_ms, uint64_t *made, am_hub *hub)
{
	am_queue_result *res = NULL;
	int rc = 0;

	if (n == 0)
		goto out;
	if ((res = calloc(n, sizeof(*res))) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory for receipts");
		goto out;
	}
	rc = am_queue_put_own(q, envs, n, now_ms, res);
	for (size_t i = 0; i < n; i++) {
		*made += res[i].rc == 0;
		/* live links carry receipts at once */
		if (rc == 0 && res[i].rc == 0)
			am_hub_note(hub, envs[i].id, 1, 0, 0);
	}
out:
	for (size_t i = 0; i < n; i++)
		am_envelope_clear(&envs[i]);
	free(envs);
	free(res);
	return rc;
}

int
am_owed_send(am_owed_list *l, am_queue *q, const am_identity *me, uint64_t now_ms, uint64_t *made, am_hub *hub)
{
	am_envelope *envs = NULL;
	size_t n = 0;
	int rc;

	if ((rc = am_owed_make(l, me, now_ms, &envs, &n)) != 0)
		return rc;
	return am_owed_store(envs, n, q, now_ms, made, hub);
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
