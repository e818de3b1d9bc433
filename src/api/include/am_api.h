/*
 * am_api.h — the public contract of src/api: the daemons' HTTP side.
 * The HTTP servers (libmicrohttpd behind our own acceptor, with its
 * caps, deadlines and byte budget), the answers handlers give, the
 * messages API and the token checks every route uses, and .env files.
 */
#ifndef AM_API_H
#define AM_API_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"
#include "am_net.h"
#include "am_trust.h"

#include <stdatomic.h>

struct json_t; /* jansson's */

/* ----------------------------------------------------------------- api --- */

/* The messages API (api.c) over the daemon's HTTP server (http_server.c). */
typedef struct am_api {
	am_queue *q;
	const am_identity *me;
	char token[65];             /* bearer token; "" = none (loopback only) */
	am_hub *hub;                /* stored messages are noted here (may be NULL) */
	atomic_bool waiting;        /* an inbox long-poll is waiting */
	uint8_t trusted[8 * AM_PK_BYTES]; /* gateway keys whose tokens count */
	size_t ntrusted;
	am_audit *audit;            /* token decisions (may be NULL) */
	am_audit_limiter *refusals; /* unauthenticated refusals, aggregated (may be NULL) */
	const char *data_dir;
	const char *name;
} am_api;

/* http_server.c: the daemons' HTTP servers (libmicrohttpd behind our own
 * acceptor: connection caps with a per-address share, header and body
 * deadlines, refusals on the request head before a body is read).
 * Every limit has an environment variable (docs/OPERATIONS.md). */
#define AM_HTTP_HEADER_TIMEOUT_MS 10000  /* AM_HTTP_HEADER_TIMEOUT (s) */
#define AM_HTTP_BODY_TIMEOUT_MS 30000    /* AM_HTTP_BODY_TIMEOUT (s) */
#define AM_HTTP_IDLE_TIMEOUT_S 30        /* AM_HTTP_IDLE_TIMEOUT (s) */
#define AM_HTTP_MAX_CONNECTIONS 256      /* AM_HTTP_MAX_CONNECTIONS */
#define AM_HTTP_MAX_PER_ADDRESS 32       /* AM_HTTP_MAX_PER_ADDRESS */
#define AM_HTTP_BODY_BUDGET_MIB 64       /* AM_HTTP_BODY_BUDGET_MIB */
#define AM_HTTP_HEAD_MAX (32u << 10)     /* request line and headers */
typedef struct am_http_ex am_http_ex;     /* one request and its answer */
typedef struct am_http_server am_http_server;
typedef void (*am_http_fn)(am_http_ex *ex);
typedef struct {
	int header_timeout_ms; /* the first request head within this of connecting */
	int body_timeout_ms;   /* a whole body within this of its head */
	int idle_timeout_s;    /* no byte moving for this long, or no next request on a kept-alive connection: closed */
	int max_connections;   /* at once (kept under the fd limit) */
	int max_per_address;
	size_t body_budget;    /* bytes of bodies held at once, all requests */
} am_http_limits;
enum {
	AM_HTTP_REFUSED_HEADER_TIMEOUT,
	AM_HTTP_REFUSED_BODY_TIMEOUT,
	AM_HTTP_REFUSED_EVICTED,
	AM_HTTP_REFUSED_FULL,
	AM_HTTP_REFUSED_BUSY,
	AM_HTTP_REFUSED_KINDS
};
const char *am_http_refused_name(int kind);
/* the defaults, then AM_HTTP_* from the environment; an error names the variable */
int am_http_limits_from_env(am_http_limits *l) AM_MUST_CHECK;
/* am_env_long: *v from environment variable name when it is set (a whole
 * number lo..hi, else AM_EINVAL naming it); unset or empty leaves *v */
int am_env_long(const char *name, long lo, long hi, long *v) AM_MUST_CHECK;
/* binds host:port now (errors name it); routes are added, then start */
int am_http_server_new(am_http_server **out, const char *name, const char *host, int port, const am_http_limits *l)
    AM_MUST_CHECK;
/* method "GET"/"POST"/...; tree: path and everything under it; body_max
 * 0: no body taken; pre runs on the head, before any body is read, and
 * may answer (then fn never runs); fn answers now or later, from any
 * thread, exactly once. */
int am_http_route(am_http_server *s, const char *method, const char *path, bool tree, size_t body_max, am_http_fn pre,
    am_http_fn fn, void *data) AM_MUST_CHECK;
int am_http_server_start(am_http_server *s) AM_MUST_CHECK;
void am_http_server_free(am_http_server *s);
void am_http_server_counts(am_http_server *s, uint64_t refused[AM_HTTP_REFUSED_KINDS], size_t *open);
/* am_http_local: one request through srv's router, head checks, token hook
 * and handler, in this thread, with no socket (the fuzz targets' way in).
 * headers: name, value, ..., NULL. A handler that defers its answer gets
 * pending(ctx) called, which must make the answer come (say, by ticking
 * the jobs past their deadlines). The answer's body is the caller's to
 * free. Framing is not exercised: that is libmicrohttpd's. */
int am_http_local(am_http_server *srv, const char *method, const char *uri, const char *const *headers, const void *body,
    size_t len, void (*pending)(void *ctx), void *ctx, unsigned *status, char **reply, size_t *reply_len) AM_MUST_CHECK;
const am_http_limits *am_http_server_limits(const am_http_server *s);
/* http_stream.c: an answer whose body follows in pieces (chunked), for
 * server-sent events. open answers ex now (the stream is the caller's
 * until close); write from any thread (AM_EIO once the client is gone,
 * or when it leaves 1 MiB unread); close ends the body. am_http_local
 * has no connection: open refuses (AM_EINVAL). */
typedef struct am_http_stream am_http_stream;
int am_http_stream_open(am_http_ex *ex, unsigned status, const char *type, const char *session, am_http_stream **out)
    AM_MUST_CHECK;
int am_http_stream_write(am_http_stream *s, const void *buf, size_t len) AM_MUST_CHECK;
bool am_http_stream_alive(am_http_stream *s);
void am_http_stream_close(am_http_stream *s);
/* http_relay.c: websocket upgrades on path are relayed to a link
 * listener on loopback port (set once it listens; 503 before) */
int am_http_relay(am_http_server *s, const char *path) AM_MUST_CHECK;
void am_http_relay_target(am_http_server *s, int port);
/* the request */
const char *am_http_method(const am_http_ex *ex);
const char *am_http_uri(const am_http_ex *ex); /* path?query, as sent */
const char *am_http_header(const am_http_ex *ex, const char *name);
const void *am_http_body(const am_http_ex *ex, size_t *len);
/* the client connected from a loopback address (false for am_http_local) */
bool am_http_from_loopback(const am_http_ex *ex);
/* the client's address without the port ("local" for am_http_local) */
const char *am_http_peer_address(const am_http_ex *ex);
void *am_http_data(const am_http_ex *ex); /* the route's data */
/* the server's own data, one per server (am_api_register sets it to the
 * am_api, so any route's token checks find it, whoever added the route) */
void am_http_server_set_data(am_http_server *s, void *data);
void *am_http_server_data(const am_http_ex *ex);
/* the answer (the first one counts). body NULL: no body; session: an
 * Mcp-Session-Id header; allow: an Allow header. */
void am_http_answer(am_http_ex *ex, unsigned status, const char *type, const char *body, size_t len,
    const char *session, const char *allow);
/* http.c: the answers handlers give. reply_json consumes j (NULL: no
 * body); reply_error sends {"error": msg}. */
void am_http_reply(am_http_ex *ex, uint16_t status, const char *type, const char *body, const char *session);
void am_http_reply_json(am_http_ex *ex, uint16_t status, struct json_t *j);
void am_http_reply_json_session(am_http_ex *ex, uint16_t status, struct json_t *j, const char *session);
void am_http_reply_error(am_http_ex *ex, uint16_t status, const char *msg);
/* am_json_text: msg as a JSON string, invalid UTF-8 bytes as '?' (never NULL but out of memory) */
struct json_t *am_json_text(const char *msg);
bool am_http_query(const char *uri, const char *name, char *out, size_t cap);
struct json_t *am_http_json_body(am_http_ex *ex, char *err, size_t cap);
/* a pre hook for routes that need a token: answers 401 on the head
 * unless the Authorization header carries one that verifies (against the
 * am_api the server was registered with: am_api_register first) */
void am_api_pre_auth(am_http_ex *ex);
int am_api_register(am_http_server *srv, am_api *api) AM_MUST_CHECK;
/* am_api_daemon_type: an envelope type that is the daemons' own traffic
 * (tool_call, tool_result, tool_catalog: "tool_..."): never listed by
 * /v1/inbox; the daemon's dispatcher acknowledges those its role has no
 * use for. */
bool am_api_daemon_type(const char *type);
/* am_api_check: the request on aio carries the development token or a
 * valid, unrevoked capability token from a trusted gateway that allows
 * action; otherwise it has been answered 401 (no or bad token) or 403
 * (not allowed), with the reason, audited, and AM_EDENIED is returned. */
int am_api_check(am_api *api, am_http_ex *ex, const char *action);
/* The same checks for callers that are not plain HTTP handlers (MCP, tool
 * calls): begin verifies the header value ("Bearer ..."; AM_EUNTRUSTED
 * with the reason: answer 401), allow checks one action (AM_EDENIED: 403);
 * both audit like the API. token is the capability token as presented
 * (NULL for the development token), to pass on with a call. */
typedef struct am_api_auth am_api_auth;
int am_api_auth_begin(am_api *api, const char *authorization, const char *action, am_api_auth **out);
int am_api_auth_allow(am_api *api, am_api_auth *a, const char *action, const char *workflow_id);
/* the caller's verified token (proof and all: it never leaves this
 * process), NULL for the development token */
const am_token *am_api_auth_token(const am_api_auth *a);
const char *am_api_auth_subject(const am_api_auth *a);
void am_api_auth_end(am_api_auth *a);

/* am_http_fetch (http_client.c): one request to url (http:// only);
 * body NULL sends none. On 0, *status is the answer's status and *reply
 * its body, NUL-ended, malloc'd (the caller frees it). An answer over
 * reply_max bytes is not read (AM_ELIMIT). Errors: AM_EINVAL (the URL),
 * AM_EIO (no answer within timeout_ms), AM_EMALFORMED, AM_ELIMIT. */
int am_http_fetch(const char *method, const char *url, const char *type, const void *body, size_t len,
    const char *authorization, size_t reply_max, int timeout_ms, unsigned *status, char **reply, size_t *reply_len)
    AM_MUST_CHECK;

/* am_env_file_load: set each KEY=VALUE of a .env file that is not already
 * in the environment (envfile.c). A missing file is fine unless required.
 * Errors: AM_EIO, AM_EFIELD (names file and line). */
int am_env_file_load(const char *path, bool required) AM_MUST_CHECK;

#endif /* AM_API_H */
