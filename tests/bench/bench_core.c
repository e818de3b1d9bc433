/*
 * bench_core.c — the core figures, each against a baseline measured in the
 * same run:
 *   raw libsodium Ed25519 sign and verify of a 1 KiB body (the baselines)
 *   send path   = build + sign + commit in batches       vs raw sign
 *   import path = peek + dedup + decode + verify + commit vs raw verify
 *   duplicate path = the same envelopes again (refused before any verify)
 *   peak RSS of a process importing N envelopes (default 100 000)
 * Each path runs twice: with plain calls (one thread does everything) and
 * through an am_queue_pipe (the caller signs or verifies while one writer
 * thread commits the previous batch). Prints figures; asserts nothing.
 *
 * usage: bench_core [N] [BATCH]     (N envelopes, default 100000; batch 2048)
 */
#define _GNU_SOURCE
#include "am_core.h"
#include "am_queue.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Rate of raw sign or verify over at least `secs` seconds. */
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

/* Verify rate over n distinct 1 KiB messages and signatures (bigger than
 * the caches): what an importer's verifications cost when each body comes
 * cold from memory, unlike the hot loop of raw_rate. */
static double
raw_verify_distinct(size_t n)
{
	uint8_t pk[32], sk[64];
	uint8_t *msgs = malloc(n * 1024), *sigs = malloc(n * 64);
	double t0, t;

	crypto_sign_keypair(pk, sk);
	randombytes_buf(msgs, n * 1024);
	for (size_t i = 0; i < n; i++)
		crypto_sign_detached(sigs + i * 64, NULL, msgs + i * 1024, 1024, sk);
	t0 = now_s();
	for (size_t i = 0; i < n; i++)
		if (crypto_sign_verify_detached(sigs + i * 64, msgs + i * 1024, 1024, pk) != 0)
			abort();
	t = now_s() - t0;
	free(msgs);
	free(sigs);
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

/* The send path into DIR/NAME; writes the envelopes to `out` when not NULL.
 * Returns envelopes per second (wall). */
static double
send_path(const char *dir, const char *name, size_t n, size_t batch, int piped, am_identity *me, FILE *out)
{
	am_queue *q = NULL;
	am_queue_pipe *p = NULL;
	am_queue_options o = {.create = true, .map_size = 4ull << 30};
	am_envelope *envs[2];
	am_queue_result *res[2];
	uint8_t *payloads = malloc(batch * 1024), dst[32] = {1};
	size_t k[2] = {0, 0};
	double t = 0, t0;
	char path[300];
	int cur = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (am_queue_open(&q, path, &o) != 0 || am_queue_set_self(q, am_identity_pk(me)) != 0 ||
	    (piped && am_queue_pipe_open(&p, q) != 0)) {
		fprintf(stderr, "bench: %s\n", am_error_detail());
		exit(1);
	}
	for (int b = 0; b < 2; b++) {
		envs[b] = calloc(batch, sizeof(am_envelope));
		res[b] = calloc(batch, sizeof(am_queue_result));
	}
	for (size_t done = 0; done < n; cur ^= 1) {
		size_t m = n - done < batch ? n - done : batch;
		uint64_t now = am_now_ms();
		/* payloads made outside the timed part: random bytes (they do
		 * not compress, so the compression probe is on the path too) */
		randombytes_buf(payloads, m * 1024);
		t0 = now_s();
		for (size_t i = 0; i < m; i++) {
			am_envelope_spec s = {0};
			s.dest_kind = AM_DEST_NODE;
			memcpy(s.dest_node, dst, 32);
			s.created_ms = now;
			s.expires_ms = now + 86400000;
			s.priority = (uint8_t) (i % 4);
			s.payload = payloads + i * 1024;
			s.payload_len = 1024;
			if (am_envelope_create_decoded(&envs[cur][i], &s, me) != 0)
				exit(1);
		}
		if ((piped ? am_queue_pipe_put_own(p, envs[cur], m, now, res[cur])
		           : am_queue_put_own(q, envs[cur], m, now, res[cur])) != 0)
			exit(1);
		t += now_s() - t0;
		k[cur] = m;
		done += m;
		/* the other buffer's batch has committed by now */
		int other = piped ? cur ^ 1 : cur;
		for (size_t i = 0; i < k[other]; i++) {
			if (out != NULL) {
				uint32_t len = (uint32_t) envs[other][i].raw_len;
				fwrite(&len, 4, 1, out);
				fwrite(envs[other][i].raw, 1, len, out);
			}
			am_envelope_clear(&envs[other][i]);
		}
		k[other] = 0;
	}
	t0 = now_s();
	if (p != NULL && am_queue_pipe_close(p) != 0)
		exit(1);
	t += now_s() - t0;
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < k[b]; i++) {
			if (out != NULL) {
				uint32_t len = (uint32_t) envs[b][i].raw_len;
				fwrite(&len, 4, 1, out);
				fwrite(envs[b][i].raw, 1, len, out);
			}
			am_envelope_clear(&envs[b][i]);
		}
		free(envs[b]);
		free(res[b]);
	}
	free(payloads);
	am_queue_close(q);
	return n / t;
}

/* The importer (a fresh process): reads DIR/envelopes.bin in batches into a
 * fresh store, then once more (all duplicates), and writes its figures to
 * fd. */
static int
importer(const char *dir, size_t batch, int piped, int fd)
{
	am_queue *q = NULL;
	am_queue_pipe *p = NULL;
	am_queue_options o = {.create = true, .map_size = 4ull << 30};
	am_queue_item *items[2];
	am_queue_result *res[2];
	uint8_t *buf[2], dst[32] = {1};
	size_t cap = batch * 2048, k[2] = {0, 0};
	double t_imp = 0, c_imp = 0, c_in = 0, t_dup = 0, t0, c0;
	size_t stored = 0, dups = 0;
	char path[300];
	FILE *f;
	int cur = 0;

	snprintf(path, sizeof(path), "%s/import-%d", dir, piped);
	if (am_queue_open(&q, path, &o) != 0 || am_queue_set_self(q, dst) != 0 || (piped && am_queue_pipe_open(&p, q) != 0))
		return 1;
	for (int b = 0; b < 2; b++) {
		items[b] = calloc(batch, sizeof(am_queue_item));
		res[b] = calloc(batch, sizeof(am_queue_result));
		buf[b] = malloc(cap);
	}
	for (int pass = 0; pass < 2; pass++) {
		snprintf(path, sizeof(path), "%s/envelopes.bin", dir);
		if ((f = fopen(path, "rb")) == NULL)
			return 1;
		t0 = now_s();
		c0 = cpu_s();
		for (;; cur ^= 1) {
			size_t m = 0, off = 0;
			uint32_t len;
			while (m < batch && fread(&len, 4, 1, f) == 1) {
				if (off + len > cap || fread(buf[cur] + off, 1, len, f) != len)
					return 1;
				items[cur][m].raw = buf[cur] + off;
				items[cur][m].len = len;
				off += len;
				m++;
			}
			if (m == 0)
				break;
			/* CPU of the import itself: reading the file is the I/O
			 * layer's (a socket or a stick), not the store's */
			double cb = cpu_s();
			if ((piped ? am_queue_pipe_put_batch(p, items[cur], m, am_now_ms(), res[cur])
			           : am_queue_put_batch(q, items[cur], m, am_now_ms(), res[cur])) != 0)
				return 1;
			if (pass == 0)
				c_in += cpu_s() - cb;
			k[cur] = m;
			int other = piped ? cur ^ 1 : cur;
			for (size_t i = 0; i < k[other]; i++) {
				stored += pass == 0 && res[other][i].rc == 0;
				dups += pass == 1 && res[other][i].rc == AM_EDUP;
			}
			k[other] = 0;
		}
		if (p != NULL && am_queue_pipe_flush(p) != 0)
			return 1;
		for (int b = 0; b < 2; b++) {
			for (size_t i = 0; i < k[b]; i++) {
				stored += pass == 0 && res[b][i].rc == 0;
				dups += pass == 1 && res[b][i].rc == AM_EDUP;
			}
			k[b] = 0;
		}
		if (pass == 0) {
			t_imp = now_s() - t0;
			c_imp = piped ? cpu_s() - c0 : c_in;
		} else {
			t_dup = now_s() - t0;
		}
		fclose(f);
	}
	if (am_queue_pipe_close(p) != 0)
		return 1;
	am_queue_close(q);
	dprintf(fd, "%f %f %f %zu %zu %ld\n", t_imp, c_imp, t_dup, stored, dups, status_kib("VmHWM"));
	return 0;
}

static int
run_importer(const char *self, const char *dir, size_t n, size_t batch, int piped, double verify_rate)
{
	char bt[32], pt[8], fdt[16], line[256] = "";
	int pfd[2], st;
	pid_t pid;
	ssize_t r;

	if (pipe(pfd) != 0)
		return 1;
	if ((pid = fork()) == 0) {
		/* exec, so the importer's peak RSS is its own */
		snprintf(bt, sizeof(bt), "%zu", batch);
		snprintf(pt, sizeof(pt), "%d", piped);
		snprintf(fdt, sizeof(fdt), "%d", pfd[1]);
		close(pfd[0]);
		execl("/proc/self/exe", self, "--import", dir, bt, pt, fdt, (char *) NULL);
		_exit(127);
	}
	close(pfd[1]);
	r = read(pfd[0], line, sizeof(line) - 1);
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (r <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench: importer failed\n");
		return 1;
	}
	line[r] = '\0';
	double t_imp, c_imp, t_dup;
	size_t stored, dups;
	long hwm;
	if (sscanf(line, "%lf %lf %lf %zu %zu %ld", &t_imp, &c_imp, &t_dup, &stored, &dups, &hwm) != 6)
		return 1;
	printf("%-44s %8.0f /s  = %.2f x raw verify (target >= 0.80)\n",
	    piped ? "import path (piped): verify | commit" : "import path (plain): peek+dedup+verify+commit",
	    stored / t_imp, stored / t_imp / verify_rate);
	printf("%-44s %8.1f us  = %.2f x raw verify per core (raw %.1f us; target >= 0.80 on one core)\n",
	    "  CPU per envelope, all threads", c_imp / stored * 1e6, (1e6 / verify_rate) / (c_imp / stored * 1e6),
	    1e6 / verify_rate);
	printf("%-44s %8.0f /s  = %.1f x raw verify (no signature checked)\n", "  duplicates refused", dups / t_dup,
	    dups / t_dup / verify_rate);
	printf("%-44s %8.1f MiB (target < 64 MiB) for %zu envelopes\n", "  importer peak RSS (VmHWM)", hwm / 1024.0,
	    stored);
	if (stored != n || dups != n) {
		printf("ERROR: stored %zu and refused %zu duplicates of %zu\n", stored, dups, n);
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	size_t n, batch;
	char dir[] = "/tmp/am-bench-XXXXXX", path[300];
	am_identity *me = NULL;
	double sign_rate, verify_rate, plain, piped;
	FILE *f;
	int rc = 0;

	if (am_core_init() != 0)
		return 2;
	if (argc == 6 && strcmp(argv[1], "--import") == 0)
		return importer(argv[2], strtoul(argv[3], NULL, 10), atoi(argv[4]), atoi(argv[5]));
	if (argc == 2 && strcmp(argv[1], "--raw-verify") == 0) {
		/* for other benchmarks' baselines: "RATE CORES" */
		printf("%.0f %ld\n", raw_rate(1, 1.0), sysconf(_SC_NPROCESSORS_ONLN));
		return 0;
	}
	n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 2048;
	if (mkdtemp(dir) == NULL || n == 0 || batch == 0 || am_identity_generate(&me) != 0)
		return 2;
	printf("agent_mesh core benchmark: %zu envelopes of 1 KiB payload, batches of %zu, %ld cores\n", n, batch,
	    sysconf(_SC_NPROCESSORS_ONLN));
	sign_rate = raw_rate(0, 1.0);
	verify_rate = raw_rate(1, 1.0);
	printf("%-44s %8.0f /s  (baseline)\n", "raw libsodium sign, 1 KiB body", sign_rate);
	printf("%-44s %8.0f /s  (baseline)\n", "raw libsodium verify, 1 KiB body", verify_rate);
	printf("%-44s %8.0f /s  (for reference: 50 000 distinct bodies, cold)\n", "raw libsodium verify, distinct bodies",
	    raw_verify_distinct(50000));

	snprintf(path, sizeof(path), "%s/envelopes.bin", dir);
	if ((f = fopen(path, "wb")) == NULL)
		return 1;
	plain = send_path(dir, "send-plain", n, batch, 0, me, f);
	fclose(f);
	piped = send_path(dir, "send-piped", n, batch, 1, me, NULL);
	printf("%-44s %8.0f /s  = %.2f x raw sign (target >= 0.70)\n", "send path (plain): build+sign+commit", plain,
	    plain / sign_rate);
	printf("%-44s %8.0f /s  = %.2f x raw sign (target >= 0.70)\n", "send path (piped): build+sign | commit", piped,
	    piped / sign_rate);
	rc |= run_importer(argv[0], dir, n, batch, 0, verify_rate);
	rc |= run_importer(argv[0], dir, n, batch, 1, verify_rate);
	am_identity_free(me);
	rm_rf(dir);
	return rc;
}
