/*
 * say.c — a daemon's log line on standard output: formatted whole, then
 * written with one call under the stream's lock, so lines from the
 * daemon's many threads never interleave inside a line (systemd's journal
 * and `tail -f` see one event per line).
 */
#include "am_core.h"

#include <stdarg.h>
#include <stdio.h>

void
am_say(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n > sizeof(line) - 2)
		n = (int) sizeof(line) - 2; /* a cut line still ends */
	line[n] = '\n';
	flockfile(stdout);
	fwrite(line, 1, (size_t) n + 1, stdout);
	fflush(stdout);
	funlockfile(stdout);
}
