/*
 * files.c — read-only mappings of whole files (dropped from the resident
 * set as a reader moves on), sorted folder listings without temporaries,
 * and pruning old records: what the stick, the audit log and the daemons'
 * record folders share.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
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
