/*
 * http_env.c — the fuzz targets' API (see http_env.h). Rebuilt from an
 * empty folder every RESET_EVERY requests, so a long run's stored
 * envelopes and jobs stay small.
 */
#define _GNU_SOURCE
#include "http_env.h"
#include "am_gateway.h"

#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESET_EVERY 400
#define DEV_TOKEN "fuzz0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

static struct {
	char dir[64];
	am_queue *q;
	am_identity *me;
	am_jobs *jobs;
	am_api api;
	am_calls calls;
	am_http_server *http;
	am_mcp *mcp;
	unsigned used;
} E;

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void) st;
	(void) flag;
	(void) f;
	return remove(p);
}

static void
env_down(void)
{
	am_mcp_stop(E.mcp);
	am_http_server_free(E.http);
	am_jobs_close(E.jobs);
	am_queue_close(E.q);
	am_identity_free(E.me);
	if (E.dir[0])
		(void) nftw(E.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	memset(&E, 0, sizeof(E));
}

static void
env_up(void)
{
	am_queue_options o = {.create = true, .map_size = 256u << 20};
	char sub[128];

	snprintf(E.dir, sizeof(E.dir), "/tmp/am-fuzz-http-XXXXXX");
	if (am_core_init() != 0 || mkdtemp(E.dir) == NULL)
		abort();
	snprintf(sub, sizeof(sub), "%s/jobs", E.dir);
	if (am_identity_generate(&E.me) != 0 || am_queue_open(&E.q, E.dir, &o) != 0 ||
	    am_queue_set_self(E.q, am_identity_pk(E.me)) != 0 || am_jobs_open(&E.jobs, sub) != 0)
		abort();
	E.api.q = E.q;
	E.api.me = E.me;
	snprintf(E.api.token, sizeof(E.api.token), "%s", DEV_TOKEN);
	memcpy(E.api.trusted, am_identity_pk(E.me), AM_PK_BYTES);
	E.api.ntrusted = 1;
	E.api.data_dir = E.dir;
	E.api.name = "fuzz";
	E.calls = (am_calls){&E.api, E.jobs};
	am_http_limits lim;
	if (am_http_limits_from_env(&lim) != 0 || am_http_server_new(&E.http, "HTTP", "127.0.0.1", 0, &lim) != 0 ||
	    am_api_register(E.http, &E.api) != 0 || am_toolapi_register(E.http, &E.calls) != 0 ||
	    am_mcp_open(&E.mcp, &E.calls, "127.0.0.1", 0) != 0)
		abort();
}

/* a call waiting for its result: its deadline passes now */
static void
time_passes(void *ctx)
{
	(void) ctx;
	am_jobs_tick(E.jobs, UINT64_MAX / 2);
}

void
http_env_post(const char *uri, const void *body, size_t len, bool mcp)
{
	static bool registered;
	const char *const headers[] = {"Authorization", "Bearer " DEV_TOKEN, "Content-Type", "application/json", "Accept",
	    "application/json, text/event-stream", NULL};
	unsigned status;
	char *reply = NULL;
	size_t rlen;
	json_t *j = NULL;

	if (!registered) {
		atexit(env_down);
		registered = true;
	}
	if (E.used++ % RESET_EVERY == 0) {
		env_down();
		env_up();
		E.used = 1;
	}
	if (am_http_local(mcp ? am_mcp_http(E.mcp) : E.http, "POST", uri, headers, body, len, time_passes, NULL, &status,
	        &reply, &rlen) != 0)
		abort();
	if (getenv("AM_FUZZ_VERBOSE") != NULL) /* what each corpus input gets */
		fprintf(stderr, "%s %u %.*s\n", uri, status, (int) (rlen > 300 ? 300 : rlen), reply ? reply : "");
	if (status < 200 || status > 599)
		abort();
	if (rlen == 0) {
		if (status != 202 && status != 204 && status != 413)
			abort(); /* every answer with something to say is JSON */
	} else {
		json_error_t je;
		if ((j = json_loadb(reply, rlen, 0, &je)) == NULL)
			abort();
		if (!mcp && status >= 400 && !json_is_string(json_object_get(j, "error")))
			abort();
		if (mcp && !json_is_object(j) && !json_is_array(j))
			abort();
	}
	json_decref(j);
	free(reply);
}
