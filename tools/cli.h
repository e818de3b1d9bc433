/*
 * cli.h — shared by the agent-mesh subcommands: the command table entry,
 * error printing, and opening a node folder (DIR/identity.pem +
 * DIR/store/).
 */
#ifndef AM_CLI_H
#define AM_CLI_H

#include "am_core.h"
#include "am_queue.h"

#include <jansson.h>
#include <stdio.h>

#define EXIT_USAGE 2

typedef struct cli_cmd {
	const char *name;      /* "store stats" for two-word commands */
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
} cli_cmd;

extern const char *cli_prog;  /* "agent-mesh send" while a command runs */
extern const char *cli_usage; /* that command's usage text */

/* cli_fail: print "agent-mesh CMD: <what>: <detail>" and return 1. */
int cli_fail(int rc, const char *what);
/* cli_usage_error: print a usage problem on one line; return 2. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cli_help_requested: true (after printing usage) when argv has --help/-h */
int cli_help(int argc, char **argv, const char *usage);

/* A node folder: the store and the identity that owns it. */
typedef struct cli_node {
	am_queue *q;
	am_identity *id;
} cli_node;

/* cli_node_open: open DIR's store (and key when need_key). Prints the
 * error itself; returns 0 or 1. */
int cli_node_open(cli_node *n, const char *dir, int need_key);
void cli_node_close(cli_node *n);
void cli_store_path(char *out, size_t cap, const char *dir);
void cli_key_path(char *out, size_t cap, const char *dir);

/* cli_json_print: dump a JSON value on stdout with a newline, then free. */
void cli_json_print(json_t *j);
/* cli_time: ISO-8601 UTC form of a millisecond timestamp. */
void cli_time(char *out, size_t cap, uint64_t ms);

/* cli_opt_error: the message for getopt's ':' (missing value) or '?'. */
int cli_opt_error(int c, char **argv);
/* cli_parse_position: "LAT,LON" into pos (range-checked). Prints; 0/2. */
int cli_parse_position(am_position *pos, const char *text);
/* cli_add_tag: append a checked tag to a fixed list. Prints; 0/2. */
int cli_add_tag(char tags[][AM_TAG_MAX + 1], size_t max, size_t *n,
    const char *what, const char *tag);

/* cli_audit: one record in the node folder's audit log (AUDIT_LOG_PATH,
 * default DIR/audit/audit.log); details is consumed. Problems are printed,
 * not fatal: the command's own work is done by then. */
void cli_audit(const char *dir, const am_identity *me, const char *event, const char *subject, json_t *details);

/* Command functions. */
int cmd_token_issue(int argc, char **argv);
int cmd_token_attenuate(int argc, char **argv);
int cmd_token_inspect(int argc, char **argv);
int cmd_token_revoke(int argc, char **argv);
int cmd_audit_verify(int argc, char **argv);
int cmd_provision(int argc, char **argv);
int cmd_pair(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
/* TEXT, @FILE or - : a token's text, trimmed (malloc'd; NULL after printing why) */
char *cli_token_arg(const char *arg);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_trust_list(int argc, char **argv);
int cmd_trust_forget(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_inbox(int argc, char **argv);
int cmd_store_stats(int argc, char **argv);
int cmd_store_gc(int argc, char **argv);
int cmd_store_copy(int argc, char **argv);
int cmd_store_set(int argc, char **argv);
int cmd_store_get(int argc, char **argv);
int cmd_envelope_inspect(int argc, char **argv);
int cmd_envelope_import(int argc, char **argv);
int cmd_bundle_sync(int argc, char **argv);
int cmd_bundle_export(int argc, char **argv);
int cmd_bundle_import(int argc, char **argv);
int cmd_bundle_inspect(int argc, char **argv);
int cmd_link_sync(int argc, char **argv);

#endif
