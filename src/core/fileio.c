/*
 * fileio.c — whole-file reads with a size cap, and crash-safe whole-file
 * writes (temp + fsync + rename/link + fsync of the folder).
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
am_file_read(char **out, size_t *len, const char *path, size_t max)
{
	int fd = -1, rc = 0;
	char *buf = NULL;
	size_t cap = 4096, n = 0;

	*out = NULL;
	*len = 0;
	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return am_error_set(AM_EIO, "%s: %s", path, strerror(errno));
	buf = malloc(cap + 1);
	if (buf == NULL) {
		rc = am_error_set(AM_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap > max) {
				rc = am_error_set(AM_ETOOBIG, "%s: larger than the %zu-byte limit", path, max);
				goto out;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				rc = am_error_set(AM_ENOMEM, "%s: out of memory", path);
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = am_error_set(AM_EIO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t) r;
	}
	if (n > max) {
		rc = am_error_set(AM_ETOOBIG, "%s: larger than the %zu-byte limit", path, max);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	if (fd >= 0 && fd != STDIN_FILENO)
		close(fd);
	free(buf);
	return rc;
}

static int
fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Some file systems (FAT on sticks) refuse fsync on a folder: the data
	 * itself was already fsynced, so that is not an error. */
	if (fd >= 0) {
		(void) fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

int
am_file_write_atomic(const char *path, const void *data, size_t len,
    unsigned mode, bool overwrite)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	const char *p = data;
	int fd = -1, rc = 0;

	if (tmp == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = am_error_set(AM_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
		free(tmp);
		return rc;
	}
	/* FAT and exFAT sticks refuse chmod: fine for a public file, not for
	 * a secret one (a key must never land readable by others) */
	if (fchmod(fd, (mode_t) mode) != 0 && (mode & 077) == 0) {
		rc = am_error_set(AM_EIO, "%s: cannot make it private (mode %03o): %s", path, mode, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = am_error_set(AM_EIO, "%s: write: %s", path, strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t) w;
	}
	if (fsync(fd) != 0) {
		rc = am_error_set(AM_EIO, "%s: fsync: %s", path, strerror(errno));
		goto out;
	}
	if (overwrite) {
		if (rename(tmp, path) != 0) {
			rc = am_error_set(AM_EIO, "%s: rename: %s", path, strerror(errno));
			goto out;
		}
	} else if (link(tmp, path) != 0) {
		struct stat st;
		int err = errno;
		if (err == EEXIST) {
			rc = am_error_set(AM_EEXIST, "%s exists (use --force to overwrite)", path);
			goto out;
		}
		/* file systems without hard links (FAT sticks): check, then
		 * rename; not atomic against a concurrent writer, which a stick
		 * does not have */
		if ((err != EPERM && err != ENOTSUP && err != EOPNOTSUPP && err != ENOSYS && err != EXDEV) ||
		    stat(path, &st) == 0) {
			rc = err == EPERM || err == ENOTSUP || err == EOPNOTSUPP || err == ENOSYS || err == EXDEV
			         ? am_error_set(AM_EEXIST, "%s exists (use --force to overwrite)", path)
			         : am_error_set(AM_EIO, "%s: %s", path, strerror(err));
			goto out;
		}
		if (rename(tmp, path) != 0) {
			rc = am_error_set(AM_EIO, "%s: rename: %s", path, strerror(errno));
			goto out;
		}
	}
	rc = fsync_dir_of(path);
out:
	close(fd);
	unlink(tmp); /* after rename this is a no-op failure; after link it drops the extra name */
	free(tmp);
	return rc;
}
