/*
 * audit.c — the hash-chained, signed audit log (AUDIT_LOG_PATH, default
 * DATA/audit/audit.log): one JSON object per line,
 *
 *   {"seq":N,"ts":"2026-11-28T10:13:44.123Z","ts_ms":...,"event":"...",
 *    "node":"<node id>","subject":"...","workflow_id":"...",...details,
 *    "prev":"<BLAKE2b-256 hex of the previous line>","sig":"<Ed25519 hex>"}
 *
 * prev chains every line to the one before (the first line's prev is 64
 * zeros), so an edited, removed or reordered line breaks the next line's
 * prev; sig (by the node's key, over everything before ,"sig") makes the
 * last line tamper-evident too. `agent-mesh audit verify` checks both and
 * names the first bad line. Appends take an exclusive flock and re-read
 * the tail when another process appended, so the daemon and the CLI can
 * share one log; each line is written with one write() and fdatasync'd.
 * Each record may also go to a syslog collector (RFC 5424 over UDP, TCP
 * or TLS: AUDIT_SYSLOG, audit_syslog.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_trust.h"
#include "audit_syslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

struct am_audit {
	pthread_mutex_t mu;
	int fd;
	const am_identity *me;
	char node[AM_NODE_ID_LEN + 1];
	char path[4096];
	uint64_t seq;
	char prev[65];
	off_t known_size;
	am_syslog *syslog;        /* AUDIT_SYSLOG (audit_syslog.c), NULL: none */
	bool nosync;
};

static void
hash_hex(char out[65], const char *line, size_t len)
{
	uint8_t h[32];
	crypto_generichash(h, sizeof(h), (const uint8_t *) line, len, NULL, 0);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

/* Read the last complete line of the file: its hash and seq become ours. */
/* seq and prev from the last line of the file open on fd (size bytes) */
static int
read_tail(am_audit *a, int fd, off_t size, const char *path)
{
	char buf[LINE_MAX_BYTES + 2];
	off_t from = size > (off_t) sizeof(buf) - 1 ? size - (off_t) sizeof(buf) + 1 : 0;
	ssize_t n;

	if ((n = pread(fd, buf, sizeof(buf) - 1, from)) <= 0)
		return am_error_set(AM_EIO, "%s: %s", path, strerror(errno));
	buf[n] = '\0';
	if (buf[n - 1] != '\n')
		return am_error_set(AM_EMALFORMED, "%s: the last line is cut short (run agent-mesh audit verify)", path);
	buf[n - 1] = '\0';
	char *last = strrchr(buf, '\n');
	last = last ? last + 1 : buf;
	json_error_t jerr;
	json_t *j = json_loads(last, 0, &jerr);
	if (j == NULL || !json_is_integer(json_object_get(j, "seq"))) {
		json_decref(j);
		return am_error_set(AM_EMALFORMED, "%s: the last line is not an audit record (run agent-mesh audit verify)",
		    path);
	}
	a->seq = (uint64_t) json_integer_value(json_object_get(j, "seq"));
	json_decref(j);
	hash_hex(a->prev, last, strlen(last));
	return 0;
}

/* Where the chain goes on from. The file's last line; for an empty file
 * (a new log, or one logrotate just made) the chain this process wrote
 * last (rotated under us: create or copytruncate), else the last line of
 * PATH.1 (rotated while we were stopped), else a new chain. */
static int
load_tail(am_audit *a)
{
	struct stat st;

	if (fstat(a->fd, &st) != 0)
		return am_error_set(AM_EIO, "%s: %s", a->path, strerror(errno));
	a->known_size = st.st_size;
	if (st.st_size > 0)
		return read_tail(a, a->fd, st.st_size, a->path);
	{
		/* other processes may have written the old file after us: its
		 * copy, PATH.1, ends the chain when it is at least as far on */
		char older[4200], keep_prev[65];
		uint64_t keep_seq = a->seq;
		int fd;
		memcpy(keep_prev, a->prev, sizeof(keep_prev));
		snprintf(older, sizeof(older), "%s.1", a->path);
		if ((fd = open(older, O_RDONLY | O_CLOEXEC)) >= 0) {
			int rc = fstat(fd, &st) == 0 && st.st_size > 0 ? read_tail(a, fd, st.st_size, older) : -1;
			close(fd);
			if (rc == 0 && a->seq >= keep_seq && a->seq > 0)
				return 0;
		}
		a->seq = keep_seq;
		memcpy(a->prev, keep_prev, sizeof(keep_prev));
		if (a->seq > 0)
			return 0;
	}
	a->seq = 0;
	memset(a->prev, '0', 64);
	a->prev[64] = '\0';
	return 0;
}

int
am_audit_open(am_audit **out, const char *path, const am_identity *me)
{
	am_audit *a = calloc(1, sizeof(*a));
	char dir[4096], *slash;
	int rc;

	*out = NULL;
	if (a == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	a->me = me;
	am_node_id_format(a->node, am_identity_pk(me));
	snprintf(a->path, sizeof(a->path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (dir[0] != '\0' && mkdir(dir, 0700) != 0 && errno != EEXIST) {
			rc = am_error_set(AM_EIO, "%s: %s", dir, strerror(errno));
			goto fail;
		}
	}
	if ((a->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		rc = am_error_set(AM_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	flock(a->fd, LOCK_SH);
	rc = load_tail(a);
	flock(a->fd, LOCK_UN);
	if (rc != 0) {
		close(a->fd);
		goto fail;
	}
	if ((rc = am_syslog_open(&a->syslog, getenv("AUDIT_SYSLOG"))) != 0) {
		close(a->fd);
		goto fail;
	}
	*out = a;
	return 0;
fail:
	pthread_mutex_destroy(&a->mu);
	free(a);
	return rc;
}

int
am_audit_reopen(am_audit *a)
{
	int fd, rc;

	pthread_mutex_lock(&a->mu);
	if ((fd = open(a->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		rc = am_error_set(AM_EIO, "%s: %s", a->path, strerror(errno));
		pthread_mutex_unlock(&a->mu);
		return rc;
	}
	{
		/* the old file's end, which another process may have written */
		struct stat st;
		flock(a->fd, LOCK_SH);
		if (fstat(a->fd, &st) == 0 && st.st_size > 0 && st.st_size != a->known_size)
			(void) read_tail(a, a->fd, st.st_size, a->path);
		flock(a->fd, LOCK_UN);
	}
	close(a->fd);
	a->fd = fd;
	flock(a->fd, LOCK_SH);
	rc = load_tail(a); /* a new file goes on from the chain written last */
	flock(a->fd, LOCK_UN);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int
am_audit_syslog_check(const char *spec)
{
	am_syslog *s = NULL;
	int rc = am_syslog_open(&s, spec);

	am_syslog_close(s);
	return rc;
}

void
am_audit_close(am_audit *a)
{
	if (a == NULL)
		return;
	close(a->fd);
	am_syslog_close(a->syslog);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void
am_audit_set_sync(am_audit *a, bool sync)
{
	a->nosync = !sync;
}

const char *
am_audit_path(const am_audit *a)
{
	return a->path;
}

/* refusals at warning, everything else at notice (RFC 5424 severities) */
static void
to_syslog(am_audit *a, const char *event, const char *line, const char *ts)
{
	am_syslog_send(a->syslog, strstr(event, "refused") != NULL ? 4 : 5, ts, event, line);
}

int
am_audit_log(am_audit *a, const char *event, const char *subject, const char *workflow_id, json_t *details)
{
	char ts[40], sighex[2 * AM_SIG_BYTES + 1], *text = NULL, *line = NULL;
	uint8_t h[32], sig[AM_SIG_BYTES];
	struct timespec now;
	struct tm tm;
	json_t *j;
	int rc = 0;

	if (a == NULL) {
		json_decref(details);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ", now.tv_nsec / 1000000);
	pthread_mutex_lock(&a->mu);
	flock(a->fd, LOCK_EX);
	{
		struct stat st;
		/* another process appended since: chain onto its last line */
		if (fstat(a->fd, &st) == 0 && st.st_size != a->known_size && (rc = load_tail(a)) != 0)
			goto out;
	}
	j = json_pack("{s:I, s:s, s:I, s:s, s:s}", "seq", (json_int_t) (a->seq + 1), "ts", ts, "ts_ms",
	    (json_int_t) ((uint64_t) now.tv_sec * 1000 + (uint64_t) now.tv_nsec / 1000000), "event", event, "node", a->node);
	if (j == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(j, "subject", json_string(subject ? subject : ""));
	if (workflow_id != NULL && workflow_id[0] != '\0')
		json_object_set_new(j, "workflow_id", json_string(workflow_id));
	if (details != NULL) {
		const char *k;
		json_t *v;
		json_object_foreach(details, k, v)
			if (json_object_get(j, k) == NULL && strcmp(k, "prev") != 0 && strcmp(k, "sig") != 0)
				json_object_set(j, k, v);
	}
	json_object_set_new(j, "prev", json_string(a->prev));
	text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (text == NULL || strlen(text) > LINE_MAX_BYTES - 160) {
		rc = am_error_set(AM_ETOOBIG, "audit record too large");
		goto out;
	}
	/* sig over the record as written up to here (without its closing brace) */
	size_t tl = strlen(text) - 1;
	crypto_generichash(h, sizeof(h), (const uint8_t *) text, tl, NULL, 0);
	am_identity_sign(a->me, sig, h, sizeof(h));
	sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
	if ((line = malloc(tl + 2 * AM_SIG_BYTES + 16)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	int ll = snprintf(line, tl + 2 * AM_SIG_BYTES + 16, "%.*s,\"sig\":\"%s\"}\n", (int) tl, text, sighex);
	if (write(a->fd, line, (size_t) ll) != ll || (!a->nosync && fdatasync(a->fd) != 0)) {
		rc = am_error_set(AM_EIO, "%s: %s", a->path, strerror(errno));
		/* what was written (if any) is now the tail */
		(void) load_tail(a);
		goto out;
	}
	a->seq++;
	hash_hex(a->prev, line, (size_t) ll - 1);
	a->known_size += ll;
	line[ll - 1] = '\0';
	to_syslog(a, event, line, ts);
out:
	flock(a->fd, LOCK_UN);
	pthread_mutex_unlock(&a->mu);
	json_decref(details);
	free(text);
	free(line);
	return rc;
}

/* ---- verification ---- */

/* What one line says, checked on its own (in parallel). */
struct line_check {
	const char *text;
	size_t len;
	bool shaped, sig_ok;
	char prev[65];
	uint8_t pk[AM_PK_BYTES];
	long long seq;
};

struct verify_ctx {
	struct line_check *l;
};

static void
check_lines(void *ctx, size_t i0, size_t i1)
{
	struct verify_ctx *v = ctx;

	for (size_t i = i0; i < i1; i++) {
		struct line_check *c = &v->l[i];
		json_error_t jerr;
		json_t *j = json_loadb(c->text, c->len, 0, &jerr);
		const char *p = j ? json_string_value(json_object_get(j, "prev")) : NULL;
		const char *sg = j ? json_string_value(json_object_get(j, "sig")) : NULL;
		const char *node = j ? json_string_value(json_object_get(j, "node")) : NULL;
		const char *tail = NULL;
		uint8_t sig[AM_SIG_BYTES], h[32];

		/* ,"sig":" is the last member the writer emits */
		for (size_t k = c->len; k-- > 0 && tail == NULL;)
			if (k + 8 <= c->len && memcmp(c->text + k, ",\"sig\":\"", 8) == 0)
				tail = c->text + k;
		c->shaped = j != NULL && p != NULL && sg != NULL && node != NULL && strlen(p) == 64 &&
		    am_node_id_parse(c->pk, node) == 0;
		if (c->shaped) {
			memcpy(c->prev, p, 65);
			c->seq = (long long) json_integer_value(json_object_get(j, "seq"));
			if (tail != NULL && strlen(sg) == 2 * AM_SIG_BYTES &&
			    sodium_hex2bin(sig, sizeof(sig), sg, strlen(sg), NULL, NULL, NULL) == 0) {
				crypto_generichash(h, sizeof(h), (const uint8_t *) c->text, (size_t) (tail - c->text), NULL, 0);
				c->sig_ok = crypto_sign_verify_detached(sig, h, sizeof(h), c->pk) == 0;
			}
		}
		json_decref(j);
	}
}

int
am_audit_verify(const char *path, const uint8_t *want_node, am_audit_report *r)
{
	return am_audit_verify_after(path, want_node, NULL, 0, false, r);
}

int
am_audit_verify_after(const char *path, const uint8_t *want_node, const char *after_hash, uint64_t after_seq,
    bool continued, am_audit_report *r)
{
	const uint8_t *buf = NULL;
	size_t len = 0, n = 0, cap = 0;
	struct line_check *lines = NULL;
	char prev[65];
	int rc = 0;

	memset(r, 0, sizeof(*r));
	memset(prev, '0', 64);
	prev[64] = '\0';
	if (after_hash != NULL)
		snprintf(prev, sizeof(prev), "%s", after_hash);
	if ((rc = am_file_map(&buf, &len, path)) != 0)
		return rc;
	/* the lines; the last one must end in a newline */
	for (size_t off = 0; off < len;) {
		const uint8_t *nl = memchr(buf + off, '\n', len - off);
		if (n == cap) {
			struct line_check *nv = realloc(lines, (cap = cap ? cap * 2 : 1024) * sizeof(*nv));
			if (nv == NULL) {
				rc = am_error_set(AM_ENOMEM, "out of memory");
				goto out;
			}
			lines = nv;
		}
		memset(&lines[n], 0, sizeof(lines[n]));
		lines[n].text = (const char *) buf + off;
		lines[n].len = nl ? (size_t) (nl - (buf + off)) : len - off;
		n++;
		if (nl == NULL) {
			r->bad_line = n;
			rc = am_error_set(AM_EBADSIG, "line %zu: cut short (no end of line): the log was truncated", n);
			n--; /* still check the ones before it */
			break;
		}
		off = (size_t) (nl - buf) + 1;
	}
	{
		struct verify_ctx v = {lines};
		am_parallel_for(n, check_lines, &v); /* the signatures: most of the time */
	}
	{
		int trunc_rc = rc;
		uint64_t trunc_line = r->bad_line;
		rc = 0;
		r->bad_line = 0;
#define BAD(...) \
	do { \
		r->bad_line = i + 1; \
		rc = am_error_set(AM_EBADSIG, __VA_ARGS__); \
		goto out; \
	} while (0)
		for (size_t i = 0; i < n; i++) {
			struct line_check *c = &lines[i];
			unsigned long long ln = (unsigned long long) i + 1;
			if (!c->shaped)
				BAD("line %llu: not an audit record (changed or damaged)", ln);
			if (i == 0 && after_hash != NULL && (strcmp(c->prev, prev) != 0 || (uint64_t) c->seq != after_seq + 1))
				BAD("line 1: does not continue the file before it (that file's last line is seq %llu; this line's "
				    "prev is not its hash, or its seq is not the next): a line at the joint was removed, or the "
				    "files are out of order",
				    (unsigned long long) after_seq);
			if (i == 0 && after_hash == NULL && strcmp(c->prev, prev) != 0) {
				if (!continued)
					BAD("line 1: continues an earlier file (seq %lld): give the files in order, oldest first "
					    "(audit.log.2 audit.log.1 audit.log), or --continued to check from here",
					    c->seq);
				snprintf(prev, sizeof(prev), "%s", c->prev); /* taken as given */
				r->continues = true;
			}
			if (i == 0) {
				r->first_seq = (uint64_t) c->seq;
				if (after_hash == NULL && !r->continues && c->seq != 1)
					BAD("line 1: a new chain starts at seq 1, this one at %lld", c->seq);
			}
			if (strcmp(c->prev, prev) != 0)
				BAD("line %llu: its prev does not match line %llu (a line before it was changed, removed or "
				    "reordered)",
				    ln, ln - 1);
			if (!c->sig_ok)
				BAD("line %llu: its signature does not verify (the line was changed)", ln);
			if (want_node != NULL && memcmp(c->pk, want_node, AM_PK_BYTES) != 0)
				BAD("line %llu: written by another node's key", ln);
			if (i > 0 && (uint64_t) c->seq != r->last_seq + 1)
				BAD("line %llu: sequence %lld after %llu (lines removed or reordered)", ln, c->seq,
				    (unsigned long long) r->last_seq);
			r->lines++;
			r->last_seq = (uint64_t) c->seq;
			hash_hex(prev, c->text, c->len);
			memcpy(r->last_hash, prev, sizeof(prev));
		}
#undef BAD
		if (trunc_rc != 0) {
			r->bad_line = trunc_line;
			rc = am_error_set(AM_EBADSIG, "line %llu: cut short (no end of line): the log was truncated",
			    (unsigned long long) trunc_line);
		}
	}
out:
	free(lines);
	if (buf != NULL)
		am_file_unmap(buf, len);
	return rc;
}
