/*
 * tools.c — a node's tools: one JSON file each under DATA/tools/,
 *
 *   {"name": "read_sensor", "description": "...",
 *    "input_schema": {JSON Schema of the arguments},
 *    "command": ["/usr/local/bin/read-sensor", "--id", "{sensor}"],
 *    "cwd": "/var/lib/agent-mesh/node", "timeout": "10s",
 *    "max_output": 65536, "env": ["PATH", "LANG"]}
 *
 * and running one: no shell; argv elements "{arg}" are replaced by that
 * argument's value (strings as they are, anything else as JSON); the whole
 * arguments object is also the program's standard input. The child gets
 * its own process group (and, where allowed, its own PID namespace, so
 * no descendant outlives it), only the allowed environment variables
 * (plus AGENT_MESH_TOOL, AGENT_MESH_CALL_ID and AGENT_MESH_WORKFLOW_ID),
 * no core dumps, a CPU limit just over its timeout, at most 256 open
 * files and no file past max_file_size.
 * Past the timeout the group gets SIGTERM, then SIGKILL a second later;
 * past max_output bytes on stdout or stderr it gets SIGKILL at once.
 */
#define _GNU_SOURCE /* clone flags (Linux; a plain fork elsewhere) */
#include "am_node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/syscall.h>
#endif

extern char **environ;

struct am_tool {
	char name[AM_TAG_MAX + 1];
	json_t *def; /* the whole file, for the catalog */
	char **argv;
	size_t argc;
	char cwd[1024];
	uint64_t timeout_ms;
	size_t max_output;
	uint64_t max_file_size; /* RLIMIT_FSIZE: no file it writes grows past this */
	char **env;
	size_t nenv;
};

struct am_toolbox {
	am_tool *v;
	size_t n;
};

static void
tool_free(am_tool *t)
{
	for (size_t i = 0; i < t->argc; i++)
		free(t->argv[i]);
	free(t->argv);
	for (size_t i = 0; i < t->nenv; i++)
		free(t->env[i]);
	free(t->env);
	json_decref(t->def);
}

void
am_toolbox_free(am_toolbox *tb)
{
	if (tb == NULL)
		return;
	for (size_t i = 0; i < tb->n; i++)
		tool_free(&tb->v[i]);
	free(tb->v);
	free(tb);
}

static int
load_one(am_tool *t, const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v, *e;
	const char *s;
	size_t i;

	memset(t, 0, sizeof(*t));
#define BAD(...) \
	do { \
		am_error_set(AM_EFIELD, __VA_ARGS__); \
		json_decref(j); \
		t->def = NULL; \
		tool_free(t); \
		return AM_EFIELD; \
	} while (0)
	if (j == NULL)
		return am_error_set(AM_EMALFORMED, "%s: line %d: %s", path, jerr.line, jerr.text);
	t->def = j;
	if ((s = json_string_value(json_object_get(j, "name"))) == NULL || am_tag_check("name", s, strlen(s)) != 0)
		BAD("%s: \"name\" must be a tool name of [A-Za-z0-9._:-]", path);
	snprintf(t->name, sizeof(t->name), "%s", s);
	if ((v = json_object_get(j, "description")) != NULL && !json_is_string(v))
		BAD("%s: \"description\" must be a string", path);
	if ((v = json_object_get(j, "input_schema")) != NULL && !json_is_object(v))
		BAD("%s: \"input_schema\" must be a JSON Schema object", path);
	if (v != NULL) {
		char why[400];
		if (am_schema_validate(v, why, sizeof(why)) != 0)
			BAD("%s: %s", path, why);
	}
	if (!json_is_array(v = json_object_get(j, "command")) || json_array_size(v) == 0 || json_array_size(v) > 64)
		BAD("%s: \"command\" must be a list: the program (an absolute path) and its arguments", path);
	if ((t->argv = calloc(json_array_size(v) + 1, sizeof(char *))) == NULL)
		BAD("out of memory");
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			BAD("%s: \"command\" item %zu must be a string", path, i);
		t->argv[t->argc++] = strdup(json_string_value(e));
	}
	if (t->argv[0][0] != '/')
		BAD("%s: the program \"%s\" must be an absolute path (there is no shell and no PATH search)", path,
		    t->argv[0]);
	if (access(t->argv[0], X_OK) != 0)
		BAD("%s: the program %s is not executable: %s", path, t->argv[0], strerror(errno));
	snprintf(t->cwd, sizeof(t->cwd), "/");
	if ((v = json_object_get(j, "cwd")) != NULL) {
		if (!json_is_string(v) || json_string_value(v)[0] != '/')
			BAD("%s: \"cwd\" must be an absolute path", path);
		snprintf(t->cwd, sizeof(t->cwd), "%s", json_string_value(v));
	}
	t->timeout_ms = 30000;
	if ((v = json_object_get(j, "timeout")) != NULL) {
		if (json_is_integer(v) && json_integer_value(v) > 0)
			t->timeout_ms = (uint64_t) json_integer_value(v);
		else if (!json_is_string(v) || am_duration_parse(&t->timeout_ms, json_string_value(v)) != 0 ||
		         t->timeout_ms == 0)
			BAD("%s: \"timeout\" must be milliseconds or a duration like \"10s\"", path);
	}
	t->max_output = 65536;
	if ((v = json_object_get(j, "max_output")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 20))
			BAD("%s: \"max_output\" must be 1..1048576 bytes", path);
		t->max_output = (size_t) json_integer_value(v);
	}
	t->max_file_size = 64ull << 20;
	if ((v = json_object_get(j, "max_file_size")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			BAD("%s: \"max_file_size\" must be bytes (0: it may write no file)", path);
		t->max_file_size = (uint64_t) json_integer_value(v);
	}
	if ((v = json_object_get(j, "env")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) > 64)
			BAD("%s: \"env\" must be a list of variable names to pass through", path);
		t->env = calloc(json_array_size(v) + 1, sizeof(char *));
		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				BAD("%s: \"env\" item %zu must be a name", path, i);
			t->env[t->nenv++] = strdup(json_string_value(e));
		}
	}
#undef BAD
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const am_tool *) a)->name, ((const am_tool *) b)->name);
}

int
am_toolbox_load(am_toolbox **out, const char *dir)
{
	am_toolbox *tb = calloc(1, sizeof(*tb));
	char **names = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (tb == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	rc = am_dir_list(&names, &n, dir, ".json");
	if (rc == AM_ENOTFOUND) { /* no tools folder: no tools */
		*out = tb;
		return 0;
	}
	if (rc != 0) {
		free(tb);
		return rc;
	}
	if ((tb->v = calloc(n ? n : 1, sizeof(*tb->v))) == NULL) {
		am_dir_list_free(names, n);
		free(tb);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((rc = load_one(&tb->v[tb->n], path)) != 0)
			break;
		for (size_t k = 0; k < tb->n; k++)
			if (strcmp(tb->v[k].name, tb->v[tb->n].name) == 0) {
				rc = am_error_set(AM_EFIELD, "%s: a second tool named \"%s\"", path, tb->v[k].name);
				tool_free(&tb->v[tb->n]);
				break;
			}
		if (rc != 0)
			break;
		tb->n++;
	}
	am_dir_list_free(names, n);
	if (rc != 0) {
		am_toolbox_free(tb);
		return rc;
	}
	qsort(tb->v, tb->n, sizeof(*tb->v), by_name);
	*out = tb;
	return 0;
}

const am_tool *
am_toolbox_find(const am_toolbox *tb, const char *name)
{
	for (size_t i = 0; tb != NULL && i < tb->n; i++)
		if (strcmp(tb->v[i].name, name) == 0)
			return &tb->v[i];
	return NULL;
}

size_t
am_toolbox_count(const am_toolbox *tb)
{
	return tb ? tb->n : 0;
}

json_t *
am_toolbox_catalog(const am_toolbox *tb)
{
	json_t *a = json_array();

	for (size_t i = 0; tb != NULL && i < tb->n; i++) {
		const am_tool *t = &tb->v[i];
		json_t *schema = json_object_get(t->def, "input_schema");
		const char *desc = json_string_value(json_object_get(t->def, "description"));
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "description", desc ? desc : "",
		    "input_schema", schema ? json_incref(schema) : json_pack("{s:s}", "type", "object"), "timeout_ms",
		    (json_int_t) t->timeout_ms));
	}
	return a;
}

const json_t *
am_tool_schema(const am_tool *t)
{
	return json_object_get(t->def, "input_schema");
}

/* ---- running ---- */

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static char *
arg_text(const json_t *args, const char *name)
{
	const json_t *v = json_object_get(args, name);
	if (v == NULL)
		return strdup("");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* argv with "{name}" parts replaced */
static char **
build_argv(const am_tool *t, const json_t *args)
{
	char **av = calloc(t->argc + 1, sizeof(char *));

	for (size_t i = 0; av != NULL && i < t->argc; i++) {
		const char *s = t->argv[i];
		size_t cap = strlen(s) + 1, len = 0;
		char *out = malloc(cap);
		while (out != NULL && *s) {
			const char *close;
			if (*s == '{' && (close = strchr(s, '}')) != NULL && close - s - 1 > 0 && close - s - 1 <= AM_TAG_MAX) {
				char name[AM_TAG_MAX + 1];
				memcpy(name, s + 1, (size_t) (close - s - 1));
				name[close - s - 1] = '\0';
				char *val = arg_text(args, name);
				size_t vl = val ? strlen(val) : 0;
				char *grown = realloc(out, cap + vl);
				if (grown == NULL) {
					free(val);
					free(out);
					out = NULL;
					break;
				}
				out = grown;
				cap += vl;
				memcpy(out + len, val ? val : "", vl);
				len += vl;
				free(val);
				s = close + 1;
			} else {
				out[len++] = *s++;
			}
		}
		if (out != NULL)
			out[len] = '\0';
		av[i] = out;
	}
	return av;
}

static char **
build_env(const am_tool *t, const char *call_id, const char *workflow_id)
{
	char **env = calloc(t->nenv + 4, sizeof(char *));
	size_t n = 0;

	for (size_t i = 0; env != NULL && i < t->nenv; i++) {
		const char *v = getenv(t->env[i]);
		if (v != NULL && (env[n] = malloc(strlen(t->env[i]) + strlen(v) + 2)) != NULL)
			sprintf(env[n++], "%s=%s", t->env[i], v);
	}
	if (env != NULL) {
		char buf[512];
		snprintf(buf, sizeof(buf), "AGENT_MESH_TOOL=%s", t->name);
		env[n++] = strdup(buf);
		snprintf(buf, sizeof(buf), "AGENT_MESH_CALL_ID=%s", call_id ? call_id : "");
		env[n++] = strdup(buf);
		snprintf(buf, sizeof(buf), "AGENT_MESH_WORKFLOW_ID=%s", workflow_id ? workflow_id : "");
		env[n++] = strdup(buf);
	}
	return env;
}

static void
free_list(char **l)
{
	for (size_t i = 0; l != NULL && l[i] != NULL; i++)
		free(l[i]);
	free(l);
}

void
am_tool_run_clear(am_tool_run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* fork, as the first process of a new PID namespace when allowed
 * (*contained set), else a plain fork */
static pid_t
contained_fork(bool *contained)
{
#if defined(__linux__) && defined(SYS_clone) && defined(CLONE_NEWPID)
	/* like fork() (no new stack: the child runs on a copy of ours) */
	pid_t pid = (pid_t) syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid >= 0) {
		*contained = true;
		return pid;
	}
	if (errno != EPERM && errno != EINVAL && errno != ENOSYS && errno != EUSERS && errno != ENOSPC)
		return -1;
#endif
	*contained = false;
	return fork();
}

/* the child has exited (reaped here once) */
static bool
child_done(pid_t pid, int *status, bool *reaped)
{
	if (!*reaped && waitpid(pid, status, WNOHANG) == pid)
		*reaped = true;
	return *reaped;
}

/* Every descriptor from lo up closed in the child (the daemon's sockets,
 * LMDB's file, other calls' pipes a thread opened just before our fork):
 * one close_range(2) on Linux 5.9 and later, else a close each up to 4096. */
static void
close_from(int lo)
{
#if defined(__linux__) && defined(SYS_close_range)
	if (syscall(SYS_close_range, (unsigned) lo, ~0u, 0u) == 0)
		return;
#endif
	for (int fd = lo; fd < 4096; fd++)
		close(fd);
}

/* the child: async-signal-safe calls only, then exec */
static void __attribute__((noreturn))
exec_child(const am_tool *t, char **av, char **env, int in, int out, int err)
{
	sigset_t all;
	struct rlimit cpu = {(rlim_t) (t->timeout_ms / 1000 + 2), (rlim_t) (t->timeout_ms / 1000 + 3)};
	struct rlimit files = {256, 256}, core = {0, 0};
	struct rlimit fsize = {(rlim_t) t->max_file_size, (rlim_t) t->max_file_size};

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* the daemon blocks SIGTERM for sigwait */
	signal(SIGPIPE, SIG_DFL);             /* and ignores SIGPIPE; exec keeps "ignored" */
	setpgid(0, 0);
	setrlimit(RLIMIT_CPU, &cpu);
	setrlimit(RLIMIT_NOFILE, &files);
	setrlimit(RLIMIT_CORE, &core);
	setrlimit(RLIMIT_FSIZE, &fsize);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	close_from(3);
	if (chdir(t->cwd) != 0)
		_exit(126);
	execve(av[0], av, env);
	_exit(127);
}

/* The parent's side of one run: the pipes (-1 once closed), the input
 * still to write, and where the child stands. */
struct pump {
	const am_tool *t;
	am_tool_run *r;
	pid_t pid;
	int in, out, err;
	const char *input;
	size_t in_len, in_off;
	uint64_t start, term_at;
	bool killed, reaped;
	int status;
};

static void
stop_child(struct pump *p, int sig, const char *status)
{
	kill(-p->pid, sig);
	p->killed = true;
	snprintf(p->r->status, sizeof(p->r->status), "%s", status);
}

/* cancellation, the timeout and the kill a second after it; false when
 * reading must stop (descendants hold the pipes past the timeout) */
static bool
pump_deadlines(struct pump *p, const atomic_int *cancel, uint64_t now)
{
	uint64_t timeout = p->t->timeout_ms;

	/* the daemon is stopping: the call stays "running" and is reported
	 * interrupted at the next start */
	if (!p->killed && cancel != NULL && *cancel)
		stop_child(p, SIGKILL, "cancelled");
	if (!p->killed && now - p->start >= timeout) {
		stop_child(p, SIGTERM, "timeout");
		p->term_at = now;
	}
	if (p->killed && p->term_at && now - p->term_at >= 1000) {
		kill(-p->pid, SIGKILL);
		p->term_at = 0;
	}
	/* past the timeout and the kill, whatever still holds our pipes (a
	 * descendant that escaped the group) does not hold us */
	if (p->killed && now - p->start >= timeout + 2000) {
		snprintf(p->r->why, sizeof(p->r->why), "descendants kept its output open past the timeout");
		return false;
	}
	if (!p->killed && child_done(p->pid, &p->status, &p->reaped) && now - p->start >= timeout)
		stop_child(p, SIGKILL, "timeout");
	return true;
}

/* the input written on, or one read of output kept up to max_output (the
 * child is stopped past it) */
static void
pump_fd(struct pump *p, int fd)
{
	am_tool_run *r = p->r;
	char chunk[4096];

	if (fd == p->in) {
		ssize_t w = write(p->in, p->input + p->in_off, p->in_len - p->in_off);
		if (w > 0)
			p->in_off += (size_t) w;
		if (w < 0 || p->in_off == p->in_len) {
			close(p->in);
			p->in = -1;
		}
		return;
	}
	bool is_out = fd == p->out;
	char *buf = is_out ? r->out : r->err;
	size_t *len = is_out ? &r->out_len : &r->err_len;
	ssize_t k = read(fd, chunk, sizeof(chunk));
	if (k <= 0) {
		close(fd);
		*(is_out ? &p->out : &p->err) = -1;
		return;
	}
	size_t room = p->t->max_output - *len, take = (size_t) k < room ? (size_t) k : room;
	memcpy(buf + *len, chunk, take);
	*len += take;
	if ((size_t) k > room && !p->killed) {
		stop_child(p, SIGKILL, "output_limit");
		*(is_out ? &r->out_truncated : &r->err_truncated) = true;
	}
}

/* until both outputs are closed, or the deadlines say stop */
static void
pump_run(struct pump *p, const atomic_int *cancel)
{
	while (p->out >= 0 || p->err >= 0) {
		struct pollfd fds[3];
		int nfds = 0, wait_ms;
		uint64_t now = mono_ms();
		if (!pump_deadlines(p, cancel, now))
			break;
		wait_ms = p->killed ? 100 : (int) (p->t->timeout_ms - (now - p->start));
		if (wait_ms > 200)
			wait_ms = 200;
		if (p->out >= 0)
			fds[nfds++] = (struct pollfd){p->out, POLLIN, 0};
		if (p->err >= 0)
			fds[nfds++] = (struct pollfd){p->err, POLLIN, 0};
		if (p->in >= 0)
			fds[nfds++] = (struct pollfd){p->in, POLLOUT, 0};
		if (poll(fds, (nfds_t) nfds, wait_ms) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < nfds; i++)
			if (fds[i].revents != 0)
				pump_fd(p, fds[i].fd);
	}
}

/* the exit status as r->status, exit_code, signal and why */
static void
report_exit(const am_tool *t, int status, am_tool_run *r)
{
	if (WIFEXITED(status)) {
		r->exit_code = WEXITSTATUS(status);
		if (r->status[0] == '\0')
			snprintf(r->status, sizeof(r->status), "%s", r->exit_code == 0 ? "ok" : "failed");
		if (r->exit_code == 127 && r->status[0] == 'f')
			snprintf(r->why, sizeof(r->why), "the program could not be started (exit 127)");
	} else if (WIFSIGNALED(status)) {
		r->signal = WTERMSIG(status);
		r->exit_code = -1;
		if (r->status[0] == '\0')
			snprintf(r->status, sizeof(r->status), "%s", r->signal == SIGXCPU ? "timeout" : "failed");
	}
	/* (the first process of a PID namespace does not get SIGXFSZ: there
	 * its writes fail with EFBIG, "File too large", instead) */
	if (WIFSIGNALED(status) && r->signal == SIGXFSZ && strcmp(r->status, "failed") == 0)
		snprintf(r->why, sizeof(r->why), "wrote a file past its max_file_size of %llu bytes",
		    (unsigned long long) t->max_file_size);
	if (strcmp(r->status, "timeout") == 0)
		snprintf(r->why, sizeof(r->why), "ran past its timeout of %llu ms and was stopped",
		    (unsigned long long) t->timeout_ms);
	else if (strcmp(r->status, "output_limit") == 0)
		snprintf(r->why, sizeof(r->why), "wrote more than its max_output of %zu bytes and was stopped", t->max_output);
}

int
am_tool_exec(const am_tool *t, const json_t *args, const char *call_id, const char *workflow_id, am_tool_run *r,
    const atomic_int *cancel)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	char **av = build_argv(t, args), **env = build_env(t, call_id, workflow_id);
	char *input = json_dumps(args, JSON_COMPACT);
	struct pump p = {.t = t, .r = r, .in = -1, .out = -1, .err = -1, .input = input};
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(t->max_output + 1);
	r->err = malloc(t->max_output + 1);
	if (av == NULL || env == NULL || input == NULL || r->out == NULL || r->err == NULL || pipe(in) != 0 ||
	    pipe(out) != 0 || pipe(err) != 0) {
		rc = am_error_set(AM_ENOMEM, "cannot prepare the tool run: %s", strerror(errno));
		goto out;
	}
	/* Where the kernel lets us (root, or unprivileged user namespaces),
	 * the tool is the first process of a PID namespace of its own: when
	 * it ends, or is killed at its timeout, the kernel kills everything
	 * it started, even what left its process group (setsid). Elsewhere
	 * its process group is killed, and output is read no longer than
	 * 2 s past the timeout whoever holds the pipes. */
	p.start = mono_ms();
	p.pid = contained_fork(&r->contained);
	if (p.pid < 0) {
		rc = am_error_set(AM_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	if (p.pid == 0)
		exec_child(t, av, env, in[0], out[1], err[1]);
	setpgid(p.pid, p.pid);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	in[0] = out[1] = err[1] = -1;
	/* the pump owns (and closes) the other ends from here */
	p.in = in[1], p.out = out[0], p.err = err[0];
	in[1] = out[0] = err[0] = -1;
	p.in_len = strlen(input);
	fcntl(p.in, F_SETFL, O_NONBLOCK);
	pump_run(&p, cancel);
	if (p.in >= 0) { /* a child still waiting for its input sees the end of it */
		close(p.in);
		p.in = -1;
	}
	while (!p.reaped && waitpid(p.pid, &p.status, 0) < 0 && errno == EINTR)
		;
	kill(-p.pid, SIGKILL); /* anything it left behind in its group */
	r->duration_ms = mono_ms() - p.start;
	r->out[r->out_len] = '\0';
	r->err[r->err_len] = '\0';
	report_exit(t, p.status, r);
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (p.in >= 0)
		close(p.in);
	if (p.out >= 0)
		close(p.out);
	if (p.err >= 0)
		close(p.err);
	free_list(av);
	free_list(env);
	free(input);
	return rc;
}
