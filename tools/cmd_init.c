/*
 * cmd_init.c — `keygen` and `init`: making identities and node folders.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "am_net.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'}, {"network-key", no_argument, NULL, 'n'}, {0, 0, 0, 0}};
	const char *output = NULL;
	bool force = false, network = false;
	am_identity *id = NULL;
	char nid[AM_NODE_ID_LEN + 1];
	int c, rc;

	while ((c = getopt_long(argc, argv, ":o:fn", opts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'f': force = true; break;
		case 'n': network = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (output == NULL)
		return cli_usage_error("--output FILE is required");
	if (network) {
		/* the deployment's 32-byte network key, as hex, mode 0600 */
		uint8_t key[32];
		randombytes_buf(key, sizeof(key));
		rc = am_netkey_save(output, key, force);
		sodium_memzero(key, sizeof(key));
		if (rc != 0)
			return cli_fail(rc, "writing the network key");
		fprintf(stderr, "wrote network key %s (mode 0600); give it to every node of this deployment\n", output);
		return 0;
	}
	if ((rc = am_identity_generate(&id)) != 0)
		return cli_fail(rc, "generating a key");
	if ((rc = am_identity_save_pem(id, output, force)) != 0) {
		am_identity_free(id);
		return cli_fail(rc, "writing the key");
	}
	am_node_id_format(nid, am_identity_pk(id));
	printf("%s\n", nid);
	fprintf(stderr, "wrote %s (mode 0600); node id above\n", output);
	am_identity_free(id);
	return 0;
}

int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
	    {"identity", required_argument, NULL, 'i'}, {"position", required_argument, NULL, 'p'},
	    {"zone", required_argument, NULL, 'z'}, {"group", required_argument, NULL, 'g'}, {0, 0, 0, 0}};
	const char *dir = NULL, *identity = NULL;
	am_position pos = {0};
	char groups[AM_QUEUE_MAX_GROUPS][AM_TAG_MAX + 1];
	size_t ngroups = 0, ntags = 0;
	am_identity *id = NULL;
	am_queue *q = NULL;
	am_queue_options qo = {.create = true};
	char path[4096], nid[AM_NODE_ID_LEN + 1];
	struct stat st;
	int c, rc, ret = 1;

	while ((c = getopt_long(argc, argv, ":s:i:p:z:g:", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'i': identity = optarg; break;
		case 'p':
			if (cli_parse_position(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'z':
			if (cli_add_tag(pos.tags, AM_GEO_MAX_TAGS, &ntags, "zone tag", optarg) != 0)
				return EXIT_USAGE;
			pos.ntags = (uint8_t) ntags;
			break;
		case 'g':
			if (cli_add_tag(groups, AM_QUEUE_MAX_GROUPS, &ngroups, "group", optarg) != 0)
				return EXIT_USAGE;
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL)
		return cli_usage_error("--store DIR is required");
	cli_store_path(path, sizeof(path), dir);
	strcat(path, "/data.mdb");
	if (stat(path, &st) == 0) {
		fprintf(stderr, "%s: %s already holds a store; refusing to re-initialise it\n", cli_prog, dir);
		return 1;
	}
	if (identity != NULL)
		rc = am_identity_load_pem(&id, identity);
	else
		rc = am_identity_generate(&id);
	if (rc != 0)
		return cli_fail(rc, identity ? "reading --identity" : "generating a key");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: %s: %s\n", cli_prog, dir, strerror(errno));
		goto out;
	}
	cli_key_path(path, sizeof(path), dir);
	if ((rc = am_identity_save_pem(id, path, false)) != 0 && rc != AM_EEXIST) {
		cli_fail(rc, "writing the node key");
		goto out;
	}
	if (rc == AM_EEXIST) {
		/* A key is already there: the store must belong to it. */
		am_identity *have = NULL;
		if ((rc = am_identity_load_pem(&have, path)) != 0) {
			cli_fail(rc, "reading the existing node key");
			goto out;
		}
		if (identity != NULL && memcmp(am_identity_pk(have), am_identity_pk(id), AM_PK_BYTES) != 0) {
			fprintf(stderr, "%s: %s already has a different identity.pem\n", cli_prog, dir);
			am_identity_free(have);
			goto out;
		}
		am_identity_free(id);
		id = have;
	}
	cli_store_path(path, sizeof(path), dir);
	if ((rc = am_queue_open(&q, path, &qo)) != 0) {
		cli_fail(rc, "creating the store");
		goto out;
	}
	if ((rc = am_queue_set_self(q, am_identity_pk(id))) != 0 || (rc = am_queue_set_position(q, &pos)) != 0 ||
	    (rc = am_queue_set_groups(q, groups, ngroups)) != 0) {
		cli_fail(rc, "saving node settings");
		goto out;
	}
	am_node_id_format(nid, am_identity_pk(id));
	printf("%s\n", nid);
	fprintf(stderr, "initialised %s (identity.pem, store/); node id above\n", dir);
	ret = 0;
out:
	am_queue_close(q);
	am_identity_free(id);
	return ret;
}
