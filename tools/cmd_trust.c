/*
 * cmd_trust.c — `trust list` and `trust forget`: the TOFU pins of a node
 * folder (DATA/trust/trust_store.json). Forgetting a pin is how a replaced
 * or renamed device is accepted: the next key to prove that name is
 * pinned. A running daemon reads the changed file at its next check, so
 * it need not stop.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_runtime.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int
open_trust(am_trust **t, const char *dir)
{
	int rc = am_trust_open(t, dir);
	return rc != 0 ? cli_fail(rc, "reading the trust store") : 0;
}

int
cmd_trust_list(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
	    {0, 0, 0, 0}};
	const char *dir = NULL;
	bool as_json = false;
	am_trust *t = NULL;
	int c;

	while ((c = getopt_long(argc, argv, ":d:j", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return cli_usage_error("--data DIR (the node folder) is required");
	if (open_trust(&t, dir) != 0)
		return 1;
	json_t *pins = am_trust_list(t), *v;
	am_trust_close(t);
	if (as_json) {
		cli_json_print(pins);
		return 0;
	}
	const char *name;
	if (json_object_size(pins) == 0)
		printf("nothing pinned yet\n");
	json_object_foreach(pins, name, v) {
		time_t s = (time_t) (json_integer_value(json_object_get(v, "first_seen_ms")) / 1000);
		char when[32] = "?";
		struct tm tm;
		if (gmtime_r(&s, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-24s %s  since %s  from %s\n", name, json_string_value(json_object_get(v, "key")), when,
		    json_string_value(json_object_get(v, "first_address")) ? json_string_value(json_object_get(v, "first_address"))
		                                                          : "");
	}
	json_decref(pins);
	return 0;
}

int
cmd_trust_forget(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	char forgotten[256];
	am_trust *t = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":d:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (dir == NULL)
		return cli_usage_error("--data DIR (the node folder) is required");
	if (optind + 1 != argc)
		return cli_usage_error("give one NAME or KEY to forget (agent-mesh trust list shows them)");
	if (open_trust(&t, dir) != 0)
		return 1;
	rc = am_trust_forget(t, argv[optind], forgotten, sizeof(forgotten));
	am_trust_close(t);
	if (rc != 0)
		return cli_fail(rc, "trust forget");
	printf("forgot \"%s\": the next key to prove that name is pinned (a running daemon reads this at its next link)\n",
	    forgotten);
	return 0;
}
