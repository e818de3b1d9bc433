/*
 * am_runtime.h — the public contract of src/runtime: the daemon both
 * roles run (configure, open, run, close), with the role's features
 * registered into it (am_feature; src/gateway and src/node each give
 * theirs), and the tool_call payload both roles read or write. The
 * layers below each have their own header, included here: am_net.h
 * (links, hub, discovery), am_stick.h (sticks and bundle files),
 * am_trust.h (TOFU, PKI, audit), am_api.h (HTTP and the messages API).
 */
#ifndef AM_RUNTIME_H
#define AM_RUNTIME_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"
#include "am_net.h"
#include "am_stick.h"
#include "am_trust.h"
#include "am_api.h"

#include <stdatomic.h>

struct json_t; /* jansson's */

/* ---------------------------------------------------------- tool calls --- */

/* A tool_call envelope's payload (calls.c, PROTOCOL.md section 19). */
typedef struct am_tool_call {
	char tool[AM_TAG_MAX + 1];
	struct json_t *args;          /* an object (owned) */
	char *grant;                  /* the call grant that allows it (owned) */
	char workflow_id[AM_TAG_MAX + 1];
	uint64_t deadline_ms;
} am_tool_call;
/* Errors: AM_EMALFORMED, AM_EFIELD (named), AM_ETOOBIG. */
int am_tool_call_parse(am_tool_call *c, const uint8_t *payload, size_t len) AM_MUST_CHECK;
void am_tool_call_clear(am_tool_call *c);
/* the payload (malloc'd JSON text) */
char *am_tool_call_encode(const char *tool, const struct json_t *args, const char *grant, const char *workflow_id,
    uint64_t deadline_ms);

/* am_join_answer_parse: a development gateway's answer to GET /v1/join
 * (daemon_first.c; OPERATIONS "Development"): {"network_key": 64 hex,
 * "gateway_key": node id, "link": ws:// tcp:// or ipc:// URL, "name"}.
 * Errors: AM_EMALFORMED (not a JSON object), AM_EFIELD (named); key is
 * zeroed on error. */
int am_join_answer_parse(const char *text, size_t len, uint8_t key[32], uint8_t gateway_pk[AM_PK_BYTES], char link[128])
    AM_MUST_CHECK;

/* ------------------------------------------------------------- daemon --- */

/* What a feature is given of its daemon, at open; valid until its close. */
typedef struct am_daemon_view {
	const char *prog;          /* for messages: "agent-mesh-node" */
	const char *data_dir;
	const char *host;          /* where the HTTP API listens */
	int mcp_port;              /* --mcp-port (0: none) */
	const char *shared_state;  /* --shared-state / SHARED_STATE (gateway; NULL: none) */
	am_queue *q;
	const am_identity *me;
	const am_peer_info *self;  /* name, role, and (PKI) our certificate */
	am_hub *hub;
	am_audit *audit;
	am_trust *trust;           /* TOFU pins (a gateway pair shares them) */
	am_api *api;               /* the token checks; api->trusted: the gateway keys */
	am_http_server *http;      /* the daemon's HTTP server: add routes at open */
	bool pki;                  /* trust mode pki: certificates, not TOFU */
	/* answers signed by a key that may not give them, for the metrics
	 * (am_answers_refused_total{kind="tool_result"}) */
	_Atomic uint64_t *results_refused;
} am_daemon_view;

/* What on_envelope did with an inbox entry. */
typedef enum {
	AM_FEATURE_DONE,  /* handled: the dispatcher acknowledges it */
	AM_FEATURE_TAKEN, /* taken (*raw set to NULL): the feature acknowledges it later */
	AM_FEATURE_LEFT   /* not now: left in the inbox, looked at again after a restart */
} am_feature_take;

/* A role's feature: hooks the daemon calls, each optional (NULL). The
 * daemon knows nothing of what a feature does; a role is its list. */
typedef struct am_feature {
	const char *name;
	/* --check-config: 0 and a few words for its line ("4 tools"), or an
	 * error (printed, the exit status 2) */
	int (*check)(const char *data_dir, char *summary, size_t cap);
	/* open: after the store, trust and audit, before the HTTP server
	 * serves; routes are added here. Errors are printed by the daemon
	 * (with am_error_detail) and it exits 1. */
	int (*open)(void **state, const am_daemon_view *d);
	/* the envelope types this feature takes out of the inbox (NULL
	 * ended), handed over one at a time on the dispatcher's thread */
	const char *const *types;
	am_feature_take (*on_envelope)(void *state, const am_envelope *env, const uint8_t id[AM_ID_BYTES], uint8_t **raw,
	    size_t len);
	void (*tick)(void *state, uint64_t now_ms); /* on the dispatcher's thread, at least every 200 ms */
	/* mesh_scan, once it is built (each entry's "tools" is [] until a
	 * feature says): add to our own entry and to the peers' (an array of
	 * objects with "id") */
	void (*scan)(void *state, struct json_t *self, struct json_t *peers);
	/* /health, once it is built: add what the feature knows (the shared state) */
	void (*health)(void *state, struct json_t *h);
	/* a server of its own, counted in the metrics under name ("mcp") */
	am_http_server *(*server)(void *state, const char **name);
	/* stop: end its threads and answer what waits (the HTTP server may
	 * still call its routes); close: free (no route is called after) */
	void (*stop)(void *state);
	void (*close)(void *state);
} am_feature;

/* shared_url.c: a --shared-state URL, redis://[user:pass@]host:port[/db]
 * (port 6379 and db 0 when not given); errors name what is wrong */
typedef struct {
	char host[256];
	int port, db;
	char user[128], pass[256];
	char shown[300]; /* for logs and /health: no password */
} am_shared_url;
int am_shared_url_parse(am_shared_url *u, const char *text) AM_MUST_CHECK;

/* A role: what agent-mesh-gateway and agent-mesh-node each run. */
typedef struct am_role {
	bool gateway;
	const am_feature *const *features;
	size_t nfeatures;
} am_role;

/* am_daemon_main: the whole daemon (daemon.c) of a role. Returns the exit
 * status. */
int am_daemon_main(const am_role *role, int argc, char **argv);

#endif /* AM_RUNTIME_H */
