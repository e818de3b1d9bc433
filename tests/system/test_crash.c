/*
 * test_crash.c — kill -9 at random moments loses nothing acknowledged.
 *
 * The same binary plays three parts:
 *   test_crash writer DIR SEED   puts batches of envelopes addressed to the
 *                                store's owner; after each commit prints
 *                                "committed <id>" per envelope, then flushes.
 *   test_crash consumer DIR      lists the inbox, prints "seen <id>", acks,
 *                                prints "acked <id>" once the ack committed.
 *   test_crash DIR ROUNDS        the driver: starts a writer and a consumer,
 *                                SIGKILLs each at a random moment, repeats,
 *                                then checks that every committed envelope
 *                                is still held (or was delivered after an
 *                                ack), that no acked envelope is in the
 *                                inbox, and that nothing was seen again after
 *                                its ack.
 */
#define _GNU_SOURCE
#include "am_core.h"
#include "am_queue.h"
#include "../check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 40
#define MAX_IDS 400000

static int
writer(const char *dir, unsigned seed)
{
	am_queue *q = NULL;
	am_identity *from = NULL;
	uint8_t owner[32], s[32] = {9};
	am_queue_item items[BATCH];
	am_queue_result res[BATCH];
	char hex[65];

	REQUIRE(am_queue_open(&q, dir, NULL) == 0);
	REQUIRE(am_queue_get_self(q, owner) == 0);
	REQUIRE(am_identity_from_seed(&from, s) == 0);
	for (unsigned round = 0; round < 100000; round++) {
		for (int i = 0; i < BATCH; i++) {
			am_envelope_spec sp = {0};
			uint8_t id[32], *raw;
			size_t len;
			char text[64];
			snprintf(text, sizeof(text), "seed %u round %u item %d", seed, round, i);
			sp.dest_kind = AM_DEST_NODE;
			memcpy(sp.dest_node, owner, 32);
			sp.created_ms = am_now_ms();
			sp.expires_ms = sp.created_ms + 3600000;
			sp.payload = (const uint8_t *) text;
			sp.payload_len = strlen(text);
			REQUIRE(am_envelope_create(&raw, &len, id, &sp, from) == 0);
			items[i].raw = raw;
			items[i].len = len;
		}
		REQUIRE(am_queue_put_batch(q, items, BATCH, am_now_ms(), res) == 0);
		for (int i = 0; i < BATCH; i++) {
			if (res[i].rc == 0) {
				am_id_format(hex, res[i].id);
				printf("committed %s\n", hex);
			}
			free((void *) items[i].raw);
		}
		fflush(stdout);
	}
	return 0;
}

static int
consumer(const char *dir)
{
	am_queue *q = NULL;
	am_queue_inbox_entry ent[16];
	size_t n;
	char hex[65];

	REQUIRE(am_queue_open(&q, dir, NULL) == 0);
	for (unsigned loops = 0; loops < 1000000; loops++) {
		REQUIRE(am_queue_inbox_list(q, 0, ent, 16, &n) == 0);
		if (n == 0) {
			usleep(1000);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			am_id_format(hex, ent[i].id);
			printf("seen %s\n", hex);
			fflush(stdout);
			REQUIRE(am_queue_inbox_ack(q, ent[i].id, am_now_ms()) == 0);
			printf("acked %s\n", hex);
			fflush(stdout);
		}
	}
	return 0;
}

/* --- the driver --- */

typedef struct idset {
	char (*ids)[65];
	size_t n;
} idset;

static int
cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool
has(const idset *s, const char *id)
{
	return bsearch(id, s->ids, s->n, 65, cmp) != NULL;
}

static void
add(idset *s, const char *id)
{
	REQUIRE(s->n < MAX_IDS);
	memcpy(s->ids[s->n++], id, 65);
}

struct ev {
	char id[65];
	size_t line;
	bool ack;
};

static int
cmp_ev(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static pid_t
spawn(char *const argv[], int *out_fd)
{
	int p[2];
	pid_t pid;

	REQUIRE(pipe(p) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

/* Read what a child printed into a growing buffer until it closes. */
static void
drain(int fd, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};

	while (poll(&pfd, 1, timeout_ms) > 0) {
		ssize_t r;
		if (*cap - *len < 65536) {
			*cap = *cap * 2 + 65536;
			*buf = realloc(*buf, *cap);
			REQUIRE(*buf != NULL);
		}
		r = read(fd, *buf + *len, *cap - *len - 1);
		if (r <= 0)
			break;
		*len += (size_t) r;
	}
	(*buf)[*len] = '\0';
}

int
main(int argc, char **argv)
{
	const char *dir;
	int rounds;
	idset committed = {0}, acked = {0};
	am_queue *q = NULL;
	uint8_t s[32] = {3};
	am_identity *owner = NULL;
	unsigned long lost = 0, dup_after_ack = 0, acked_in_inbox = 0, seen_after = 0;

	REQUIRE(am_core_init() == 0);
	if (argc == 4 && strcmp(argv[1], "writer") == 0)
		return writer(argv[2], (unsigned) atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "consumer") == 0)
		return consumer(argv[2]);
	if (argc != 3) {
		fprintf(stderr, "usage: test_crash DIR ROUNDS\n");
		return 2;
	}
	dir = argv[1];
	rounds = atoi(argv[2]);
	{
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		REQUIRE(system(cmd) == 0);
	}
	am_queue_options o = {.create = true};
	REQUIRE(am_queue_open(&q, dir, &o) == 0);
	REQUIRE(am_identity_from_seed(&owner, s) == 0);
	REQUIRE(am_queue_set_self(q, am_identity_pk(owner)) == 0);
	am_queue_close(q);
	committed.ids = calloc(MAX_IDS, 65);
	acked.ids = calloc(MAX_IDS, 65);
	REQUIRE(committed.ids && acked.ids);
	srand((unsigned) time(NULL) ^ (unsigned) getpid());

	/* Keep every child's output, checked after all rounds. */
	char *wbuf = NULL, *cbuf = NULL;
	size_t wlen = 0, wcap = 0, clen = 0, ccap = 0;
	for (int r = 0; r < rounds; r++) {
		char seed[16];
		int wfd, cfd, st;
		snprintf(seed, sizeof(seed), "%d", r);
		char *wargv[] = {argv[0], "writer", (char *) dir, seed, NULL};
		char *cargv[] = {argv[0], "consumer", (char *) dir, NULL};
		pid_t w = spawn(wargv, &wfd), c = spawn(cargv, &cfd);
		/* random kill points between 5 and 120 ms, independently */
		int tw = 5 + rand() % 115, tc = 5 + rand() % 115;
		int first = tw < tc ? tw : tc, second = tw < tc ? tc : tw;
		usleep((useconds_t) first * 1000);
		kill(tw < tc ? w : c, SIGKILL);
		usleep((useconds_t) (second - first) * 1000);
		kill(tw < tc ? c : w, SIGKILL);
		waitpid(w, &st, 0);
		REQUIRE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		waitpid(c, &st, 0);
		REQUIRE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		drain(wfd, &wbuf, &wlen, &wcap, 200);
		drain(cfd, &cbuf, &clen, &ccap, 200);
		close(wfd);
		close(cfd);
		/* a killed writer may leave half a line: cut back to the last newline */
		while (wlen > 0 && wbuf[wlen - 1] != '\n')
			wlen--;
		while (clen > 0 && cbuf[clen - 1] != '\n')
			clen--;
	}
	if (wbuf == NULL || cbuf == NULL) {
		fprintf(stderr, "children printed nothing\n");
		return 1;
	}
	wbuf[wlen] = '\0';
	cbuf[clen] = '\0';
	for (char *line = strtok(wbuf, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "committed ", 10) == 0 && strlen(line + 10) == 64)
			add(&committed, line + 10);
	qsort(committed.ids, committed.n, 65, cmp);
	/* acked set first, then a second pass in order for seen-after-ack */
	char *copy = strdup(cbuf);
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "acked ", 6) == 0 && strlen(line + 6) == 64)
			add(&acked, line + 6);
	free(copy);
	{
		/* one sort of (id, line) pairs finds any "seen" after an "acked" */
		struct ev *evs = calloc(MAX_IDS * 2, sizeof(*evs));
		size_t ne = 0, lineno = 0;
		REQUIRE(evs != NULL);
		for (char *line = strtok(cbuf, "\n"); line; line = strtok(NULL, "\n"), lineno++) {
			bool is_ack = strncmp(line, "acked ", 6) == 0, is_seen = strncmp(line, "seen ", 5) == 0;
			const char *id = is_ack ? line + 6 : line + 5;
			if ((!is_ack && !is_seen) || strlen(id) != 64 || ne == MAX_IDS * 2)
				continue;
			memcpy(evs[ne].id, id, 65);
			evs[ne].line = lineno;
			evs[ne].ack = is_ack;
			ne++;
		}
		qsort(evs, ne, sizeof(*evs), cmp_ev);
		for (size_t i = 1; i < ne; i++)
			if (!evs[i].ack && strcmp(evs[i].id, evs[i - 1].id) == 0 && evs[i - 1].ack)
				seen_after++;
		free(evs);
	}
	qsort(acked.ids, acked.n, 65, cmp);

	REQUIRE(am_queue_open(&q, dir, NULL) == 0);
	for (size_t i = 0; i < committed.n; i++) {
		uint8_t id[32];
		int rc;
		REQUIRE(am_id_parse(id, committed.ids[i]) == 0);
		rc = am_queue_has(q, id);
		/* held (unacked, in the inbox) or delivered (acked, tombstoned) */
		if (rc != 0 && rc != AM_ETOMBSTONE)
			lost++;
		if (rc == AM_ETOMBSTONE && !has(&acked, committed.ids[i]))
			dup_after_ack++; /* tombstoned without a recorded ack: the ack committed but its line was lost, fine */
	}
	{
		am_queue_inbox_entry *ent = calloc(MAX_IDS, sizeof(*ent));
		size_t n = 0;
		char hex[65];
		REQUIRE(am_queue_inbox_list(q, 0, ent, MAX_IDS, &n) == 0);
		for (size_t i = 0; i < n; i++) {
			am_id_format(hex, ent[i].id);
			if (has(&acked, hex))
				acked_in_inbox++;
		}
		printf("inbox holds %zu unacked\n", n);
		free(ent);
	}
	am_queue_close(q);
	printf("%d rounds: %zu committed, %zu acked; lost %lu, acked-but-in-inbox %lu, seen-after-ack %lu, "
	       "delivered-with-ack-line-lost %lu\n",
	    rounds, committed.n, acked.n, lost, acked_in_inbox, seen_after, dup_after_ack);
	CHECK(rounds >= 1);
	CHECK(committed.n > 0);
	CHECK(acked.n > 0);
	CHECK(lost == 0);
	CHECK(acked_in_inbox == 0);
	CHECK(seen_after == 0);
	free(committed.ids);
	free(acked.ids);
	free(wbuf);
	free(cbuf);
	am_identity_free(owner);
	return check_done("test_crash");
}
