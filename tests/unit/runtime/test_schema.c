/*
 * test_schema.c — the argument check of tool calls: each keyword of the
 * subset accepts what it should and refuses what it should, naming the
 * path; unknown keywords constrain nothing.
 */
#include "am_runtime.h"
#include "../../check.h"

#include <jansson.h>
#include <string.h>

static int
run(const char *schema, const char *value, char *why)
{
	json_t *s = json_loads(schema, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
	int rc;

	REQUIRE(s != NULL && v != NULL);
	rc = am_schema_check(s, v, why, 300);
	json_decref(s);
	json_decref(v);
	return rc;
}

int
main(void)
{
	char why[300];
	const char *obj = "{\"type\":\"object\",\"required\":[\"a\"],\"additionalProperties\":false,"
	                  "\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5},"
	                  "\"b\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\",\"maxLength\":4},"
	                  "\"c\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]},\"maxItems\":2},"
	                  "\"d\":{\"type\":[\"string\",\"null\"]},\"e\":{\"const\":true},"
	                  "\"f\":{\"type\":\"object\",\"properties\":{\"g\":{\"type\":\"number\"}}}}}";

	CHECK_RC(run(obj, "{\"a\":3,\"b\":\"abc\",\"c\":[\"x\"],\"d\":null,\"e\":true,\"f\":{\"g\":1.5}}", why), 0);
	CHECK_RC(run(obj, "{\"a\":3.0}", why), 0); /* 3.0 is an integer */
	CHECK_RC(run(obj, "{}", why), AM_EFIELD);
	CHECK(strcmp(why, "$.a: is required") == 0);
	CHECK_RC(run(obj, "{\"a\":9}", why), AM_EFIELD);
	CHECK(strstr(why, "$.a: is above the maximum") != NULL);
	CHECK_RC(run(obj, "{\"a\":0}", why), AM_EFIELD);
	CHECK_RC(run(obj, "{\"a\":2.5}", why), AM_EFIELD);
	CHECK(strstr(why, "$.a: must be of type") != NULL);
	CHECK_RC(run(obj, "{\"a\":1,\"b\":\"ABC\"}", why), AM_EFIELD);
	CHECK(strstr(why, "$.b: does not match") != NULL);
	CHECK_RC(run(obj, "{\"a\":1,\"b\":\"abcde\"}", why), AM_EFIELD);
	CHECK(strstr(why, "too long") != NULL);
	CHECK_RC(run(obj, "{\"a\":1,\"c\":[\"x\",\"z\"]}", why), AM_EFIELD);
	CHECK(strstr(why, "$.c[1]: must be one of") != NULL);
	CHECK_RC(run(obj, "{\"a\":1,\"c\":[\"x\",\"y\",\"x\"]}", why), AM_EFIELD);
	CHECK_RC(run(obj, "{\"a\":1,\"d\":3}", why), AM_EFIELD);
	CHECK_RC(run(obj, "{\"a\":1,\"e\":false}", why), AM_EFIELD);
	CHECK_RC(run(obj, "{\"a\":1,\"f\":{\"g\":\"x\"}}", why), AM_EFIELD);
	CHECK(strstr(why, "$.f.g: must be of type") != NULL);
	CHECK_RC(run(obj, "{\"a\":1,\"zz\":1}", why), AM_EFIELD);
	CHECK(strstr(why, "$.zz: is not an argument") != NULL);
	CHECK_RC(run(obj, "[1]", why), AM_EFIELD);
	/* keywords outside the subset constrain nothing */
	CHECK_RC(run("{\"type\":\"string\",\"format\":\"email\"}", "\"not an email\"", why), 0);
	/* multibyte strings count characters, not bytes */
	CHECK_RC(run("{\"type\":\"string\",\"maxLength\":2}", "\"\\u00e9\\u00e9\"", why), 0);
	/* no schema at all: anything goes */
	{
		json_t *empty = json_object();
		CHECK_RC(am_schema_check(NULL, empty, why, sizeof(why)), 0);
		json_decref(empty);
	}
	return check_done("test_schema");
}
