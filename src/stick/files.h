/*
 * files.h — private to src/stick: buffered crash-safe output files.
 */
#ifndef AM_STICK_FILES_H
#define AM_STICK_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct am_out {
	int fd;
	bool to_stdout;
	char *tmp, *final;
	uint64_t written;
	size_t blen;
	uint8_t buf[1 << 18];
};

/* am_out_open: a temporary file beside path ("-": a spool for stdout). */
int am_out_open(struct am_out *f, const char *path);
/* am_out_write: an am_sync_write_fn; ENOSPC becomes AM_EFULL, a
 * read-only file system AM_EREADONLY. */
int am_out_write(void *ctx, const void *data, size_t len);
/* am_out_commit: write head at offset 0, fsync, rename into place (or copy
 * the spool to stdout). */
int am_out_commit(struct am_out *f, const void *head, size_t head_len);
/* am_out_close: close; unlinks the temporary if not committed. */
void am_out_close(struct am_out *f);

#endif
