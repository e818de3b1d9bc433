/*
 * test_schema.c — the argument check of tool calls: each keyword of the
 * subset accepts what it should and refuses what it should, naming the
 * path; unknown keywords constrain nothing; "pattern" is ECMA-262 (what
 * MCP clients check the same schema with), and a tool file whose pattern
 * does not compile is refused at load, naming the file and the field.
 * The pattern checks failed on 944d5ec (POSIX ERE: "^\\d{4}$" refused
 * "2024" and took "dddd"; a bad pattern was ignored).
 */
#include "am_node.h"
#include "../../check.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* value (JSON text) against {"type":"string","pattern": pattern} */
static int
pat(const char *pattern, const char *value, char *why)
{
	json_t *s = json_pack("{s:s, s:s}", "type", "string", "pattern", pattern), *v = json_string(value);
	int rc;

	REQUIRE(s != NULL && v != NULL);
	rc = am_schema_check(s, v, why, 300);
	json_decref(s);
	json_decref(v);
	return rc;
}

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
	/* ECMA-262 patterns: the classes, as JavaScript reads them */
	CHECK_RC(pat("^\\d{4}$", "2024", why), 0);
	CHECK_RC(pat("^\\d{4}$", "dddd", why), AM_EFIELD);
	CHECK(strstr(why, "does not match") != NULL);
	CHECK_RC(pat("^\\d+$", "\xd9\xa3", why), AM_EFIELD); /* Arabic-Indic 3: \d is ASCII in JS */
	CHECK_RC(pat("^\\w+$", "crane_1", why), 0);
	CHECK_RC(pat("^\\w+$", "crane-1", why), AM_EFIELD);
	CHECK_RC(pat("\\bjib\\b", "the jib arm", why), 0);
	CHECK_RC(pat("\\bjib\\b", "jibber", why), AM_EFIELD);
	CHECK_RC(pat("^(?=.*[0-9])[a-z0-9]+$", "abc1", why), 0); /* lookahead */
	CHECK_RC(pat("^(?=.*[0-9])[a-z0-9]+$", "abcd", why), AM_EFIELD);
	CHECK_RC(pat("^(?!tmp)", "tmpfile", why), AM_EFIELD); /* negative lookahead */
	CHECK_RC(pat("^\\p{Lu}\\p{Ll}+$", "\xc3\x89" "cole", why), 0); /* Unicode classes, code points */
	CHECK_RC(pat("^\\p{Lu}\\p{Ll}+$", "ecole", why), AM_EFIELD);
	CHECK_RC(pat("^.$", "\xc3\xa9", why), 0); /* one code point, two bytes */
	CHECK_RC(pat("^\\u00e9$", "\xc3\xa9", why), 0); /* \uXXXX as in JavaScript */
	CHECK_RC(pat("^\\u{1F600}$", "\xf0\x9f\x98\x80", why), 0);
	CHECK_RC(pat("ab$", "ab\n", why), AM_EFIELD); /* $ is the very end */
	CHECK_RC(pat("yard", "north-yard-3", why), 0); /* unanchored, as RegExp.test */
	/* a pattern that does not compile refuses, with the reason */
	CHECK_RC(pat("^(ab$", "ab", why), AM_EFIELD);
	CHECK(strstr(why, "does not compile") != NULL);
	/* catastrophic backtracking is cut short and refused, not waved through */
	CHECK_RC(pat("^(a+)+$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", why), AM_EFIELD);
	/* validation (what a tool file gets at load) names the field */
	{
		json_t *s = json_loads("{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"array\","
		                       "\"items\":{\"type\":\"string\",\"pattern\":\"[a-\"}}}}",
		    0, NULL);
		REQUIRE(s != NULL);
		CHECK_RC(am_schema_validate(s, why, sizeof(why)), AM_EFIELD);
		CHECK(strstr(why, "input_schema.properties.id.items.pattern") != NULL);
		json_decref(s);
		s = json_loads(obj, 0, NULL);
		CHECK_RC(am_schema_validate(s, why, sizeof(why)), 0);
		json_decref(s);
	}
	/* a tool file with such a pattern stops the load, naming file and field */
	{
		char dir[] = "/tmp/am-test-schema-XXXXXX", file[128];
		am_toolbox *tb = NULL;
		FILE *f;
		REQUIRE(mkdtemp(dir) != NULL);
		snprintf(file, sizeof(file), "%s/bad.json", dir);
		REQUIRE((f = fopen(file, "w")) != NULL);
		fputs("{\"name\": \"bad\", \"command\": [\"/bin/true\"], \"input_schema\": {\"type\": \"object\","
		      " \"properties\": {\"year\": {\"type\": \"string\", \"pattern\": \"^(\\\\d{4}\"}}}}",
		    f);
		fclose(f);
		CHECK_RC(am_toolbox_load(&tb, dir), AM_EFIELD);
		CHECK(strstr(am_error_detail(), "bad.json") != NULL);
		CHECK(strstr(am_error_detail(), "input_schema.properties.year.pattern") != NULL);
		if (strstr(am_error_detail(), "input_schema.properties.year.pattern") == NULL)
			fprintf(stderr, "load said: %s\n", am_error_detail());
		am_toolbox_free(tb);
		unlink(file);
		rmdir(dir);
	}
	/* no schema at all: anything goes */
	{
		json_t *empty = json_object();
		CHECK_RC(am_schema_check(NULL, empty, why, sizeof(why)), 0);
		json_decref(empty);
	}
	return check_done("test_schema");
}
