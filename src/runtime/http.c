/*
 * http.c — answering an nng HTTP request: the one place the daemons'
 * handlers (status, messages, tools, MCP) build a response.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdlib.h>
#include <string.h>

void
am_http_reply(nng_aio *aio, uint16_t status, const char *type, const char *body, const char *session)
{
	nng_http_res *res = NULL;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	if (body != NULL) {
		nng_http_res_set_header(res, "Content-Type", type);
		nng_http_res_copy_data(res, body, strlen(body));
	}
	if (session != NULL)
		nng_http_res_set_header(res, "Mcp-Session-Id", session);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

void
am_http_reply_json_session(nng_aio *aio, uint16_t status, json_t *j, const char *session)
{
	char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	if (j != NULL && body == NULL) {
		json_decref(j);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	json_decref(j);
	am_http_reply(aio, status, "application/json", body, session);
	free(body);
}

void
am_http_reply_json(nng_aio *aio, uint16_t status, json_t *j)
{
	am_http_reply_json_session(aio, status, j, NULL);
}

void
am_http_reply_error(nng_aio *aio, uint16_t status, const char *msg)
{
	am_http_reply_json(aio, status, json_pack("{s:s}", "error", msg));
}
