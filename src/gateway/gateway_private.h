/*
 * gateway_private.h — private to src/gateway: the feature's state, shared
 * by gateway.c (its hooks) and answers.c (what comes back).
 */
#ifndef AM_GATEWAY_PRIVATE_H
#define AM_GATEWAY_PRIVATE_H

#include "am_gateway.h"

struct gateway {
	const am_daemon_view *d;
	am_jobs *jobs;
	am_calls calls;           /* {d->api, jobs}: the routes' data */
	am_mcp *mcp;              /* --mcp-port, else NULL */
	am_shared *shared;        /* --shared-state, else NULL */
	char catalogs[4096];      /* DATA/catalogs */
};

/* answers.c: a tool_result to its job (or refused and audited), a
 * tool_catalog kept */
void am_gateway_take_result(struct gateway *g, const am_envelope *env);
void am_gateway_take_catalog(struct gateway *g, const am_envelope *env);

#endif
