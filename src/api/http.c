/*
 * http.c — the answers the daemons' handlers (status, messages, tools,
 * MCP) give, their query parameters and JSON bodies.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
am_http_reply(am_http_ex *ex, uint16_t status, const char *type, const char *body, const char *session)
{
	am_http_answer(ex, status, type, body, body != NULL ? strlen(body) : 0, session, NULL);
}

void
am_http_reply_json_session(am_http_ex *ex, uint16_t status, json_t *j, const char *session)
{
	char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (j != NULL && body == NULL) {
		am_http_reply(ex, 500, "application/json", "{\"error\":\"out of memory\"}", NULL);
		return;
	}
	am_http_reply(ex, status, "application/json", body, session);
	free(body);
}

void
am_http_reply_json(am_http_ex *ex, uint16_t status, json_t *j)
{
	am_http_reply_json_session(ex, status, j, NULL);
}

void
am_http_reply_error(am_http_ex *ex, uint16_t status, const char *msg)
{
	am_http_reply_json(ex, status, json_pack("{s:o}", "error", am_json_text(msg)));
}

/* msg as a JSON string. Messages quote what a client sent, cut to fit a
 * buffer, so they may hold invalid UTF-8 (jansson refuses it, and the
 * answer would have been empty): such bytes become '?'. */
json_t *
am_json_text(const char *msg)
{
	json_t *s = json_string(msg);
	if (s != NULL)
		return s;
	char *copy = strdup(msg ? msg : "");
	if (copy == NULL)
		return json_string("out of memory");
	for (char *p = copy; *p; p++)
		if ((unsigned char) *p >= 0x80)
			*p = '?';
	s = json_string(copy);
	free(copy);
	return s;
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
am_http_json_body(am_http_ex *ex, char *err, size_t cap)
{
	size_t blen = 0;
	const void *body = am_http_body(ex, &blen);
	json_error_t jerr;
	json_t *j;

	if (body == NULL || blen == 0) {
		snprintf(err, cap, "empty body: send a JSON object");
		return NULL;
	}
	if ((j = json_loadb(body, blen, 0, &jerr)) == NULL)
		snprintf(err, cap, "bad JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	return j;
}
