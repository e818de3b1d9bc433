/*
 * http.c — answering an nng HTTP request: the one place the daemons'
 * handlers (status, messages, tools, MCP) build a response, and read a
 * query parameter.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
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
	} else {
		/* or a client waits for the connection to close to find the end */
		nng_http_res_set_header(res, "Content-Length", "0");
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

/* The value of query parameter name in uri ("...?a=1&name=v&..."), as
 * it stands (no percent-decoding: every value our routes take, ids,
 * numbers and tags, is plain ASCII), copied into out; false when absent
 * or longer than cap - 1. Matches whole names only. */
bool
am_http_query(const char *uri, const char *name, char *out, size_t cap)
{
	const char *q = strchr(uri, '?');
	size_t nl = strlen(name);

	if (q == NULL || cap == 0)
		return false;
	for (const char *p = q + 1; *p != '\0';) {
		size_t len = strcspn(p, "&");
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			if (len - nl - 1 >= cap)
				return false;
			memcpy(out, p + nl + 1, len - nl - 1);
			out[len - nl - 1] = '\0';
			return true;
		}
		p += len + (p[len] == '&');
	}
	return false;
}

/* The request's body as JSON, or NULL with why in err: "empty body", or
 * where the JSON is bad. */
json_t *
am_http_json_body(nng_http_req *req, char *err, size_t cap)
{
	void *body = NULL;
	size_t blen = 0;
	json_error_t jerr;
	json_t *j;

	nng_http_req_get_data(req, &body, &blen);
	if (body == NULL || blen == 0) {
		snprintf(err, cap, "empty body: send a JSON object");
		return NULL;
	}
	if ((j = json_loadb(body, blen, 0, &jerr)) == NULL)
		snprintf(err, cap, "bad JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	return j;
}
