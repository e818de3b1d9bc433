/*
 * cmd_link.c — `link sync`: one sync session with another node over the
 * network (or a cable, or a local socket), using the same handshake,
 * reconciliation and push the daemons will run on every link.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_runtime.h"

#include <getopt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int
cmd_link_sync(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'}, {"dial", required_argument, NULL, 'd'},
	    {"network-key", required_argument, NULL, 'k'}, {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
	const char *dir = NULL, *listen = NULL, *dial = NULL, *key = NULL;
	uint8_t netkey[32];
	uint64_t timeout = 30000;
	bool as_json = false;
	am_link_options o = {0};
	am_link_report r;
	cli_node node;
	char peer[AM_NODE_ID_LEN + 1];
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:l:d:k:t:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'l': listen = optarg; break;
		case 'd': dial = optarg; break;
		case 'k': key = optarg; break;
		case 't':
			if (am_duration_parse(&timeout, optarg) != 0)
				return cli_usage_error("--timeout: %s", am_error_detail());
			break;
		case 'j': as_json = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL || key == NULL || (listen == NULL) == (dial == NULL))
		return cli_usage_error("give --store DIR, --network-key, and one of --listen URL or --dial URL");
	if (am_netkey_parse(netkey, key) != 0)
		return cli_usage_error("--network-key: %s", am_error_detail());
	if (cli_node_open(&node, dir, 1) != 0)
		return 1;
	o.now_ms = am_now_ms();
	o.netkey = netkey;
	o.timeout_ms = timeout > 3600000 ? 3600000 : (int) timeout;
	rc = listen ? am_link_sync_listen(node.q, node.id, listen, &o, &r) : am_link_sync_dial(node.q, node.id, dial, &o, &r);
	cli_node_close(&node);
	sodium_memzero(netkey, sizeof(netkey));
	am_node_id_format(peer, r.peer);
	if (as_json) {
		json_t *j = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", rc == 0, "peer", peer, "sent",
		    (json_int_t) r.sent, "received", (json_int_t) r.received, "inboxed", (json_int_t) r.inboxed, "refused",
		    (json_int_t) r.refused, "reconcile_bytes_out", (json_int_t) r.recon_out, "reconcile_bytes_in",
		    (json_int_t) r.recon_in, "reconcile_rounds", (json_int_t) r.recon_rounds);
		if (rc != 0)
			json_object_set_new(j, "problem", json_string(r.problem));
		cli_json_print(j);
	} else if (rc == 0) {
		printf("linked with %s: sent %llu, received %llu (%llu into the inbox, %llu refused); "
		       "reconciliation %llu bytes out, %llu in, %llu rounds\n",
		    peer, (unsigned long long) r.sent, (unsigned long long) r.received, (unsigned long long) r.inboxed,
		    (unsigned long long) r.refused, (unsigned long long) r.recon_out, (unsigned long long) r.recon_in,
		    (unsigned long long) r.recon_rounds);
	}
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", cli_prog, r.problem[0] ? r.problem : am_error_detail());
		return 1;
	}
	return 0;
}
