/*
 * audit_syslog.h — private to src/trust: forwarding audit records to a
 * SIEM (audit_syslog.c). AUDIT_SYSLOG is `[udp://]host:port` (RFC 5426),
 * `tcp://host:port` (RFC 6587 octet counting) or `tls://host:port`
 * (RFC 5425, with AUDIT_SYSLOG_CA), docs/OPERATIONS.md "Audit log".
 */
#ifndef AM_TRUST_AUDIT_SYSLOG_H
#define AM_TRUST_AUDIT_SYSLOG_H

#include <stddef.h>

typedef struct am_syslog am_syslog;
/* spec NULL or "": *out NULL, 0. A spec that cannot work (its form, an
 * unknown host for UDP, a TLS CA file missing) is AM_EINVAL naming
 * AUDIT_SYSLOG. A stream collector that is down is not an error: records
 * wait (at most AM_SYSLOG_QUEUE) and go when it is back. */
#define AM_SYSLOG_QUEUE 1024
int am_syslog_open(am_syslog **out, const char *spec);
/* one record: severity 4 (warning) or 5 (notice); line is the audit
 * line (JSON); one over the transport's limit goes as a stub naming its
 * size and hash (the next line's "prev"), never cut mid-record. Never
 * blocks on the network. */
void am_syslog_send(am_syslog *s, int severity, const char *ts, const char *event, const char *line);
/* what is queued goes within 2 s, then the connection closes */
void am_syslog_close(am_syslog *s);

#endif
