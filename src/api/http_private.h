/*
 * http_private.h — what the HTTP server's files share: one exchange (a
 * request and the answer to it), the connection slots the acceptor keeps,
 * and the server. Not for handlers: they see am_http_ex through the
 * functions in am_api.h.
 */
#ifndef AM_HTTP_PRIVATE_H
#define AM_HTTP_PRIVATE_H

#include "am_api.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct am_http_route {
	char method[8];
	char path[64];
	bool tree;              /* path and everything under it */
	size_t body_max;        /* 0: the route takes no body */
	am_http_fn pre, fn;
	void *data;
};

/* where a connection is: the acceptor's sweeper closes one that stays
 * too long in a phase with a deadline */
enum am_http_phase {
	AM_HTTP_HEAD,      /* connected, or answered; no complete request head yet */
	AM_HTTP_BODY,      /* head read; the body is coming */
	AM_HTTP_HANDLING,  /* a handler has it (may wait: long-polls, tool calls) */
	AM_HTTP_UPGRADED,  /* relayed to the link listener */
	AM_HTTP_CLOSING,   /* shut down by us; MHD will close it */
};

struct am_http_slot {
	bool used;
	int fd;                 /* MHD's */
	int ctl;                /* our dup of it: shutdown() from here is safe
	                         * however late MHD closes its own */
	struct MHD_Connection *conn;
	char addr[64];          /* the peer's address, no port */
	uint64_t since_ms;      /* when this phase began */
	enum am_http_phase phase;
	bool served;            /* answered a request: the next head may wait
	                         * for the keep-alive time, not the header time */
	char *uri;              /* the current request's target, as sent */
};

struct am_http_ex {
	struct am_http_server *srv;
	struct MHD_Connection *conn;
	const struct am_http_route *route;
	char *uri;
	char method[16];
	bool started, refused;
	char *body;
	size_t blen, bcap, reserved;
	/* the answer: set once, from the handler's thread or a later one */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool answered;
	unsigned status;
	char *abody;
	size_t alen;
	char type[48], session[48], allow[48];
	struct MHD_Response *upgrade; /* a relayed websocket's 101 */
	am_http_stream *stream;       /* an answer whose body follows (http_stream.c) */
	bool stream_queued;           /* libmicrohttpd holds the stream's other reference */
	const char *const *local_headers; /* am_http_local: name, value, ..., NULL */
};

struct am_http_server {
	char name[32];          /* "HTTP" or "MCP", for the log */
	char where[96];
	int lfd;                /* the listening socket */
	int wake[2];
	struct MHD_Daemon *d;
	pthread_t acceptor;
	bool accepting;
	atomic_bool stop;
	am_http_limits lim;
	struct am_http_route routes[32];
	size_t nroutes;
	void *data;             /* the server's (am_http_server_set_data) */
	pthread_mutex_t mu;
	struct am_http_slot *slots;
	size_t nslots;          /* lim.max_connections + slack for closing ones */
	atomic_size_t body_bytes; /* held for bodies now, over all requests */
	atomic_uint_fast64_t refused[AM_HTTP_REFUSED_KINDS];
	uint64_t logged_ms, logged[AM_HTTP_REFUSED_KINDS]; /* what the last log line counted */
	/* the websocket relay (http_relay.c) */
	char relay_path[64];
	atomic_int relay_port;  /* the loopback link listener; 0: not yet */
	atomic_int relays;      /* relayed connections open now */
};

/* http_server.c for http_relay.c and http_local.c */
const struct am_http_route *am_http_route_find(const struct am_http_server *srv, const char *method, const char *path,
    char *allow, size_t cap);
void am_http_ex_free(am_http_ex *ex);
/* http_accept.c for http_server.c: the acceptor thread (arg: the server) */
void *am_http_acceptor(void *arg);
void am_http_slot_phase(struct am_http_server *srv, struct MHD_Connection *c, enum am_http_phase ph);
bool am_http_relay_answer(am_http_ex *ex);
void am_http_relay_stop(struct am_http_server *srv);

/* http_stream.c: the response that reads s (NULL when out of memory,
 * the reference then dropped); the release of libmicrohttpd's reference */
struct MHD_Response *am_http_stream_response(am_http_stream *s);
void am_http_stream_released(void *s);

#endif
