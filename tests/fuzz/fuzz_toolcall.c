/*
 * fuzz_toolcall.c — libFuzzer target for the tool-call decoder (the
 * payload of a tool_call envelope) and the argument check against a tool's
 * schema: what decodes is checked against a schema using every keyword
 * the checker knows.
 */
#include "am_node.h"

#include <jansson.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *schema;
	am_tool_call c;
	char why[300];

	if (schema == NULL)
		schema = json_loads("{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"a\"],"
		                    "\"properties\":{\"a\":{\"type\":[\"string\",\"integer\"],\"maxLength\":8,\"minLength\":1,"
		                    "\"pattern\":\"^[a-z0-9]+$\",\"minimum\":0,\"maximum\":9},\"b\":{\"type\":\"array\","
		                    "\"items\":{\"enum\":[1,2,\"x\"]},\"maxItems\":3,\"minItems\":1},\"c\":{\"const\":true},"
		                    "\"d\":{\"type\":\"object\",\"properties\":{\"e\":{\"type\":\"number\"}}}}}",
		    0, NULL);
	if (am_tool_call_parse(&c, data, size) == 0) {
		if (c.args == NULL || c.grant == NULL || c.tool[0] == '\0')
			abort();
		(void) am_schema_check(schema, c.args, why, sizeof(why));
		am_tool_call_clear(&c);
	}
	return 0;
}
