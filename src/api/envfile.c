/*
 * envfile.c — a `.env` file read as dotenv reads it: KEY=VALUE lines
 * (optional `export `, `#` comments on their own line or after a value,
 * blank lines, values optionally in single or double quotes, no
 * expansion). Keys already in the environment win, so the order of
 * precedence is flags > environment > .env > defaults. A line that is not
 * KEY=VALUE is an error naming the file and line: a typo in a config file
 * should stop the daemon, not be skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The value as dotenv reads it, in place: 'single' literal, "double" with
 * \n \t \" \\ escapes, either followed only by blanks or a # comment;
 * unquoted up to a # that follows a blank (TRUST_MODE=pki  # or 'tofu'),
 * blanks trimmed. Values span one line. */
static int
dotenv_value(char *val, const char *path, int lineno, const char *key)
{
	char q = val[0], *r, *w, *rest;

	if (q != '"' && q != '\'') {
		for (r = val; *r; r++)
			if (*r == '#' && (r == val || isspace((unsigned char) r[-1]))) {
				*r = '\0';
				break;
			}
		for (w = val + strlen(val); w > val && isspace((unsigned char) w[-1]);)
			*--w = '\0';
		return 0;
	}
	for (r = val + 1, w = val; *r && *r != q; r++) {
		if (q == '"' && *r == '\\' && r[1] != '\0') {
			r++;
			*w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r == 'r' ? '\r' : *r;
		} else
			*w++ = *r;
	}
	if (*r != q)
		return am_error_set(AM_EFIELD, "%s:%d: unterminated quote in %s (values span one line)", path, lineno, key);
	for (rest = r + 1; isspace((unsigned char) *rest); rest++)
		;
	if (*rest != '\0' && *rest != '#')
		return am_error_set(AM_EFIELD, "%s:%d: %s: text after the closing quote", path, lineno, key);
	*w = '\0';
	return 0;
}

int
am_env_file_load(const char *path, bool required)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	int rc, lineno = 0;

	if ((rc = am_file_read(&text, &len, path, 1u << 20)) != 0) {
		if (!required && rc == AM_EIO && access(path, F_OK) != 0)
			return 0;
		return rc;
	}
	for (char *p = text; (line = strtok_r(p, "\n", &save)) != NULL; p = NULL) {
		char *eq, *key, *val, *end;
		lineno++;
		while (isspace((unsigned char) *line))
			line++;
		end = line + strlen(line);
		while (end > line && isspace((unsigned char) end[-1]))
			*--end = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		if (strncmp(line, "export ", 7) == 0)
			line += 7;
		if ((eq = strchr(line, '=')) == NULL) {
			rc = am_error_set(AM_EFIELD, "%s:%d: expected KEY=VALUE", path, lineno);
			break;
		}
		*eq = '\0';
		key = line;
		val = eq + 1;
		end = eq;
		while (end > key && isspace((unsigned char) end[-1]))
			*--end = '\0';
		for (const char *k = key; *k; k++)
			if (!(isalnum((unsigned char) *k) || *k == '_') || (k == key && isdigit((unsigned char) *k))) {
				rc = am_error_set(AM_EFIELD, "%s:%d: \"%s\" is not a variable name", path, lineno, key);
				goto out;
			}
		if (*key == '\0') {
			rc = am_error_set(AM_EFIELD, "%s:%d: empty variable name", path, lineno);
			break;
		}
		while (isspace((unsigned char) *val))
			val++;
		if ((rc = dotenv_value(val, path, lineno, key)) != 0)
			break;
		setenv(key, val, 0);
	}
out:
	free(text);
	return rc;
}
