/*
 * schema.c — checking a tool call's arguments against the tool's JSON
 * Schema. The subset a tool declaration needs, applied recursively:
 * "type" (object, array, string, integer, number, boolean, null, or a list
 * of them), "properties", "required", "additionalProperties": false,
 * "items", "enum", "const", "minimum", "maximum", "minLength",
 * "maxLength", "pattern", "minItems", "maxItems". A pattern means what it
 * means to the MCP clients that check the same schema (JavaScript's
 * RegExp with the u flag, as JSON Schema says): PCRE2 with the options
 * that give ECMA-262 semantics, never POSIX ERE (where \d is a "d").
 * Other keywords are ignored (documented in docs/OPERATIONS.md): a schema
 * using them is checked less strictly, never refused. The first violation
 * is reported with its JSON path ("$.sensor: must be one of ...").
 */
#define _POSIX_C_SOURCE 200809L
#include "am_node.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

static bool
type_is(const json_t *v, const char *t)
{
	if (strcmp(t, "object") == 0)
		return json_is_object(v);
	if (strcmp(t, "array") == 0)
		return json_is_array(v);
	if (strcmp(t, "string") == 0)
		return json_is_string(v);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == (double) (long long) json_real_value(v));
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(t, "null") == 0)
		return json_is_null(v);
	return true; /* an unknown type name constrains nothing */
}

static int
fail(char *why, size_t cap, const char *path, const char *fmt, const char *arg)
{
	char msg[200];
	snprintf(msg, sizeof(msg), fmt, arg);
	snprintf(why, cap, "%s: %s", path, msg);
	return AM_EFIELD;
}

static size_t
utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char) *s & 0xC0) != 0x80;
	return n;
}

/* pattern compiled as ECMA-262 reads it with the u flag: code points
 * (UTF), \d \w \b \s stay ASCII-only as in JavaScript (no UCP), \u{...}
 * and \uXXXX escapes, $ only at the very end, an unset backreference
 * matches the empty string; unanchored, as RegExp.test is. NULL with why
 * set when it does not compile. */
static pcre2_code *
ecma_compile(const char *pattern, char *why, size_t cap)
{
	int err = 0;
	PCRE2_SIZE off = 0;
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	pcre2_code *re = NULL;

	if (cc == NULL) {
		snprintf(why, cap, "out of memory");
		return NULL;
	}
	(void) pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
	re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_UNSET_BACKREF | PCRE2_NEVER_BACKSLASH_C, &err,
	    &off, cc);
	pcre2_compile_context_free(cc);
	if (re == NULL) {
		PCRE2_UCHAR msg[160];
		(void) pcre2_get_error_message(err, msg, sizeof(msg));
		snprintf(why, cap, "pattern \"%.80s\" does not compile at offset %zu: %s", pattern, (size_t) off, (char *) msg);
	}
	return re;
}

/* 1 match, 0 no match, <0 an error (a match limit hit counts as an error:
 * the value is refused, never waved through) */
static int
ecma_match(const pcre2_code *re, const char *s)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	int rc = -1;

	if (md != NULL && mc != NULL) {
		/* a backtracking pattern on a hostile argument stays cheap */
		(void) pcre2_set_match_limit(mc, 100000);
		(void) pcre2_set_depth_limit(mc, 1000);
		rc = pcre2_match(re, (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, 0, md, mc);
		rc = rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
	}
	pcre2_match_context_free(mc);
	pcre2_match_data_free(md);
	return rc;
}

static int
check(const json_t *schema, const json_t *v, const char *path, char *why, size_t cap, int depth)
{
	const json_t *t, *k;
	char sub[256];

	if (!json_is_object(schema))
		return 0;
	if (depth > 32)
		return fail(why, cap, path, "%s", "nested too deep");
	if ((t = json_object_get(schema, "type")) != NULL) {
		bool ok = false;
		if (json_is_string(t))
			ok = type_is(v, json_string_value(t));
		else if (json_is_array(t)) {
			size_t i;
			json_t *e;
			json_array_foreach(t, i, e) ok |= json_is_string(e) && type_is(v, json_string_value(e));
		} else
			ok = true;
		if (!ok) {
			char *tt = json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
			int rc = fail(why, cap, path, "must be of type %s", tt ? tt : "?");
			free(tt);
			return rc;
		}
	}
	if ((k = json_object_get(schema, "enum")) != NULL && json_is_array(k)) {
		size_t i;
		json_t *e;
		bool found = false;
		json_array_foreach(k, i, e) found |= json_equal((json_t *) e, (json_t *) v);
		if (!found) {
			char *ee = json_dumps(k, JSON_COMPACT);
			int rc = fail(why, cap, path, "must be one of %s", ee ? ee : "?");
			free(ee);
			return rc;
		}
	}
	if ((k = json_object_get(schema, "const")) != NULL && !json_equal((json_t *) k, (json_t *) v))
		return fail(why, cap, path, "%s", "must equal the schema's const");
	if (json_is_number(v)) {
		double d = json_number_value(v);
		if ((k = json_object_get(schema, "minimum")) != NULL && json_is_number(k) && d < json_number_value(k))
			return fail(why, cap, path, "%s", "is below the minimum");
		if ((k = json_object_get(schema, "maximum")) != NULL && json_is_number(k) && d > json_number_value(k))
			return fail(why, cap, path, "%s", "is above the maximum");
	}
	if (json_is_string(v)) {
		size_t n = utf8_len(json_string_value(v));
		if ((k = json_object_get(schema, "minLength")) != NULL && json_is_integer(k) &&
		    n < (size_t) json_integer_value(k))
			return fail(why, cap, path, "%s", "is too short");
		if ((k = json_object_get(schema, "maxLength")) != NULL && json_is_integer(k) &&
		    n > (size_t) json_integer_value(k))
			return fail(why, cap, path, "%s", "is too long");
		if ((k = json_object_get(schema, "pattern")) != NULL && json_is_string(k)) {
			char bad[190];
			pcre2_code *re = ecma_compile(json_string_value(k), bad, sizeof(bad));
			int m;
			/* tool files are checked at load (am_schema_validate): a
			 * pattern that does not compile here refuses, never passes */
			if (re == NULL)
				return fail(why, cap, path, "%s", bad);
			m = ecma_match(re, json_string_value(v));
			pcre2_code_free(re);
			if (m < 0)
				return fail(why, cap, path, "is too costly to match against %s", json_string_value(k));
			if (m == 0)
				return fail(why, cap, path, "does not match %s", json_string_value(k));
		}
	}
	if (json_is_array(v)) {
		size_t i, n = json_array_size(v);
		json_t *e;
		if ((k = json_object_get(schema, "minItems")) != NULL && json_is_integer(k) && n < (size_t) json_integer_value(k))
			return fail(why, cap, path, "%s", "has too few items");
		if ((k = json_object_get(schema, "maxItems")) != NULL && json_is_integer(k) && n > (size_t) json_integer_value(k))
			return fail(why, cap, path, "%s", "has too many items");
		if ((k = json_object_get(schema, "items")) != NULL)
			json_array_foreach(v, i, e) {
				snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
				int rc = check(k, e, sub, why, cap, depth + 1);
				if (rc != 0)
					return rc;
			}
	}
	if (json_is_object(v)) {
		const json_t *props = json_object_get(schema, "properties"), *req = json_object_get(schema, "required");
		const char *key;
		json_t *e;
		size_t i;
		if (json_is_array(req))
			json_array_foreach(req, i, e) if (json_is_string(e) && json_object_get(v, json_string_value(e)) == NULL) {
				snprintf(sub, sizeof(sub), "%s.%s", path, json_string_value(e));
				return fail(why, cap, sub, "%s", "is required");
			}
		json_object_foreach((json_t *) v, key, e) {
			const json_t *ps = json_is_object(props) ? json_object_get(props, key) : NULL;
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			if (ps != NULL) {
				int rc = check(ps, e, sub, why, cap, depth + 1);
				if (rc != 0)
					return rc;
			} else if (json_is_false(json_object_get(schema, "additionalProperties"))) {
				return fail(why, cap, sub, "%s", "is not an argument of this tool");
			}
		}
	}
	return 0;
}

int
am_schema_check(const json_t *schema, const json_t *value, char *why, size_t cap)
{
	why[0] = '\0';
	return check(schema, value, "$", why, cap, 0);
}

/* every "pattern" in a schema compiles (walked where check would go) */
static int
validate(const json_t *schema, const char *path, char *why, size_t cap, int depth)
{
	const json_t *k;
	char sub[256];

	if (!json_is_object(schema))
		return 0;
	if (depth > 32) {
		snprintf(why, cap, "%s: nested too deeply", path);
		return AM_EFIELD;
	}
	if ((k = json_object_get(schema, "pattern")) != NULL) {
		char bad[300];
		pcre2_code *re;
		if (!json_is_string(k)) {
			snprintf(why, cap, "%s.pattern: must be a string", path);
			return AM_EFIELD;
		}
		if ((re = ecma_compile(json_string_value(k), bad, sizeof(bad))) == NULL) {
			snprintf(why, cap, "%s.pattern: %s", path, bad);
			return AM_EFIELD;
		}
		pcre2_code_free(re);
	}
	if ((k = json_object_get(schema, "items")) != NULL) {
		snprintf(sub, sizeof(sub), "%s.items", path);
		int rc = validate(k, sub, why, cap, depth + 1);
		if (rc != 0)
			return rc;
	}
	if (json_is_object(k = json_object_get(schema, "properties"))) {
		const char *key;
		json_t *e;
		json_object_foreach((json_t *) k, key, e) {
			snprintf(sub, sizeof(sub), "%s.properties.%s", path, key);
			int rc = validate(e, sub, why, cap, depth + 1);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

int
am_schema_validate(const json_t *schema, char *why, size_t cap)
{
	why[0] = '\0';
	return validate(schema, "input_schema", why, cap, 0);
}
