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
	/* a pair: results for a job neither this gateway nor Redis knows yet
	 * (the other gateway's call, its job not yet in Redis: Redis down,
	 * or the node quicker than the write), held and tried again each
	 * tick; each is acknowledged in the inbox once taken, or after
	 * ORPHAN_GRACE_MS as not ours (gateway.c) */
	struct orphan {
		uint8_t id[AM_ID_BYTES];
		uint8_t *raw;
		size_t len;
		uint64_t since_ms;
	} orphans[256];
	size_t norphans;
	char catalogs[4096];      /* DATA/catalogs */
};

/* answers.c: a tool_result to its job (or refused and audited), a
 * tool_catalog kept */
void am_gateway_take_result(struct gateway *g, const am_envelope *env);
void am_gateway_take_catalog(struct gateway *g, const am_envelope *env);

#endif
