/*
 * http_env.h — what the HTTP-body fuzz targets share: a real API (store,
 * identity, jobs, tools folder) under a scratch folder, its routes on an
 * HTTP server that takes no connections, and one request through it with
 * the development token. The answer is checked: a status, and a JSON body
 * (or none for 202/204), an "error" in every 4xx/5xx of the REST routes.
 */
#ifndef AM_FUZZ_HTTP_ENV_H
#define AM_FUZZ_HTTP_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* POST uri with body (the MCP route when mcp); aborts on a broken answer */
void http_env_post(const char *uri, const void *body, size_t len, bool mcp);

#endif
