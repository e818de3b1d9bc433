/*
 * mcp_resources.c — the MCP server's resources: the inbox, mesh_scan and
 * each job, listed (100 jobs a page) and read under the rights of the
 * tools that show the same (watching them is mcp_watch.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "mcp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define rpc_error am_mcp_rpc_error
#define rpc_result(id, r) am_mcp_rpc_result((id), (r), false)

static const char *
str_or(const char *s, const char *otherwise)
{
	return s != NULL ? s : otherwise;
}

/* the right a resource takes to read or watch; NULL: not one of ours */
const char *
am_mcp_resource_right(const char *uri)
{
	if (strcmp(uri, AM_MCP_INBOX_URI) == 0)
		return "read:inbox";
	if (strcmp(uri, AM_MCP_SCAN_URI) == 0)
		return "scan";
	if (strncmp(uri, AM_MCP_JOB_URI, strlen(AM_MCP_JOB_URI)) == 0 && strlen(uri + strlen(AM_MCP_JOB_URI)) == AM_ID_HEX_LEN)
		return "read:jobs";
	return NULL;
}

static json_t *
resource_entry(const char *uri, const char *name, const char *title, const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name, "title", title, "description", desc,
	    "mimeType", "application/json");
}

/* the inbox and the scan first, then the jobs, 100 a page (the cursor
 * is the last job id given) */
json_t *
am_mcp_resources_list(am_mcp *m, json_t *id, json_t *params)
{
	const char *cursor = json_string_value(json_object_get(params, "cursor"));
	char next[AM_ID_HEX_LEN + 1];
	json_t *out = json_array(), *job;
	size_t i;

	if (json_object_get(params, "cursor") != NULL && (cursor == NULL || strlen(cursor) != AM_ID_HEX_LEN)) {
		json_decref(out);
		return rpc_error(id, -32602, "params.cursor: not a cursor this server gave");
	}
	if (cursor == NULL) {
		json_array_append_new(out, resource_entry(AM_MCP_INBOX_URI, "inbox", "Inbox",
		    "Messages that arrived for this gateway, oldest first (up to 100)"));
		json_array_append_new(out, resource_entry(AM_MCP_SCAN_URI, "mesh_scan", "Mesh scan",
		    "Every node's tool catalog known here"));
	}
	json_t *jobs = am_jobs_list(m->calls->jobs, NULL, cursor, 100, next);
	json_array_foreach(jobs, i, job) {
		const char *jid = json_string_value(json_object_get(job, "job_id"));
		char uri[160], desc[200];
		if (jid == NULL)
			continue;
		snprintf(uri, sizeof(uri), "%s%s", AM_MCP_JOB_URI, jid);
		snprintf(desc, sizeof(desc), "tool call %s: %s", str_or(json_string_value(json_object_get(job, "tool")), "?"),
		    str_or(json_string_value(json_object_get(job, "status")), "?"));
		json_array_append_new(out, resource_entry(uri, jid, "Job", desc));
	}
	json_decref(jobs);
	json_t *res = json_pack("{s:o}", "resources", out);
	if (next[0])
		json_object_set_new(res, "nextCursor", json_string(next));
	return rpc_result(id, res);
}

json_t *
am_mcp_resources_read(am_mcp *m, am_api_auth *a, json_t *id, json_t *params, bool modern)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	const char *right = uri != NULL ? am_mcp_resource_right(uri) : NULL;
	json_t *body = NULL;

	if (uri == NULL)
		return rpc_error(id, -32602, "params.uri is required");
	if (right != NULL && am_api_auth_allow(m->api, a, right, NULL) != 0)
		return rpc_error(id, -32001, am_error_detail());
	if (right == NULL) {
		body = NULL;
	} else if (strcmp(uri, AM_MCP_INBOX_URI) == 0) {
		body = json_pack("{s:o}", "messages", am_mcp_inbox_messages(m));
	} else if (strcmp(uri, AM_MCP_SCAN_URI) == 0) {
		body = json_pack("{s:o}", "catalogs", am_catalogs_load(m->api->data_dir));
	} else {
		body = am_jobs_get(m->calls->jobs, uri + strlen(AM_MCP_JOB_URI));
	}
	if (body == NULL) {
		/* not found: -32002 for the 2025 revisions, -32602 for 2026-07-28; the uri in data either way */
		json_t *e = rpc_error(id, modern ? -32602 : -32002, "no such resource here");
		json_object_set_new(json_object_get(e, "error"), "data", json_pack("{s:s}", "uri", uri));
		return e;
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_t *r = rpc_result(id, json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType", "application/json",
	                               "text", text ? text : "null"));
	free(text);
	return r;
}

