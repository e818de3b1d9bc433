/*
 * calls.c — the payload of a tool_call envelope (JSON, PROTOCOL.md
 * section 19):
 *   {"tool": "read_sensor", "args": {...}, "grant": "amg1...",
 *    "workflow_id": "...", "deadline_ms": 1795863275309}
 * The grant is the caller's authority narrowed to this one call and
 * bound to the key that signed the envelope (am_token_bind); a bearer
 * token ("token") in a call is refused: it would hand the caller's
 * rights to every carrier.
 * Decoded strictly: every field checked, a name for what is wrong.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CALL_MAX (AM_MAX_PAYLOAD)

void
am_tool_call_clear(am_tool_call *c)
{
	json_decref(c->args);
	free(c->grant);
	memset(c, 0, sizeof(*c));
}

int
am_tool_call_parse(am_tool_call *c, const uint8_t *payload, size_t len)
{
	json_error_t jerr;
	json_t *j, *v;
	const char *s;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (len > CALL_MAX)
		return am_error_set(AM_ETOOBIG, "tool call of %zu bytes", len);
	if ((j = json_loadb((const char *) payload, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return am_error_set(AM_EMALFORMED, "tool call: not JSON (%s)", jerr.text);
	if (!json_is_object(j)) {
		rc = am_error_set(AM_EMALFORMED, "tool call: not a JSON object");
		goto out;
	}
	if ((s = json_string_value(json_object_get(j, "tool"))) == NULL || am_tag_check("tool", s, strlen(s)) != 0) {
		rc = am_error_set(AM_EFIELD, "tool call: \"tool\" must be a tool name");
		goto out;
	}
	snprintf(c->tool, sizeof(c->tool), "%s", s);
	v = json_object_get(j, "args");
	if (v != NULL && !json_is_object(v)) {
		rc = am_error_set(AM_EFIELD, "tool call: \"args\" must be an object");
		goto out;
	}
	c->args = v ? json_incref(v) : json_object();
	if (json_object_get(j, "token") != NULL) {
		rc = am_error_set(AM_EFIELD, "tool call: it carries a bearer token (\"token\"), which any carrier could "
		                             "lift; calls carry a grant for that one call (is the gateway older?)");
		goto out;
	}
	if ((s = json_string_value(json_object_get(j, "grant"))) == NULL || strlen(s) > AM_TOKEN_MAX_TEXT + 8) {
		rc = am_error_set(AM_EFIELD, "tool call: \"grant\" (the authority for this call) is missing");
		goto out;
	}
	if ((c->grant = strdup(s)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	if ((v = json_object_get(j, "workflow_id")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) > AM_TAG_MAX) {
			rc = am_error_set(AM_EFIELD, "tool call: \"workflow_id\" must be a string of at most %d bytes", AM_TAG_MAX);
			goto out;
		}
		snprintf(c->workflow_id, sizeof(c->workflow_id), "%s", json_string_value(v));
	}
	if ((v = json_object_get(j, "deadline_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			rc = am_error_set(AM_EFIELD, "tool call: \"deadline_ms\" must be a time in ms");
			goto out;
		}
		c->deadline_ms = (uint64_t) json_integer_value(v);
	}
out:
	json_decref(j);
	if (rc != 0)
		am_tool_call_clear(c);
	return rc;
}

char *
am_tool_call_encode(const char *tool, const json_t *args, const char *grant, const char *workflow_id,
    uint64_t deadline_ms)
{
	json_t *j = json_pack("{s:s, s:o, s:s, s:I}", "tool", tool, "args", args ? json_incref((json_t *) args) : json_object(), "grant", grant,
	    "deadline_ms", (json_int_t) deadline_ms);
	char *text;

	if (j == NULL)
		return NULL;
	if (workflow_id != NULL && workflow_id[0])
		json_object_set_new(j, "workflow_id", json_string(workflow_id));
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}
