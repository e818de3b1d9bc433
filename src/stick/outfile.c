/*
 * outfile.c — the stick's folder for a path, and crash-safe output files
 * written through a temporary name, fsynced and renamed (or spooled, for
 * standard output).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_stick.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
