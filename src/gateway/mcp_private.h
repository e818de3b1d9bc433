/*
 * mcp_private.h — private to the MCP server's files: its state, the
 * JSON-RPC pieces they share (mcp.c), and the node tool calls answered
 * as a stream of progress notifications (mcp_stream.c).
 */
#ifndef AM_MCP_PRIVATE_H
#define AM_MCP_PRIVATE_H

#include "am_gateway.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#define MCP_SESSIONS 1024 /* open sessions remembered; the oldest is forgotten first */
#define MCP_STREAMS 256   /* calls answered as streams at once (each holds a connection) */

struct mcp_stream_call;
#define MCP_WATCHERS 64 /* open notification streams (GET, subscriptions/listen) */
#define MCP_SUBS 256    /* resources/subscribe entries, all sessions */
#define AM_MCP_INBOX_URI "am-mesh://inbox"
#define AM_MCP_SCAN_URI "am-mesh://mesh_scan"
#define AM_MCP_JOB_URI "am-mesh://jobs/"

/* one notification stream (mcp_watch.c) */
struct mcp_watcher {
	am_http_stream *st;
	char session[33];      /* 2025-era: the session whose subscriptions it carries */
	json_t *listen_id;     /* 2026-07-28: the subscriptions/listen request id (NULL: 2025) */
	json_t *uris;          /* 2026-07-28: the resources its filter names */
	bool tools;            /* tools/list_changed wanted */
	char caller[65];
	uint64_t last_write_ms;
};

struct am_mcp {
	am_http_server *srv;
	am_api *api;
	am_calls *calls;          /* api and the jobs */
	pthread_mutex_t mu;
	pthread_cond_t idle;      /* a stream call ended */
	struct {
		char id[33];
		uint64_t at_ms;
		int log_level; /* logging/setLevel: index in am_mcp_log_levels, -1: none asked */
	} sessions[MCP_SESSIONS];
	size_t next_session; /* ring position */
	struct mcp_stream_call *streams[MCP_STREAMS]; /* in flight, for notifications/cancelled */
	size_t nstreams;
	/* mcp_watch.c, under mu */
	struct mcp_watcher *watchers[MCP_WATCHERS];
	size_t nwatchers;
	struct {
		char session[33];
		char uri[96];
	} subs[MCP_SUBS];
	size_t nsubs;
	uint64_t inbox_seen, catalog_seen;
	json_t *job_seen;             /* watched job uri -> its last state */
	atomic_uint_fast64_t catalog_gen;
	atomic_bool stopping; /* read by a call's thread under its own lock, not mu */
};

/* mcp.c: what one POST is: its era, who sent it, what it accepts, and the HTTP
 * status its answer gets (400 for a revision refused) */
typedef struct {
	bool modern;
	bool sse;              /* Accept names text/event-stream */
	unsigned status;
	char caller[65];       /* hash of token and session: who may cancel a call */
	const char *session;   /* Mcp-Session-Id (2025-era), else NULL */
	int log_level;         /* notifications/message from here up; -1 none */
} mcp_req;
/* mcp.c */

extern const char *const am_mcp_log_levels[8]; /* debug .. emergency, as RFC 5424 */
json_t *am_mcp_rpc_error(json_t *id, int code, const char *msg);
json_t *am_mcp_rpc_result(json_t *id, json_t *result, bool modern);
json_t *am_mcp_text_content(const char *text, bool is_error, json_t *structured);

/* mcp_tools.c: tools/list; tools/call (NULL with *deferred when the
 * answer comes later); a finished (or waited-for) job as a tools/call
 * result; the first 100 inbox entries (mesh_inbox, the inbox resource) */
json_t *am_mcp_tools_list(am_mcp *m, json_t *id, json_t *params);
json_t *am_mcp_tools_call(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, am_http_ex *ex, mcp_req *rq,
    bool *deferred);
json_t *am_mcp_job_content(json_t *job);
json_t *am_mcp_inbox_messages(am_mcp *m);

/* mcp_resources.c: the right a resource takes (NULL: not one of ours);
 * resources/list; resources/read */
const char *am_mcp_resource_right(const char *uri);
json_t *am_mcp_resources_list(am_mcp *m, json_t *id, json_t *params);
json_t *am_mcp_resources_read(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, bool modern);

/* mcp_stream.c: answer the tools/call id (job made, not done) as
 * text/event-stream: a notifications/progress each second while it waits
 * (when the client gave a progressToken; the first one names the job),
 * then the result. It ends early, with no result, when the client leaves
 * or cancels (notifications/cancelled from the same caller); the job goes
 * on and mesh_job_status has it. caller: who may cancel it (a hash of
 * the token and session). log_level: notifications/message from that
 * level up (the call sent, answered, or not), -1 none. */
int am_mcp_stream_call(am_mcp *m, am_http_ex *ex, json_t *id, const char *job, const char *node, json_t *progress,
    uint64_t wait_ms, bool modern, const char *caller, int log_level) AM_MUST_CHECK;
/* one JSON-RPC message as a server-sent event on st (consumes msg) */
int am_mcp_send_event(am_http_stream *st, json_t *msg); /* AM_EIO: the client is gone */
/* notifications/cancelled: the caller's call request_id stops waiting */
void am_mcp_cancel(am_mcp *m, const char *caller, json_t *request_id);
/* at stop: every stream call ended, and waited for */
void am_mcp_streams_stop(am_mcp *m);

/* mcp_watch.c: a 2025-era session's GET stream (AM_EEXIST when it has
 * one); a 2026-07-28 subscriptions/listen stream for request id with its
 * filter; a session's resources/subscribe (on) or unsubscribe; a
 * listen's notifications/cancelled (true when it was one); a session's
 * end; and at stop, every stream ended (listens with their result) */
int am_mcp_watch_session(am_mcp *m, am_http_ex *ex, const char *session) AM_MUST_CHECK;
int am_mcp_watch_listen(am_mcp *m, am_http_ex *ex, json_t *id, json_t *filter, const char *caller) AM_MUST_CHECK;
int am_mcp_subscribe(am_mcp *m, const char *session, const char *uri, bool on) AM_MUST_CHECK;
bool am_mcp_watch_cancel(am_mcp *m, const char *caller, json_t *request_id);
void am_mcp_session_ended(am_mcp *m, const char *session);
void am_mcp_watch_stop(am_mcp *m);

#endif
