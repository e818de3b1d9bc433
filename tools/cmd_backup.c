/*
 * cmd_backup.c — `backup` and `restore`: what a node cannot get back from
 * the mesh (its identity key, the network key and join, the trust store,
 * the audit log, its provisioning bundle, roles, tool files and .env
 * config, plus any --include'd files such as a gateway key) as one .tar.gz, mode 0600, written by the system's tar
 * (no archive format of our own). The envelope store is not in it: the
 * mesh holds those envelopes too, and a consistent copy of a live LMDB
 * store is `mdb_copy -c` (docs/OPERATIONS.md). Restore refuses to
 * overwrite an identity unless --force, refuses archives with absolute or
 * ".." paths, and leaves every key file mode 0600.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* what DATA holds that the mesh cannot give back: the key, the site's
 * network key and how this node joined, its trust store and audit log,
 * its certificate, the gateway's roles, the node's tool files, .env */
static const char *const members[] = {"identity.pem", "network.key", "join.json", "provision.json", "trust", "audit",
    "roles.json", "tools", ".env"};

static int
run(char *const argv[], const char *out_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0, rc;

	posix_spawn_file_actions_init(&fa);
	if (out_path != NULL)
		posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return am_error_set(AM_EIO, "cannot run %s: %s (install tar)", argv[0], strerror(rc));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return am_error_set(AM_EIO, "%s failed (status %d)", argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

int
cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	    {"output", required_argument, NULL, 'o'}, {"include", required_argument, NULL, 'i'}, {0, 0, 0, 0}};
	const char *dir = NULL, *output = NULL, *incl[16];
	size_t nincl = 0, n = 0;
	char *targv[64], tmp[4096], fullpath[4096], cwd[4096];
	bool env_here = false;
	struct stat st;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":d:o:i:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'o': output = optarg; break;
		case 'i':
			if (nincl == 16)
				return cli_usage_error("at most 16 --include");
			if (strchr(optarg, '/') != NULL || strcmp(optarg, "..") == 0 || optarg[0] == '-')
				return cli_usage_error("--include %s: a file name inside --data (no '/', not starting with '-')",
				    optarg);
			incl[nincl++] = optarg;
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL || output == NULL)
		return cli_usage_error("give --data DIR (the node folder) and --output FILE.tar.gz");
	snprintf(fullpath, sizeof(fullpath), "%s/identity.pem", dir);
	if (stat(fullpath, &st) != 0)
		return cli_usage_error("%s has no identity.pem: not a node folder", dir);
	targv[n++] = "tar";
	targv[n++] = "-czf";
	targv[n++] = "-";
	targv[n++] = "-C";
	targv[n++] = (char *) dir;
	/* no "--": a second -C may follow; every name here is ours or checked */
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		snprintf(fullpath, sizeof(fullpath), "%s/%s", dir, members[i]);
		if (stat(fullpath, &st) == 0)
			targv[n++] = (char *) members[i];
	}
	for (size_t i = 0; i < nincl; i++) {
		snprintf(fullpath, sizeof(fullpath), "%s/%s", dir, incl[i]);
		if (stat(fullpath, &st) != 0)
			return cli_usage_error("--include %s: no such file in %s", incl[i], dir);
		targv[n++] = (char *) incl[i];
	}
	/* the .env a daemon started here reads, when the folder holds none
	 * (the default layout: ./.env beside ./agent-mesh-data/) */
	snprintf(fullpath, sizeof(fullpath), "%s/.env", dir);
	if (stat(fullpath, &st) != 0 && stat(".env", &st) == 0 && getcwd(cwd, sizeof(cwd)) != NULL) {
		targv[n++] = "-C";
		targv[n++] = cwd;
		targv[n++] = ".env";
		env_here = true;
	}
	targv[n] = NULL;
	/* into a temporary name, then renamed: never a half archive */
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", output, (long) getpid());
	if ((rc = run(targv, tmp)) != 0) {
		unlink(tmp);
		return cli_fail(rc, "backup");
	}
	if (rename(tmp, output) != 0) {
		unlink(tmp);
		return cli_fail(am_error_set(AM_EIO, "%s: %s", output, strerror(errno)), "backup");
	}
	chmod(output, 0600);
	printf("backup of %s in %s (%zu items%s; mode 0600: it holds the identity key)\n", dir, output,
	    n - 5 - (env_here ? 2 : 0), env_here ? ", with ./.env" : "");
	return 0;
}

int
cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	    {"input", required_argument, NULL, 'i'}, {"force", no_argument, NULL, 'f'}, {0, 0, 0, 0}};
	const char *dir = NULL, *input = NULL;
	bool force = false;
	char list[4096], path[4096], *text = NULL;
	size_t len = 0;
	struct stat st;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":d:i:f", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'i': input = optarg; break;
		case 'f': force = true; break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (dir == NULL || input == NULL)
		return cli_usage_error("give --input FILE.tar.gz and --data DIR (the node folder to restore into)");
	if (stat(input, &st) != 0)
		return cli_usage_error("--input %s: %s", input, strerror(errno));
	snprintf(path, sizeof(path), "%s/identity.pem", dir);
	if (!force && stat(path, &st) == 0)
		return cli_usage_error("%s already has an identity: restoring would replace it (add --force if that is "
		                       "what you want)", dir);
	/* look before extracting: only plain relative names */
	snprintf(list, sizeof(list), "/tmp/am-restore-%ld.list", (long) getpid());
	{
		char *targv[] = {"tar", "-tzf", (char *) input, NULL};
		if ((rc = run(targv, list)) != 0) {
			unlink(list);
			return cli_fail(am_error_set(AM_EMALFORMED, "%s is not a backup archive (%s)", input, am_error_detail()),
			    "restore");
		}
	}
	rc = am_file_read(&text, &len, list, 1 << 20);
	unlink(list);
	if (rc != 0)
		return cli_fail(rc, "restore");
	bool has_identity = false;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '/' || strstr(line, "..") != NULL) {
			fprintf(stderr, "%s: %s: refusing member \"%s\" (absolute or ..)\n", cli_prog, input, line);
			free(text);
			return 1;
		}
		has_identity |= strcmp(line, "identity.pem") == 0 || strcmp(line, "./identity.pem") == 0;
	}
	free(text);
	if (!has_identity)
		return cli_fail(am_error_set(AM_EMALFORMED, "%s is not a backup archive (no identity.pem in it)", input),
		    "restore");
	/* the folder and its parents (the default layout's agent-mesh-data/node) */
	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1;; p++) {
		bool end = *p == '\0';
		if (*p == '/' || end) {
			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST)
				return cli_fail(am_error_set(AM_EIO, "%s: %s", path, strerror(errno)), "restore");
			if (end)
				break;
			*p = '/';
		}
	}
	{
		char *targv[] = {"tar", "-xzf", (char *) input, "-C", (char *) dir, "--no-same-owner", NULL};
		if ((rc = run(targv, NULL)) != 0)
			return cli_fail(rc, "restore");
	}
	/* keys and the trust store stay private whatever the archive said */
	snprintf(path, sizeof(path), "%s/identity.pem", dir);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/trust/trust_store.json", dir);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/provision.json", dir);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/.env", dir); /* may hold MESH_NETWORK_KEY */
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/network.key", dir);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/join.json", dir);
	chmod(path, 0600);
	/* an empty store owned by the restored key, so the node starts; the
	 * mesh gives its envelopes back on the first links */
	cli_store_path(path, sizeof(path), dir);
	strncat(path, "/data.mdb", sizeof(path) - strlen(path) - 1);
	if (stat(path, &st) != 0) {
		am_identity *id = NULL;
		am_queue *q = NULL;
		am_queue_options qo = {.create = true};
		char store[4096];
		cli_key_path(path, sizeof(path), dir);
		cli_store_path(store, sizeof(store), dir);
		if ((rc = am_identity_load_pem(&id, path)) != 0 || (rc = am_queue_open(&q, store, &qo)) != 0 ||
		    (rc = am_queue_set_self(q, am_identity_pk(id))) != 0) {
			am_queue_close(q);
			am_identity_free(id);
			return cli_fail(rc, "restore: making the empty store");
		}
		am_queue_close(q);
		am_identity_free(id);
		printf("made an empty store in %s: the mesh gives its envelopes back on the first links\n", dir);
	}
	printf("restored %s into %s\n", input, dir);
	snprintf(path, sizeof(path), "%s/.env", dir);
	if (stat(path, &st) == 0)
		printf("its .env is %s (0600): start the daemon with --env-file %s, or put it where the daemon starts\n", path,
		    path);
	return 0;
}
