/*
 * bench_core.c — the core figures, each against a baseline measured in the
 * same run:
 *   raw libsodium Ed25519 sign and verify of a 1 KiB body (the baselines)
 *   send path   = build + sign + commit in batches      vs raw sign
 *   import path = peek + dedup + decode + verify + commit vs raw verify
 *   duplicate path = the same envelopes again (refused before any verify)
 *   peak RSS of a process importing N envelopes (default 100 000)
 * Prints figures; asserts nothing (targets are printed beside them).
 *
 * usage: bench_core [N] [BATCH]     (N envelopes, default 100000; batch 4096)
 */
#define _GNU_SOURCE
#include "am_core.h"
#include "am_queue.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* Rate of op over at least `secs` seconds. */
static double
raw_rate(int verify, double secs)
{
	uint8_t pk[32], sk[64], sig[64], body[1024];
	unsigned long n = 0;
	double t0 = now_s(), t;

	randombytes_buf(body, sizeof(body));
	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(sig, NULL, body, sizeof(body), sk);
	do {
		for (int i = 0; i < 200; i++) {
			if (verify) {
				if (crypto_sign_verify_detached(sig, body, sizeof(body), pk) != 0)
					abort();
			} else {
				crypto_sign_detached(sig, NULL, body, sizeof(body), sk);
			}
		}
		n += 200;
		t = now_s() - t0;
	} while (t < secs);
	return n / t;
}

static void
rm_rf(const char *p)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	if (system(cmd) != 0)
		abort();
}

/* The importer: reads DIR/envelopes.bin in batches into a fresh store,
 * twice (the second pass is all duplicates), and writes its figures to fd. */
static int
importer(const char *dir, size_t batch, int fd)
{
	am_queue *q = NULL;
	am_queue_options o = {.create = true, .map_size = 4ull << 30};
	am_queue_item *items = calloc(batch, sizeof(*items));
	am_queue_result *res = calloc(batch, sizeof(*res));
	uint8_t *buf = malloc(batch * 2048), dst[32] = {0};
	size_t cap = batch * 2048;
	double t_imp = 0, c_imp = 0, t_dup = 0, t0;
	size_t stored = 0, dups = 0;
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/import", dir);
	if (items == NULL || res == NULL || buf == NULL || am_queue_open(&q, path, &o) != 0 || am_queue_set_self(q, dst) != 0)
		return 1;
	for (int pass = 0; pass < 2; pass++) {
		snprintf(path, sizeof(path), "%s/envelopes.bin", dir);
		if ((f = fopen(path, "rb")) == NULL)
			return 1;
		for (;;) {
			size_t k = 0, off = 0;
			uint32_t len;
			while (k < batch && fread(&len, 4, 1, f) == 1) {
				if (off + len > cap || fread(buf + off, 1, len, f) != len)
					return 1;
				items[k].raw = buf + off;
				items[k].len = len;
				off += len;
				k++;
			}
			if (k == 0)
				break;
			if (getenv("BENCH_DEBUG") && stored % 20480 == 0)
				fprintf(stderr, "at %zu: HWM %ld anon %ld file %ld\n", stored, status_kib("VmHWM"), status_kib("RssAnon"), status_kib("RssFile"));
			t0 = now_s();
			double c0 = cpu_s();
			if (am_queue_put_batch(q, items, k, am_now_ms(), res) != 0)
				return 1;
			if (pass == 0) {
				t_imp += now_s() - t0;
				c_imp += cpu_s() - c0;
			} else {
				t_dup += now_s() - t0;
			}
			for (size_t i = 0; i < k; i++) {
				stored += pass == 0 && res[i].rc == 0;
				dups += pass == 1 && res[i].rc == AM_EDUP;
			}
		}
		fclose(f);
		if (getenv("BENCH_DEBUG")) {
			char cmd[128];
			snprintf(cmd, sizeof(cmd), "grep -A4 -E 'data.mdb|heap|envelopes' /proc/%d/smaps | grep -E 'mdb|heap|envel|^Rss' 1>&2", (int) getpid());
			if (system(cmd)) {}
		}
		if (getenv("BENCH_DEBUG"))
			fprintf(stderr, "after pass %d: HWM %ld anon %ld file %ld\n", pass, status_kib("VmHWM"), status_kib("RssAnon"), status_kib("RssFile"));
	}
	am_queue_close(q);
	dprintf(fd, "%f %f %f %zu %zu %ld %ld %ld\n", t_imp, c_imp, t_dup, stored, dups, status_kib("VmHWM"),
	    status_kib("RssAnon"), status_kib("RssFile"));
	return 0;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096;
	char dir[] = "/tmp/am-bench-XXXXXX", path[300];
	am_identity *me = NULL;
	am_queue *q = NULL;
	am_queue_options o = {.create = true, .map_size = 4ull << 30};
	am_envelope *envs;
	am_queue_result *res;
	uint8_t *payloads, dst[32];
	FILE *f;
	double sign_rate, verify_rate, t_send = 0, t0;

	if (am_core_init() != 0)
		return 2;
	if (argc == 5 && strcmp(argv[1], "--import") == 0)
		return importer(argv[2], strtoul(argv[3], NULL, 10), atoi(argv[4]));
	if (mkdtemp(dir) == NULL || n == 0 || batch == 0)
		return 2;
	printf("agent_mesh core benchmark: %zu envelopes of 1 KiB, batches of %zu, %ld cores\n", n, batch,
	    sysconf(_SC_NPROCESSORS_ONLN));
	sign_rate = raw_rate(0, 1.0);
	verify_rate = raw_rate(1, 1.0);
	printf("%-44s %10.0f /s  (baseline)\n", "raw libsodium sign, 1 KiB body", sign_rate);
	printf("%-44s %10.0f /s  (baseline)\n", "raw libsodium verify, 1 KiB body", verify_rate);

	/* send path: a node creating and committing its own envelopes */
	if (am_identity_generate(&me) != 0)
		return 1;
	randombytes_buf(dst, sizeof(dst));
	snprintf(path, sizeof(path), "%s/send", dir);
	if (am_queue_open(&q, path, &o) != 0 || am_queue_set_self(q, am_identity_pk(me)) != 0) {
		fprintf(stderr, "bench: %s\n", am_error_detail());
		return 1;
	}
	envs = calloc(batch, sizeof(*envs));
	payloads = malloc(batch * 1024);
	res = calloc(batch, sizeof(*res));
	snprintf(path, sizeof(path), "%s/envelopes.bin", dir);
	f = fopen(path, "wb");
	for (size_t done = 0; done < n;) {
		size_t k = n - done < batch ? n - done : batch;
		uint64_t now = am_now_ms();
		/* payloads made outside the timed part: random bytes (they do
		 * not compress, so the compression probe is on the path too) */
		randombytes_buf(payloads, k * 1024);
		t0 = now_s();
		for (size_t i = 0; i < k; i++) {
			am_envelope_spec s = {0};
			s.dest_kind = AM_DEST_NODE;
			memcpy(s.dest_node, dst, 32);
			s.created_ms = now;
			s.expires_ms = now + 86400000;
			s.priority = (uint8_t) (i % 4);
			s.payload = payloads + i * 1024;
			s.payload_len = 1024;
			if (am_envelope_create_decoded(&envs[i], &s, me) != 0)
				return 1;
			done++;
		}
		if (am_queue_put_own(q, envs, k, now, res) != 0)
			return 1;
		t_send += now_s() - t0;
		for (size_t i = 0; i < k; i++) {
			uint32_t len = (uint32_t) envs[i].raw_len;
			fwrite(&len, 4, 1, f);
			fwrite(envs[i].raw, 1, len, f);
			am_envelope_clear(&envs[i]);
		}
	}
	fclose(f);
	am_queue_close(q);
	printf("%-44s %10.0f /s  = %.2f x raw sign   (target >= 0.70)\n", "send path: build+sign+commit", n / t_send,
	    n / t_send / sign_rate);

	/* import path in a fresh process (exec), so its peak RSS is its own */
	int pfd[2];
	if (pipe(pfd) != 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		char fdtext[16], ntext[32], btext[32];
		snprintf(fdtext, sizeof(fdtext), "%d", pfd[1]);
		snprintf(ntext, sizeof(ntext), "%zu", n);
		snprintf(btext, sizeof(btext), "%zu", batch);
		close(pfd[0]);
		execl("/proc/self/exe", argv[0], "--import", dir, btext, fdtext, (char *) NULL);
		_exit(127);
	}
	close(pfd[1]);
	char line[256] = "";
	ssize_t r = read(pfd[0], line, sizeof(line) - 1);
	int st;
	waitpid(pid, &st, 0);
	if (r <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench: import child failed\n");
		return 1;
	}
	line[r] = '\0';
	double t_imp, c_imp, t_dup;
	size_t stored, dups;
	long hwm, anon, file;
	if (sscanf(line, "%lf %lf %lf %zu %zu %ld %ld %ld", &t_imp, &c_imp, &t_dup, &stored, &dups, &hwm, &anon, &file) != 8)
		return 1;
	printf("%-44s %10.0f /s  = %.2f x raw verify (target >= 0.80; wall clock incl. fsync)\n",
	    "import path: peek+dedup+verify+commit", stored / t_imp, stored / t_imp / verify_rate);
	printf("%-44s %10.0f /s  = %.2f x raw verify (CPU time of the importer)\n", "import path, per CPU second",
	    stored / c_imp, stored / c_imp / verify_rate);
	printf("%-44s %10.0f /s  = %.1f x raw verify (no signature checked)\n", "duplicates refused", dups / t_dup,
	    dups / t_dup / verify_rate);
	printf("%-44s %10.1f MiB (target < 64 MiB) for %zu imported\n", "importer peak RSS (VmHWM)", hwm / 1024.0,
	    stored);
	printf("%-44s %10.1f MiB anonymous + %.1f MiB mapped store pages\n", "importer RSS at the end", anon / 1024.0,
	    file / 1024.0);
	if (stored != n || dups != n)
		printf("WARNING: stored %zu and refused %zu duplicates of %zu\n", stored, dups, n);
	am_identity_free(me);
	free(payloads);
	free(envs);
	free(res);
	rm_rf(dir);
	return stored == n && dups == n ? 0 : 1;
}
