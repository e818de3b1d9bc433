/*
 * envfile.c — a `.env` file: KEY=VALUE lines (optional `export `, `#`
 * comments, blank lines, values optionally in single or double quotes,
 * no expansion). Keys already in the environment win, so the order of
 * precedence is flags > environment > .env > defaults. A line that is not
 * KEY=VALUE is an error naming the file and line: a typo in a config file
 * should stop the daemon, not be skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_runtime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
			rc = am_error_set(AM_EFIELD, "%s line %d: expected KEY=VALUE", path, lineno);
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
				rc = am_error_set(AM_EFIELD, "%s line %d: \"%s\" is not a variable name", path, lineno, key);
				goto out;
			}
		if (*key == '\0') {
			rc = am_error_set(AM_EFIELD, "%s line %d: empty variable name", path, lineno);
			break;
		}
		while (isspace((unsigned char) *val))
			val++;
		size_t vl = strlen(val);
		if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
			val[vl - 1] = '\0';
			val++;
		} else if (vl >= 1 && (val[0] == '"' || val[0] == '\'')) {
			rc = am_error_set(AM_EFIELD, "%s line %d: unterminated quote in %s", path, lineno, key);
			break;
		}
		setenv(key, val, 0);
	}
out:
	free(text);
	return rc;
}
