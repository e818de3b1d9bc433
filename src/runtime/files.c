/*
 * files.c — file helpers for the runtime: read-only mappings, sorted
 * folder listings, and crash-safe output files that are written through a
 * temporary name, fsynced and renamed (or spooled, for standard output).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

int
am_file_map(const uint8_t **buf, size_t *len, const char *path)
{
	struct stat st;
	void *p;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return am_error_set(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return am_error_set(AM_EIO, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		*buf = (const uint8_t *) "";
		return 0;
	}
	p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return am_error_set(AM_EIO, "%s: cannot map: %s", path, strerror(errno));
	*buf = p;
	*len = (size_t) st.st_size;
	return 0;
}

void
am_file_unmap(const uint8_t *buf, size_t len)
{
	if (buf != NULL && len > 0)
		munmap((void *) buf, len);
}

void
am_file_release(const uint8_t *buf, size_t upto)
{
#ifdef MADV_DONTNEED
	/* pages already read: drop them from our resident set */
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = upto - upto % (size_t) pg;
	if (buf != NULL && n > 0)
		(void) madvise((void *) buf, n, MADV_DONTNEED);
#else
	(void) buf;
	(void) upto;
#endif
}

void
am_stick_dir(char *out, size_t cap, const char *path)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n >= 9 && memcmp(path + n - 9, "AGENTMESH", 9) == 0 && (n == 9 || path[n - 10] == '/'))
		snprintf(out, cap, "%.*s", (int) n, path);
	else
		snprintf(out, cap, "%.*s/AGENTMESH", (int) n, path);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

int
am_dir_list(char ***names, size_t *n, const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0, sl = strlen(suffix);

	*names = NULL;
	*n = 0;
	if (d == NULL)
		return am_error_set(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l <= sl || strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		if (*n == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 32) * sizeof(*v));
			if (nv == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[*n] = strdup(e->d_name)) == NULL)
			goto nomem;
		(*n)++;
	}
	closedir(d);
	if (*n > 1) /* v is NULL for an empty folder: qsort may not take it */
		qsort(v, *n, sizeof(*v), cmp_str);
	*names = v;
	return 0;
nomem:
	closedir(d);
	am_dir_list_free(v, *n);
	*n = 0;
	return am_error_set(AM_ENOMEM, "out of memory listing %s", dir);
}

void
am_dir_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ------------------------------------------------------- output files --- */

static int
io_error(struct am_out *f, int err, const char *what)
{
	if (err == ENOSPC || err == EDQUOT || err == EFBIG)
		return am_error_set(AM_EFULL, "%s: no space left (%s)", f->final, what);
	if (err == EROFS || err == EACCES || err == EPERM)
		return am_error_set(AM_EREADONLY, "%s: read-only (%s: %s)", f->final, what, strerror(err));
	return am_error_set(AM_EIO, "%s: %s: %s", f->final, what, strerror(err));
}

int
am_out_open(struct am_out *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->to_stdout = strcmp(path, "-") == 0;
	if ((f->final = strdup(f->to_stdout ? "standard output" : path)) == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	if (f->to_stdout) {
		/* a bundle's header is written last, so spool it first */
		const char *tmpdir = getenv("TMPDIR");
		size_t n = strlen(tmpdir ? tmpdir : "/tmp") + 32;
		if ((f->tmp = malloc(n)) == NULL)
			return am_error_set(AM_ENOMEM, "out of memory");
		snprintf(f->tmp, n, "%s/agent-mesh-out.XXXXXX", tmpdir ? tmpdir : "/tmp");
	} else {
		size_t n = strlen(path) + 16;
		if ((f->tmp = malloc(n)) == NULL)
			return am_error_set(AM_ENOMEM, "out of memory");
		snprintf(f->tmp, n, "%s.tmp.XXXXXX", path);
	}
	if ((f->fd = mkstemp(f->tmp)) < 0) {
		int err = errno;
		free(f->tmp);
		f->tmp = NULL;
		return io_error(f, err, "cannot create a file");
	}
	if (!f->to_stdout)
		(void) fchmod(f->fd, 0644);
	return 0;
}

static int
flush_buf(struct am_out *f)
{
	size_t off = 0;

	while (off < f->blen) {
		ssize_t w = write(f->fd, f->buf + off, f->blen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return io_error(f, errno, "write");
		off += (size_t) w;
	}
	f->blen = 0;
	return 0;
}

int
am_out_write(void *ctx, const void *data, size_t len)
{
	struct am_out *f = ctx;
	const uint8_t *p = data;
	int rc;

	while (len > 0) {
		size_t take = sizeof(f->buf) - f->blen;
		if (take > len)
			take = len;
		memcpy(f->buf + f->blen, p, take);
		f->blen += take;
		p += take;
		len -= take;
		f->written += take;
		if (f->blen == sizeof(f->buf) && (rc = flush_buf(f)) != 0)
			return rc;
	}
	return 0;
}

int
am_out_commit(struct am_out *f, const void *head, size_t head_len)
{
	int rc;

	if ((rc = flush_buf(f)) != 0)
		return rc;
	if (head_len > 0 && pwrite(f->fd, head, head_len, 0) != (ssize_t) head_len)
		return io_error(f, errno, "write header");
	if (f->to_stdout) {
		char buf[65536];
		ssize_t r;
		if (lseek(f->fd, 0, SEEK_SET) != 0)
			return io_error(f, errno, "rewind");
		while ((r = read(f->fd, buf, sizeof(buf))) > 0)
			if (fwrite(buf, 1, (size_t) r, stdout) != (size_t) r)
				return am_error_set(AM_EIO, "writing to standard output failed");
		if (fflush(stdout) != 0)
			return am_error_set(AM_EIO, "writing to standard output failed");
		return 0;
	}
	if (fsync(f->fd) != 0)
		return io_error(f, errno, "fsync");
	if (rename(f->tmp, f->final) != 0)
		return io_error(f, errno, "rename");
	free(f->tmp);
	f->tmp = NULL;
	{
		char *copy = strdup(f->final);
		if (copy != NULL) {
			int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				(void) fsync(dfd); /* FAT may refuse: the data is already synced */
				close(dfd);
			}
			free(copy);
		}
	}
	return 0;
}

void
am_out_close(struct am_out *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp != NULL)
		unlink(f->tmp);
	free(f->tmp);
	free(f->final);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

void
am_prune_dir(const char *dir, const char *suffix, uint64_t older_than_ms)
{
	char **names = NULL, path[4200];
	size_t n = 0;
	struct stat st;
	time_t limit = time(NULL) - (time_t) (older_than_ms / 1000);

	if (am_dir_list(&names, &n, dir, suffix) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && st.st_mtime < limit)
			unlink(path);
	}
	am_dir_list_free(names, n);
}
