/*
 * store.c — opening and closing a store, error mapping, byte layouts, and
 * the node's own settings (key, position, zone tags, groups).
 */
#define _POSIX_C_SOURCE 200809L
#include "queue_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAP_SIZE (1ull << 30)

int
am_q_err(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_MAP_FULL:
		return am_error_set(AM_EFULL, "store full while %s (raise the map size or run gc)", what);
	case MDB_NOTFOUND:
		return am_error_set(AM_ENOTFOUND, "%s: not found", what);
	case MDB_KEYEXIST:
		return am_error_set(AM_EDUP, "%s: already present", what);
	case MDB_READERS_FULL:
		return am_error_set(AM_ELOCKED, "store has too many readers while %s", what);
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		return am_error_set(AM_EVERSION, "store file is not an LMDB store of a compatible version (%s)", what);
	case MDB_CORRUPTED:
	case MDB_PANIC:
		return am_error_set(AM_ESTORE, "store is corrupted (%s): %s", what, mdb_strerror(rc));
	case ENOMEM:
		return am_error_set(AM_ENOMEM, "out of memory while %s", what);
	case ENOSPC:
		return am_error_set(AM_EFULL, "disk full while %s", what);
	default:
		if (rc > 0)
			return am_error_set(AM_EIO, "%s: %s", what, strerror(rc));
		return am_error_set(AM_ESTORE, "%s: %s", what, mdb_strerror(rc));
	}
}

void
am_q_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

uint64_t
am_q_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void
am_q_meta_encode(uint8_t out[META_BYTES], const am_queue_meta *m)
{
	am_q_put_be64(out, m->created_ms);
	am_q_put_be64(out + 8, m->expires_ms);
	am_q_put_be64(out + 16, m->received_ms);
	out[24] = (uint8_t) (m->size >> 24);
	out[25] = (uint8_t) (m->size >> 16);
	out[26] = (uint8_t) (m->size >> 8);
	out[27] = (uint8_t) m->size;
	out[28] = m->priority;
	out[29] = m->hops_left;
	out[30] = m->dest_kind;
	out[31] = m->flags;
	am_q_put_be64(out + 32, m->inbox_seq);
}

void
am_q_meta_decode(am_queue_meta *m, const uint8_t in[META_BYTES])
{
	m->created_ms = am_q_get_be64(in);
	m->expires_ms = am_q_get_be64(in + 8);
	m->received_ms = am_q_get_be64(in + 16);
	m->size = (uint32_t) in[24] << 24 | (uint32_t) in[25] << 16 | (uint32_t) in[26] << 8 | in[27];
	m->priority = in[28];
	m->hops_left = in[29];
	m->dest_kind = in[30];
	m->flags = in[31];
	m->inbox_seq = am_q_get_be64(in + 32);
}

void
am_q_outbox_key(uint8_t k[OUTBOX_KEY], const am_queue_meta *m, const uint8_t id[AM_ID_BYTES])
{
	k[0] = (uint8_t) (AM_PRIO_URGENT - m->priority);
	am_q_put_be64(k + 1, m->created_ms);
	memcpy(k + 9, id, AM_ID_BYTES);
}

void
am_q_time_key(uint8_t k[TIME_KEY], uint64_t t, const uint8_t id[AM_ID_BYTES])
{
	am_q_put_be64(k, t);
	memcpy(k + 8, id, AM_ID_BYTES);
}

static uint64_t
map_size_from_env(void)
{
	const char *s = getenv("AM_STORE_MAP_SIZE");
	char *end = NULL;
	unsigned long long v;

	if (s == NULL || *s == '\0')
		return DEFAULT_MAP_SIZE;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	else if (*end == 'G' || *end == 'g')
		v <<= 30;
	return v >= (64u << 10) ? v : DEFAULT_MAP_SIZE;
}

int
am_queue_open(am_queue **out, const char *dir, const am_queue_options *opt)
{
	static const struct {
		const char *name;
		size_t off;
	} dbs[] = {
	    {"envs", offsetof(am_queue, envs)}, {"meta", offsetof(am_queue, meta)},
	    {"outbox", offsetof(am_queue, outbox)}, {"bytime", offsetof(am_queue, bytime)},
	    {"expiry", offsetof(am_queue, expiry)}, {"inbox", offsetof(am_queue, inbox)},
	    {"tombs", offsetof(am_queue, tombs)}, {"rcpts", offsetof(am_queue, rcpts)},
	    {"tombexp", offsetof(am_queue, tombexp)}, {"peers", offsetof(am_queue, peers)},
	    {"config", offsetof(am_queue, config)}, {"fwd", offsetof(am_queue, fwd)},
	    {"revoked", offsetof(am_queue, revoked)},
	};
	am_queue_options defaults = {0};
	am_queue *q = NULL;
	MDB_txn *txn = NULL;
	struct stat st;
	/* NORDAHEAD (MADV_RANDOM): a fault maps one page, not the 16 around it,
	 * so random id look-ups do not drag neighbours into our RSS */
	unsigned env_flags = MDB_NOTLS | MDB_NORDAHEAD;
	uint8_t ver = 0;
	size_t vlen = 0;
	int rc = 0, mrc;

	*out = NULL;
	if (opt == NULL)
		opt = &defaults;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (!opt->create)
			return am_error_set(AM_ENOSTORE, "no store at %s (create one with: agent-mesh init --store DIR)", dir);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return am_error_set(AM_EIO, "%s: cannot create: %s", dir, strerror(errno));
	} else if (!opt->create) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		if (stat(path, &st) != 0)
			return am_error_set(AM_ENOSTORE, "no store at %s (no data.mdb; create one with agent-mesh init)", dir);
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL || (q->dir = strdup(dir)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory opening %s", dir);
		goto out;
	}
	if ((mrc = mdb_env_create(&q->env)) != 0) {
		rc = am_q_err(mrc, "creating the LMDB environment");
		goto out;
	}
	mdb_env_set_maxdbs(q->env, 16);
	mdb_env_set_maxreaders(q->env, 126);
	mdb_env_set_mapsize(q->env, opt->map_size ? opt->map_size : map_size_from_env());
	if (opt->read_only)
		env_flags |= MDB_RDONLY;
	if ((mrc = mdb_env_open(q->env, dir, env_flags, 0600)) != 0) {
		rc = am_q_err(mrc, "opening the store");
		char why[200];
		snprintf(why, sizeof(why), "%s", am_error_detail());
		am_error_set(rc, "%s: %s", dir, why);
		goto out;
	}
	if ((mrc = mdb_txn_begin(q->env, NULL, opt->read_only ? MDB_RDONLY : 0, &txn)) != 0) {
		rc = am_q_err(mrc, "starting the first transaction");
		goto out;
	}
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *) ((char *) q + dbs[i].off);
		if ((mrc = mdb_dbi_open(txn, dbs[i].name, opt->read_only ? 0 : MDB_CREATE, dbi)) != 0) {
			rc = mrc == MDB_NOTFOUND ? am_error_set(AM_ENOSTORE, "%s is not an agent-mesh store (no \"%s\" table)", dir, dbs[i].name)
			                         : am_q_err(mrc, "opening a table");
			goto out;
		}
	}
	rc = am_q_config_get(q, txn, "version", &ver, 1, &vlen);
	if (rc == AM_ENOTFOUND && !opt->read_only) {
		MDB_val k = {7, "version"}, v = {1, &(uint8_t) {AM_QUEUE_VERSION}};
		if ((mrc = mdb_put(txn, q->config, &k, &v, 0)) != 0) {
			rc = am_q_err(mrc, "writing the store version");
			goto out;
		}
		rc = 0;
	} else if (rc == 0 && (vlen != 1 || ver != AM_QUEUE_VERSION)) {
		rc = am_error_set(AM_EVERSION, "%s: store version %u, this build reads version %d", dir, ver, AM_QUEUE_VERSION);
		goto out;
	} else if (rc != 0 && rc != AM_ENOTFOUND) {
		goto out;
	}
	rc = 0;
	if ((mrc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		rc = am_q_err(mrc, "committing the store set-up");
		goto out;
	}
	txn = NULL;
	am_q_find_map(q);
	*out = q;
	q = NULL;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	am_queue_close(q);
	return rc;
}

void
am_queue_close(am_queue *q)
{
	if (q == NULL)
		return;
	if (q->env != NULL)
		mdb_env_close(q->env);
	free(q->dir);
	free(q);
}

int
am_q_config_get(am_queue *q, MDB_txn *txn, const char *name, void *out, size_t cap, size_t *len)
{
	MDB_val k = {strlen(name), (void *) name}, v;
	MDB_txn *own = NULL;
	int mrc, rc = 0;

	if (txn == NULL) {
		if ((mrc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &own)) != 0)
			return am_q_err(mrc, "reading settings");
		txn = own;
	}
	mrc = mdb_get(txn, q->config, &k, &v);
	if (mrc == MDB_NOTFOUND)
		rc = am_error_set(AM_ENOTFOUND, "setting \"%s\" not set", name);
	else if (mrc != 0)
		rc = am_q_err(mrc, "reading settings");
	else if (v.mv_size > cap)
		rc = am_error_set(AM_ESTORE, "setting \"%s\" is %zu bytes, expected at most %zu", name, v.mv_size, cap);
	else {
		memcpy(out, v.mv_data, v.mv_size);
		*len = v.mv_size;
	}
	if (own != NULL)
		mdb_txn_abort(own);
	return rc;
}

int
am_q_config_put(am_queue *q, const char *name, const void *val, size_t len)
{
	MDB_val k = {strlen(name), (void *) name}, v = {len, (void *) val};
	MDB_txn *txn = NULL;
	int mrc;

	if ((mrc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return am_q_err(mrc, "writing settings");
	if ((mrc = mdb_put(txn, q->config, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return am_q_err(mrc, "writing settings");
	}
	return am_q_err(mdb_txn_commit(txn), "committing settings");
}

int
am_queue_set_self(am_queue *q, const uint8_t pk[static AM_PK_BYTES])
{
	return am_q_config_put(q, "self", pk, AM_PK_BYTES);
}

int
am_queue_get_self(am_queue *q, uint8_t pk[static AM_PK_BYTES])
{
	size_t len = 0;
	int rc = am_q_config_get(q, NULL, "self", pk, AM_PK_BYTES, &len);

	if (rc == 0 && len != AM_PK_BYTES)
		return am_error_set(AM_ESTORE, "stored node key has %zu bytes", len);
	if (rc == AM_ENOTFOUND)
		return am_error_set(AM_ENOTFOUND, "store has no owner key (made without agent-mesh init?)");
	return rc;
}

/* position record: has_fix(1) lat(8, IEEE754 BE) lon(8) ntags(1) tags NUL-separated */
int
am_queue_set_position(am_queue *q, const am_position *pos)
{
	uint8_t buf[18 + AM_GEO_MAX_TAGS * (AM_TAG_MAX + 1)];
	size_t n = 18;
	uint64_t bits;

	if (pos->has_fix) {
		am_geo probe = {.kind = AM_GEO_CIRCLE, .lat = pos->lat, .lon = pos->lon, .radius_m = 1};
		int rc = am_geo_check(&probe);
		if (rc != 0)
			return rc;
	}
	if (pos->ntags > AM_GEO_MAX_TAGS)
		return am_error_set(AM_ELIMIT, "%u zone tags, limit %d", pos->ntags, AM_GEO_MAX_TAGS);
	buf[0] = pos->has_fix;
	memcpy(&bits, &pos->lat, 8);
	am_q_put_be64(buf + 1, bits);
	memcpy(&bits, &pos->lon, 8);
	am_q_put_be64(buf + 9, bits);
	buf[17] = pos->ntags;
	for (unsigned i = 0; i < pos->ntags; i++) {
		size_t l = strnlen(pos->tags[i], AM_TAG_MAX + 1);
		int rc = am_tag_check("zone tag", pos->tags[i], l);
		if (rc != 0)
			return rc;
		memcpy(buf + n, pos->tags[i], l + 1);
		n += l + 1;
	}
	return am_q_config_put(q, "position", buf, n);
}

int
am_queue_get_position(am_queue *q, am_position *pos)
{
	uint8_t buf[18 + AM_GEO_MAX_TAGS * (AM_TAG_MAX + 1)];
	size_t len = 0, off = 18;
	uint64_t bits;
	int rc;

	memset(pos, 0, sizeof(*pos));
	rc = am_q_config_get(q, NULL, "position", buf, sizeof(buf), &len);
	if (rc == AM_ENOTFOUND)
		return 0; /* no fix, no tags */
	if (rc != 0)
		return rc;
	if (len < 18)
		return am_error_set(AM_ESTORE, "stored position record is %zu bytes", len);
	pos->has_fix = buf[0] != 0;
	bits = am_q_get_be64(buf + 1);
	memcpy(&pos->lat, &bits, 8);
	bits = am_q_get_be64(buf + 9);
	memcpy(&pos->lon, &bits, 8);
	for (unsigned i = 0; i < buf[17] && i < AM_GEO_MAX_TAGS && off < len; i++) {
		size_t l = strnlen((char *) buf + off, len - off);
		if (l > AM_TAG_MAX || off + l >= len)
			break;
		memcpy(pos->tags[i], buf + off, l + 1);
		off += l + 1;
		pos->ntags++;
	}
	return 0;
}

int
am_queue_set_groups(am_queue *q, char groups[][AM_TAG_MAX + 1], size_t n)
{
	uint8_t buf[AM_QUEUE_MAX_GROUPS * (AM_TAG_MAX + 1)];
	size_t off = 0;

	if (n > AM_QUEUE_MAX_GROUPS)
		return am_error_set(AM_ELIMIT, "%zu groups, limit %d", n, AM_QUEUE_MAX_GROUPS);
	for (size_t i = 0; i < n; i++) {
		size_t l = strnlen(groups[i], AM_TAG_MAX + 1);
		int rc = am_tag_check("group", groups[i], l);
		if (rc != 0)
			return rc;
		memcpy(buf + off, groups[i], l + 1);
		off += l + 1;
	}
	return am_q_config_put(q, "groups", buf, off);
}

int
am_queue_get_groups(am_queue *q, char groups[][AM_TAG_MAX + 1], size_t *n)
{
	uint8_t buf[AM_QUEUE_MAX_GROUPS * (AM_TAG_MAX + 1)];
	size_t len = 0, off = 0;
	int rc = am_q_config_get(q, NULL, "groups", buf, sizeof(buf), &len);

	*n = 0;
	if (rc == AM_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	while (off < len && *n < AM_QUEUE_MAX_GROUPS) {
		size_t l = strnlen((char *) buf + off, len - off);
		if (l > AM_TAG_MAX || off + l >= len)
			break;
		memcpy(groups[*n], buf + off, l + 1);
		(*n)++;
		off += l + 1;
	}
	return 0;
}
