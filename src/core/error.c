/*
 * error.c — AM_E* phrases and the per-thread failure detail.
 *
 * The detail exists because a code alone cannot say *which* field was bad;
 * the CLI and daemons print am_error_detail() as their one-line error.
 */
#include "am_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char detail[256];
static _Thread_local int detail_code;

const char *
am_strerror(int code)
{
	switch (code) {
	case AM_OK: return "success";
	case AM_EINVAL: return "invalid argument";
	case AM_ENOMEM: return "out of memory";
	case AM_EIO: return "I/O error";
	case AM_EFULL: return "store full";
	case AM_ENOTFOUND: return "not found";
	case AM_EEXIST: return "already exists";
	case AM_EMALFORMED: return "malformed encoding";
	case AM_ETRUNC: return "truncated input";
	case AM_ETRAILING: return "trailing bytes after envelope";
	case AM_EVERSION: return "unknown version";
	case AM_EBADSIG: return "bad signature";
	case AM_ETOOBIG: return "too large";
	case AM_ELIMIT: return "count limit exceeded";
	case AM_EFIELD: return "bad or missing field";
	case AM_EGEO: return "geo value out of range";
	case AM_EPEM: return "not a PEM private key";
	case AM_EKEY: return "wrong key type";
	case AM_EEXPIRED: return "expired";
	case AM_ETOMBSTONE: return "deleted or delivered here before";
	case AM_EDUP: return "duplicate";
	case AM_ESTORE: return "store error";
	case AM_ECOMPRESS: return "compression error";
	case AM_ESEAL: return "cannot open sealed payload";
	case AM_ENOSTORE: return "no store at that path";
	case AM_ELOCKED: return "store busy";
	case AM_EUNTRUSTED: return "peer not trusted";
	case AM_EDENIED: return "not allowed";
	case AM_EREVOKED: return "revoked";
	case AM_ETIMEDOUT: return "timed out";
	case AM_ENETKEY: return "another network key";
	case AM_EKEYCHANGED: return "key changed";
	case AM_EREADONLY: return "read-only";
	default: return "unknown error";
	}
}

int
am_error_set(int code, const char *fmt, ...)
{
	char next[sizeof(detail)];
	va_list ap;

	/* format aside first: callers often wrap the previous detail
	 * ("%s", am_error_detail()), which must not be overwritten while it
	 * is being read */
	va_start(ap, fmt);
	vsnprintf(next, sizeof(next), fmt, ap);
	va_end(ap);
	memcpy(detail, next, sizeof(detail));
	detail_code = code;
	return code;
}

const char *
am_error_detail(void)
{
	if (detail[0] == '\0')
		return am_strerror(detail_code);
	return detail;
}
