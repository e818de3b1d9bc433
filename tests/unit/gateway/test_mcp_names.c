/*
 * test_mcp_names.c — MCP tool names for node tools, through the real MCP
 * route (am_http_local) over catalogs written to a real data folder:
 * every name fits ^[a-zA-Z0-9_-]{1,64}$, a plain "<node>__<tool>" where it
 * is unique, a hashed one where two tools would share a name (crane.1 and
 * crane-1) or it would pass 64 characters, and a call by a hashed name
 * reaches the right node. On 944d5ec names were "<node>/<tool>".
 */
#define _GNU_SOURCE
#include "am_gateway.h"
#include "../../check.h"

#include <jansson.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKEN "names0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

static char dir[64];

static void
catalog(const char *node_id, const char *node_name, const char *tool)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/catalogs/%s.json", dir, node_id);
	REQUIRE((f = fopen(path, "w")) != NULL);
	fprintf(f, "{\"node_name\": \"%s\", \"tools\": [{\"name\": \"%s\", \"description\": \"d\"}]}", node_name, tool);
	fclose(f);
}

static am_jobs *jobs;
static am_calls calls;

/* a deferred call: its deadline passes now */
static void
time_passes(void *ctx)
{
	(void) ctx;
	am_jobs_tick(jobs, UINT64_MAX / 2);
}

static json_t *
rpc(am_mcp *m, const char *body)
{
	const char *const headers[] = {"Authorization", "Bearer " TOKEN, NULL};
	unsigned status = 0;
	char *reply = NULL;
	size_t len = 0;
	json_t *j;

	REQUIRE(am_http_local(am_mcp_http(m), "POST", "/mcp", headers, body, strlen(body), time_passes, NULL, &status, &reply,
	            &len) == 0);
	REQUIRE(status == 200 && reply != NULL);
	j = json_loadb(reply, len, 0, NULL);
	free(reply);
	REQUIRE(j != NULL);
	return j;
}

int
main(void)
{
	am_queue_options o = {.create = true, .map_size = 64u << 20};
	am_identity *me = NULL;
	am_queue *q = NULL;
	am_api api = {0};
	am_mcp *m = NULL;
	char sub[128];
	char a[AM_NODE_ID_LEN + 1], b[AM_NODE_ID_LEN + 1], c[AM_NODE_ID_LEN + 1], d[AM_NODE_ID_LEN + 1];
	char *ids[] = {a, b, c, d};
	regex_t ok;

	REQUIRE(am_core_init() == 0);
	for (size_t k = 0; k < 4; k++) { /* real keys: a call resolves them */
		am_identity *x = NULL;
		REQUIRE(am_identity_generate(&x) == 0);
		am_node_id_format(ids[k], am_identity_pk(x));
		am_identity_free(x);
	}
	snprintf(dir, sizeof(dir), "/tmp/am-test-mcpnames-XXXXXX");
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(sub, sizeof(sub), "%s/catalogs", dir);
	REQUIRE(mkdir(sub, 0700) == 0);
	snprintf(sub, sizeof(sub), "%s/jobs", dir);
	REQUIRE(am_identity_generate(&me) == 0 && am_queue_open(&q, dir, &o) == 0 && am_jobs_open(&jobs, sub) == 0);
	catalog(a, "crane-1", "echo");
	catalog(b, "crane.1", "echo");
	catalog(c, "yard:north", "read.temp");
	catalog(d, "a-node-with-a-name-of-forty-characters-x", "and_a_tool_name_that_is_long");
	api.q = q;
	api.me = me;
	snprintf(api.token, sizeof(api.token), "%s", TOKEN);
	api.data_dir = dir;
	calls = (am_calls){&api, jobs};
	REQUIRE(am_mcp_open(&m, &calls, "127.0.0.1", 0) == 0);
	REQUIRE(regcomp(&ok, "^[a-zA-Z0-9_-]{1,64}$", REG_EXTENDED | REG_NOSUB) == 0);

	json_t *r = rpc(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"), *t;
	json_t *tools = json_object_get(json_object_get(r, "result"), "tools");
	size_t i;
	char crane_a[80] = "", crane_b[80] = "";
	bool yard = false, longname = false;
	CHECK(json_array_size(tools) == 8); /* 4 built-ins, 4 node tools */
	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *nid = json_string_value(json_object_get(json_object_get(t, "_meta"), "agent-mesh/node_id"));
		CHECK(name != NULL && regexec(&ok, name, 0, NULL, 0) == 0);
		if (name == NULL || nid == NULL)
			continue;
		if (strcmp(nid, a) == 0)
			snprintf(crane_a, sizeof(crane_a), "%s", name);
		if (strcmp(nid, b) == 0)
			snprintf(crane_b, sizeof(crane_b), "%s", name);
		yard |= strcmp(nid, c) == 0 && strcmp(name, "yard-north__read-temp") == 0;
		longname |= strcmp(nid, d) == 0 && strlen(name) == 64 &&
		            strncmp(name, "a-node-with-a-name-of-forty-characters-x__and_a_tool_", 53) == 0;
	}
	/* crane-1 and crane.1 would both be crane-1__echo: each is hashed */
	CHECK(strncmp(crane_a, "crane-1__echo_", 14) == 0 && strlen(crane_a) == 22);
	CHECK(strncmp(crane_b, "crane-1__echo_", 14) == 0 && strlen(crane_b) == 22);
	CHECK(strcmp(crane_a, crane_b) != 0);
	CHECK(yard);     /* unique: plain, with '.' and ':' as '-' */
	CHECK(longname); /* past 64: cut and hashed */
	if (!yard || !longname || !crane_a[0])
		fprintf(stderr, "tools/list said: %s\n", json_dumps(tools, JSON_COMPACT));
	json_decref(r);

	/* a call by the hashed name goes to crane.1: its job's target is it */
	char body[300];
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\"}}",
	    crane_b);
	r = rpc(m, body);
	const char *job = json_string_value(
	    json_object_get(json_object_get(json_object_get(r, "result"), "structuredContent"), "job_id"));
	json_t *jo = job != NULL ? am_jobs_get(jobs, job) : NULL;
	const char *target = json_string_value(json_object_get(jo, "target"));
	CHECK(target != NULL && (strstr(target, b) != NULL || strstr(target, "crane.1") != NULL));
	if (target == NULL || (strstr(target, b) == NULL && strstr(target, "crane.1") == NULL))
		fprintf(stderr, "tools/call said: %s; job %s\n", json_dumps(r, JSON_COMPACT), json_dumps(jo, JSON_COMPACT));
	json_decref(jo);
	json_decref(r);
	/* a name nobody has: an error naming the convention */
	r = rpc(m, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"nobody__echo\"}}");
	CHECK(json_integer_value(json_object_get(json_object_get(r, "error"), "code")) == -32602);
	json_decref(r);

	regfree(&ok);
	am_mcp_stop(m);
	am_jobs_close(jobs);
	am_queue_close(q);
	am_identity_free(me);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void) !system(cmd);
	}
	return check_done("test_mcp_names");
}
