/*
 * trust.c — the TOFU trust store, DATA/trust/trust_store.json: the first
 * key a peer proves for a name is pinned; afterwards that name with any
 * other key is refused, and a pinned key claiming a second name is refused
 * too (names are what operators read in mesh_scan and logs, so one must
 * not be able to pose as another). The file is rewritten (temp + fsync +
 * rename) only when a new pin is made.
 *
 *   {"version": 1, "mode": "tofu",
 *    "peers": {"crane-3": {"key": "<64 hex>", "first_seen_ms": N,
 *                          "first_address": "tcp://..."}}}
 *
 * To accept a replaced device, stop the daemon, delete its entry, start
 * again (docs/OPERATIONS.md).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct am_trust {
	pthread_mutex_t mu;
	char path[4096];
	json_t *doc;   /* the whole file */
	json_t *peers; /* borrowed from doc */
};

static int
save(am_trust *t)
{
	char *text = json_dumps(t->doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc;

	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory writing the trust store");
	rc = am_file_write_atomic(t->path, text, strlen(text), 0600, true);
	free(text);
	return rc;
}

int
am_trust_open(am_trust **out, const char *dir)
{
	am_trust *t = calloc(1, sizeof(*t));
	char folder[3800];
	json_error_t jerr;
	int rc = 0;

	*out = NULL;
	if (t == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&t->mu, NULL);
	snprintf(folder, sizeof(folder), "%s/trust", dir);
	snprintf(t->path, sizeof(t->path), "%s/trust_store.json", folder);
	if (mkdir(folder, 0700) != 0 && errno != EEXIST) {
		rc = am_error_set(AM_EIO, "%s: %s", folder, strerror(errno));
		goto out;
	}
	t->doc = json_load_file(t->path, JSON_REJECT_DUPLICATES, &jerr);
	if (t->doc == NULL) {
		FILE *f = fopen(t->path, "r");
		if (f != NULL) { /* there, but not JSON: never overwrite pins */
			fclose(f);
			rc = am_error_set(AM_EMALFORMED, "%s: line %d column %d: %s (fix or remove the file)", t->path,
			    jerr.line, jerr.column, jerr.text);
			goto out;
		}
		t->doc = json_pack("{s:i, s:s, s:{}}", "version", 1, "mode", "tofu", "peers");
		if (t->doc == NULL || (rc = save(t)) != 0) {
			rc = rc ? rc : am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
	}
	t->peers = json_object_get(t->doc, "peers");
	if (!json_is_object(t->doc) || !json_is_object(t->peers)) {
		rc = am_error_set(AM_EFIELD, "%s: \"peers\" must be an object (fix or remove the file)", t->path);
		goto out;
	}
	{
		const char *name;
		json_t *v;
		json_object_foreach(t->peers, name, v) {
			const char *k = json_string_value(json_object_get(v, "key"));
			uint8_t pk[AM_PK_BYTES];
			if (k == NULL || am_node_id_parse(pk, k) != 0) {
				rc = am_error_set(AM_EFIELD, "%s: peer \"%s\" has no valid \"key\" (64 hex)", t->path, name);
				goto out;
			}
		}
	}
out:
	if (rc != 0) {
		am_trust_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

void
am_trust_close(am_trust *t)
{
	if (t == NULL)
		return;
	json_decref(t->doc);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

const char *
am_trust_path(const am_trust *t)
{
	return t->path;
}

int
am_trust_check(am_trust *t, const char *name, const uint8_t pk[static AM_PK_BYTES], const char *address,
    uint64_t now_ms, bool *pinned_now)
{
	char hex[AM_NODE_ID_LEN + 1];
	const char *other, *pinned;
	json_t *v;
	int rc = 0;

	*pinned_now = false;
	am_node_id_format(hex, pk);
	pthread_mutex_lock(&t->mu);
	if ((v = json_object_get(t->peers, name)) != NULL) {
		pinned = json_string_value(json_object_get(v, "key"));
		if (pinned == NULL || strcmp(pinned, hex) != 0)
			rc = am_error_set(AM_EUNTRUSTED,
			    "trust: \"%s\" presented key %.16s… but %.16s… is pinned for it (key changed; see %s)", name, hex,
			    pinned ? pinned : "?", t->path);
		goto out;
	}
	json_object_foreach(t->peers, other, v) {
		pinned = json_string_value(json_object_get(v, "key"));
		if (pinned != NULL && strcmp(pinned, hex) == 0) {
			rc = am_error_set(AM_EUNTRUSTED, "trust: key %.16s… is pinned as \"%s\" and now claims \"%s\"", hex,
			    other, name);
			goto out;
		}
	}
	v = json_pack("{s:s, s:I, s:s}", "key", hex, "first_seen_ms", (json_int_t) now_ms, "first_address",
	    address ? address : "");
	if (v == NULL || json_object_set_new(t->peers, name, v) != 0) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = save(t)) != 0) {
		json_object_del(t->peers, name); /* not pinned unless it is on disk */
		goto out;
	}
	*pinned_now = true;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}
