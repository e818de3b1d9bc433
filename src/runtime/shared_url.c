/*
 * shared_url.c — the --shared-state URL (redis://[user:pass@]host:port[/db]),
 * parsed where the daemon reads its flags, so a typo stops it before
 * anything is opened; the gateway's shared.c connects with what it gives.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
am_shared_url_parse(am_shared_url *u, const char *text)
{
	const char *p = text, *at, *slash, *colon;
	char hostport[sizeof(u->host)];

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(p, "redis://", 8) != 0)
		return am_error_set(AM_EINVAL, "shared state \"%.80s\": not a redis:// URL (redis://[user:pass@]host:port[/db])", text);
	p += 8;
	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at != NULL && (slash == NULL || at < slash)) {
		const char *c = memchr(p, ':', (size_t) (at - p));
		size_t ulen = c != NULL ? (size_t) (c - p) : 0;
		const char *pw = c != NULL ? c + 1 : p;
		size_t plen = (size_t) (at - pw);
		if (ulen >= sizeof(u->user) || plen >= sizeof(u->pass))
			return am_error_set(AM_EINVAL, "shared state URL: the user or password is too long");
		memcpy(u->user, p, ulen);
		u->user[ulen] = '\0';
		memcpy(u->pass, pw, plen);
		u->pass[plen] = '\0';
		p = at + 1;
	}
	size_t hlen = slash ? (size_t) (slash - p) : strlen(p);
	if (hlen >= sizeof(u->host))
		return am_error_set(AM_EINVAL, "shared state URL: the host is too long");
	memcpy(hostport, p, hlen);
	hostport[hlen] = '\0';
	colon = strrchr(hostport, ':');
	/* a port follows the last ':' of host:port or [v6]:port, not of a bare v6 address */
	const char *close = strchr(hostport, ']');
	if (colon != NULL && (close != NULL ? close < colon : strchr(hostport, ':') == colon)) {
		char *end = NULL;
		long port = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
			return am_error_set(AM_EINVAL, "shared state \"%.80s\": the port must be 1..65535", text);
		u->port = (int) port;
		hostport[colon - hostport] = '\0';
	}
	if (hostport[0] == '[') { /* [::1] */
		size_t n = strlen(hostport);
		if (n < 3 || hostport[n - 1] != ']')
			return am_error_set(AM_EINVAL, "shared state \"%.80s\": a bracketed host must end with ]", text);
		memmove(hostport, hostport + 1, n - 2);
		hostport[n - 2] = '\0';
	}
	if (hostport[0] == '\0')
		return am_error_set(AM_EINVAL, "shared state \"%.80s\": no host", text);
	snprintf(u->host, sizeof(u->host), "%s", hostport);
	if (slash != NULL && slash[1] != '\0') {
		char *end = NULL;
		long db = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || db < 0 || db > 1000000)
			return am_error_set(AM_EINVAL, "shared state \"%.80s\": the database after / must be a number", text);
		u->db = (int) db;
	}
	bool v6 = strchr(u->host, ':') != NULL;
	snprintf(u->shown, sizeof(u->shown), "redis://%s%s%.255s%s:%d/%d", u->user[0] || u->pass[0] ? "***@" : "",
	    v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
	return 0;
}
