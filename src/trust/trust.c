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
 * To accept a replaced or renamed device, `agent-mesh trust forget`
 * removes its pin; a running daemon sees the file change (its identity
 * on disk: inode, size, mtime) at its next check and reads it again.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"

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
	char dir[3800]; /* the node folder, for the messages */
	json_t *doc;   /* the whole file */
	json_t *peers; /* borrowed from doc */
	struct stat seen; /* the file as last read or written here */
	am_trust_claim_fn claim; /* a gateway pair's shared pins (NULL: none) */
	void *claim_ctx;
};

void
am_trust_share(am_trust *t, am_trust_claim_fn claim, void *ctx)
{
	pthread_mutex_lock(&t->mu);
	t->claim = claim;
	t->claim_ctx = ctx;
	pthread_mutex_unlock(&t->mu);
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int load(am_trust *t);

static int
save(am_trust *t)
{
	char *text = json_dumps(t->doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc;

	if (text == NULL)
		return am_error_set(AM_ENOMEM, "out of memory writing the trust store");
	rc = am_file_write_atomic(t->path, text, strlen(text), 0600, true);
	free(text);
	if (rc == 0)
		(void) stat(t->path, &t->seen);
	return rc;
}

/* Another writer (trust forget) changed the file: read it again. A file
 * that no longer parses keeps what we had (never pins from nothing). */
static void
reload_if_changed(am_trust *t)
{
	struct stat st;
	if (stat(t->path, &st) != 0 || same_file(&st, &t->seen))
		return;
	json_t *old = t->doc;
	t->doc = NULL;
	if (load(t) != 0) {
		json_decref(t->doc);
		t->doc = old;
		t->peers = json_object_get(old, "peers");
		t->seen = st; /* said once; not retried until it changes again */
		fprintf(stderr, "trust: %s changed but does not read (%s); keeping the pins held\n", t->path,
		    am_error_detail());
		return;
	}
	json_decref(old);
}

/* t->doc and t->peers from t->path, validated; AM_ENOTFOUND when absent */
static int
load(am_trust *t)
{
	json_error_t jerr;
	struct stat st;

	if (stat(t->path, &st) != 0)
		return AM_ENOTFOUND;
	t->doc = json_load_file(t->path, JSON_REJECT_DUPLICATES, &jerr);
	if (t->doc == NULL) /* there, but not JSON: never overwrite pins */
		return am_error_set(AM_EMALFORMED, "%s: line %d column %d: %s (fix or remove the file)", t->path, jerr.line,
		    jerr.column, jerr.text);
	t->peers = json_object_get(t->doc, "peers");
	if (!json_is_object(t->doc) || !json_is_object(t->peers))
		return am_error_set(AM_EFIELD, "%s: \"peers\" must be an object (fix or remove the file)", t->path);
	const char *name;
	json_t *v;
	json_object_foreach(t->peers, name, v) {
		const char *k = json_string_value(json_object_get(v, "key"));
		uint8_t pk[AM_PK_BYTES];
		if (k == NULL || am_node_id_parse(pk, k) != 0)
			return am_error_set(AM_EFIELD, "%s: peer \"%s\" has no valid \"key\" (64 hex)", t->path, name);
	}
	t->seen = st;
	return 0;
}

int
am_trust_open(am_trust **out, const char *dir)
{
	am_trust *t = calloc(1, sizeof(*t));
	char folder[3800];
	int rc = 0;

	*out = NULL;
	if (t == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&t->mu, NULL);
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	snprintf(folder, sizeof(folder), "%s/trust", dir);
	snprintf(t->path, sizeof(t->path), "%s/trust_store.json", folder);
	if (mkdir(folder, 0700) != 0 && errno != EEXIST) {
		rc = am_error_set(AM_EIO, "%s: %s", folder, strerror(errno));
		goto out;
	}
	if ((rc = load(t)) == AM_ENOTFOUND) {
		t->doc = json_pack("{s:i, s:s, s:{}}", "version", 1, "mode", "tofu", "peers");
		t->peers = json_object_get(t->doc, "peers");
		rc = t->doc == NULL ? am_error_set(AM_ENOMEM, "out of memory") : save(t);
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
	reload_if_changed(t);
	if ((v = json_object_get(t->peers, name)) != NULL) {
		pinned = json_string_value(json_object_get(v, "key"));
		if (pinned == NULL || strcmp(pinned, hex) != 0)
			rc = am_error_set(AM_EKEYCHANGED,
			    "trust: \"%s\" presented key %.16s… but %.16s… is pinned for it (key changed; a replaced device "
			    "is accepted with: agent-mesh trust forget --data %s %s)",
			    name, hex, pinned ? pinned : "?", t->dir, name);
		goto out;
	}
	json_object_foreach(t->peers, other, v) {
		pinned = json_string_value(json_object_get(v, "key"));
		if (pinned != NULL && strcmp(pinned, hex) == 0) {
			rc = am_error_set(AM_EKEYCHANGED, "trust: key %.16s… is pinned as \"%s\" and now claims \"%s\"", hex,
			    other, name);
			goto out;
		}
	}
	/* a pair: the other gateway's pin for this name (or key) counts too,
	 * so a key change refused on one is refused on both */
	if (t->claim != NULL) {
		char why[300] = "";
		if (t->claim(t->claim_ctx, name, hex, why, sizeof(why)) == AM_EKEYCHANGED) {
			rc = am_error_set(AM_EKEYCHANGED, "trust: %s (the gateway pair's pin, in the shared state)", why);
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

json_t *
am_trust_list(am_trust *t)
{
	json_t *copy;
	pthread_mutex_lock(&t->mu);
	reload_if_changed(t);
	copy = json_deep_copy(t->peers);
	pthread_mutex_unlock(&t->mu);
	return copy;
}

int
am_trust_forget(am_trust *t, const char *name_or_key, char *forgotten, size_t cap)
{
	const char *name, *found = NULL;
	json_t *v;
	int rc;

	pthread_mutex_lock(&t->mu);
	reload_if_changed(t);
	if (json_object_get(t->peers, name_or_key) != NULL)
		found = name_or_key;
	else
		json_object_foreach(t->peers, name, v) {
			const char *k = json_string_value(json_object_get(v, "key"));
			if (k != NULL && strcmp(k, name_or_key) == 0) {
				found = name;
				break;
			}
		}
	if (found == NULL) {
		pthread_mutex_unlock(&t->mu);
		return am_error_set(AM_ENOTFOUND, "nothing pinned as \"%s\" in %s (agent-mesh trust list)", name_or_key,
		    t->path);
	}
	snprintf(forgotten, cap, "%s", found);
	json_t *keep = json_incref(json_object_get(t->peers, found));
	json_object_del(t->peers, forgotten);
	if ((rc = save(t)) != 0)
		json_object_set(t->peers, forgotten, keep); /* still pinned unless it is off disk */
	json_decref(keep);
	pthread_mutex_unlock(&t->mu);
	return rc;
}
