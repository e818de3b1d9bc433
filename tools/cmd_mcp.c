/*
 * cmd_mcp.c — `agent-mesh mcp`: a stdio MCP server for clients that only
 * start local servers (desktop apps). Each newline-delimited JSON-RPC
 * message read on stdin is POSTed to the gateway's streamable HTTP
 * endpoint with the token; what comes back (one JSON answer, or the
 * events of a text/event-stream answer: progress, then the result) is
 * written to stdout, one message a line. Messages travel concurrently
 * (a call waiting on a far node does not hold up the next request, nor
 * its notifications/cancelled), at most --max-inflight at once. The
 * session (Mcp-Session-Id) and the revision of a 2025-era initialize are
 * kept and sent on; 2026-07-28 requests carry theirs in _meta, mirrored
 * in the headers. HTTP is libcurl's. Diagnostics go to stderr only.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <curl/curl.h>
#include <sodium.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MCP_LINE_MAX (4u << 20)  /* a message on stdin (the gateway takes 1 MiB) */
#define MCP_ANSWER_MAX (16u << 20)



static struct {
	const char *url;
	char auth[4200];
	pthread_mutex_t mu;      /* stdout, and what follows */
	char session[128];
	char version[32];        /* of the 2025-era initialize */
	sem_t slots;
	pthread_mutex_t run_mu;
	pthread_cond_t run_cv;
	int running;
	/* the 2025-era session's GET stream: notifications nobody asked for
	 * in a request (resources updated, the tool list changed) */
	pthread_t listener;
	bool listening;
	atomic_bool ending;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .run_mu = PTHREAD_MUTEX_INITIALIZER, .run_cv = PTHREAD_COND_INITIALIZER};

static void
emit_text(const char *text, size_t len)
{
	pthread_mutex_lock(&B.mu);
	fwrite(text, 1, len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&B.mu);
}

/* one message to stdout: compact, one line; an error for the request id
 * when the gateway's error answer could not name it (id null) */
static void
emit_json(json_t *msg, json_t *req_id)
{
	if (req_id != NULL && json_is_object(msg) && json_object_get(msg, "error") != NULL &&
	    json_is_null(json_object_get(msg, "id")))
		json_object_set(msg, "id", req_id);
	char *t = json_dumps(msg, JSON_COMPACT);
	if (t != NULL) {
		emit_text(t, strlen(t));
		free(t);
	}
}

static void
emit_error(json_t *req_id, const char *fmt, const char *detail)
{
	char msg[600];
	if (req_id == NULL) { /* a notification: nobody waits for an answer */
		fprintf(stderr, "agent-mesh mcp: ");
		fprintf(stderr, fmt, detail);
		fputc('\n', stderr);
		return;
	}
	snprintf(msg, sizeof(msg), fmt, detail);
	json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", req_id, "error", "code", -32603, "message", msg);
	emit_json(e, NULL);
	json_decref(e);
}

struct exchange {
	char *line;            /* the message as read */
	json_t *msg;           /* parsed */
	json_t *id;            /* its id (NULL: a notification) */
	bool initialize;
	/* the answer */
	char type[96];
	char session[128];
	char *body;
	size_t len;
	bool sse, too_big;
	size_t sse_from;       /* unparsed part of body, for event streams */
	char *event;           /* the current event's data lines */
	size_t elen;
};

/* an event's data is a message: pass it on */
static void
sse_event(struct exchange *x)
{
	if (x->elen == 0)
		return;
	json_t *j = json_loadb(x->event, x->elen, 0, NULL);
	if (j != NULL) {
		emit_json(j, x->id);
		json_decref(j);
	}
	x->elen = 0;
}

/* text/event-stream, as far as it came: lines; "data:" lines gather, a
 * blank line ends an event (other fields and comments are not ours) */
static void
sse_parse(struct exchange *x)
{
	for (;;) {
		char *start = x->body + x->sse_from, *nl = memchr(start, '\n', x->len - x->sse_from);
		if (nl == NULL)
			break;
		size_t n = (size_t) (nl - start);
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n == 0) {
			sse_event(x);
		} else if (n >= 5 && strncmp(start, "data:", 5) == 0) {
			const char *d = start + 5 + (n > 5 && start[5] == ' ');
			size_t dn = n - (size_t) (d - start);
			char *ne = realloc(x->event, x->elen + dn + 2);
			if (ne != NULL) {
				x->event = ne;
				if (x->elen > 0)
					x->event[x->elen++] = '\n';
				memcpy(x->event + x->elen, d, dn);
				x->elen += dn;
			}
		}
		x->sse_from += (size_t) (nl - start) + 1;
	}
	/* what is parsed is dropped: a long stream does not grow */
	if (x->sse_from > 0) {
		memmove(x->body, x->body + x->sse_from, x->len - x->sse_from);
		x->len -= x->sse_from;
		x->sse_from = 0;
	}
}

static size_t
on_header(char *buf, size_t size, size_t n, void *ctx)
{
	struct exchange *x = ctx;
	size_t len = size * n;
	char line[512];

	snprintf(line, sizeof(line), "%.*s", (int) (len < sizeof(line) - 1 ? len : sizeof(line) - 1), buf);
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "Content-Type:", 13) == 0) {
		snprintf(x->type, sizeof(x->type), "%s", line + 13 + strspn(line + 13, " "));
		x->sse = strncasecmp(x->type, "text/event-stream", 17) == 0;
	} else if (strncasecmp(line, "Mcp-Session-Id:", 15) == 0)
		snprintf(x->session, sizeof(x->session), "%s", line + 15 + strspn(line + 15, " "));
	return len;
}

static size_t
on_body(char *buf, size_t size, size_t n, void *ctx)
{
	struct exchange *x = ctx;
	size_t len = size * n;

	if (x->len + len > MCP_ANSWER_MAX) {
		x->too_big = true;
		return 0; /* curl stops the transfer */
	}
	char *nb = realloc(x->body, x->len + len + 1);
	if (nb == NULL)
		return 0;
	x->body = nb;
	memcpy(x->body + x->len, buf, len);
	x->len += len;
	x->body[x->len] = '\0';
	if (x->sse)
		sse_parse(x);
	return len;
}

/* what every exchange with the gateway sets: where, the headers, and the
 * answer's headers and body into x */
static void
exchange_options(CURL *c, struct curl_slist *h, struct exchange *x)
{
	curl_easy_setopt(c, CURLOPT_URL, B.url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
}

static void *
forward(void *arg)
{
	struct exchange *x = arg;
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	char hdr[300], err[CURL_ERROR_SIZE] = "";
	long status = 0;
	json_t *meta = json_object_get(json_object_get(x->msg, "params"), "_meta");
	const char *modern = json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion"));
	const char *method = json_string_value(json_object_get(x->msg, "method"));

	if (c == NULL) {
		emit_error(x->id, "%s", "out of memory");
		goto out;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json, text/event-stream");
	if (B.auth[0])
		h = curl_slist_append(h, B.auth);
	pthread_mutex_lock(&B.mu);
	if (modern != NULL) { /* stateless: the revision of the request itself, no session */
		snprintf(hdr, sizeof(hdr), "MCP-Protocol-Version: %.40s", modern);
		h = curl_slist_append(h, hdr);
		if (method != NULL) {
			snprintf(hdr, sizeof(hdr), "Mcp-Method: %.200s", method);
			h = curl_slist_append(h, hdr);
		}
	} else {
		if (B.version[0]) {
			snprintf(hdr, sizeof(hdr), "MCP-Protocol-Version: %s", B.version);
			h = curl_slist_append(h, hdr);
		}
		if (B.session[0]) {
			snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s", B.session);
			h = curl_slist_append(h, hdr);
		}
	}
	pthread_mutex_unlock(&B.mu);
	exchange_options(c, h, x);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->line);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) strlen(x->line));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK && !x->too_big) {
		emit_error(x->id, "the gateway did not answer: %s", err[0] ? err : curl_easy_strerror(cc));
		goto out;
	}
	if (x->too_big) {
		emit_error(x->id, "the gateway's answer is over %s", "16 MiB");
		goto out;
	}
	if (x->sse) {
		if (x->len > 0) { /* a last event without its blank line */
			on_body((char *) "\n\n", 1, 2, x);
		}
		goto out;
	}
	if (x->initialize && x->session[0]) {
		json_t *j = json_loadb(x->body ? x->body : "", x->len, 0, NULL);
		const char *v = json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion"));
		pthread_mutex_lock(&B.mu);
		snprintf(B.session, sizeof(B.session), "%s", x->session);
		if (v != NULL)
			snprintf(B.version, sizeof(B.version), "%.31s", v);
		pthread_mutex_unlock(&B.mu);
		json_decref(j);
	}
	if (x->len > 0) {
		json_t *j = json_loadb(x->body, x->len, 0, NULL);
		if (j != NULL) {
			emit_json(j, x->id);
			json_decref(j);
		} else {
			char what[120];
			snprintf(what, sizeof(what), "HTTP %ld, %.60s", status, x->type[0] ? x->type : "no content type");
			emit_error(x->id, "the gateway answered something not JSON (%s)", what);
		}
	} else if (status >= 300 && x->id != NULL) {
		char what[40];
		snprintf(what, sizeof(what), "%ld", status);
		emit_error(x->id, "the gateway answered HTTP %s with no body", what);
	}
out:
	curl_slist_free_all(h);
	if (c != NULL)
		curl_easy_cleanup(c);
	json_decref(x->msg);
	free(x->line);
	free(x->body);
	free(x->event);
	free(x);
	sem_post(&B.slots);
	pthread_mutex_lock(&B.run_mu);
	B.running--;
	pthread_cond_broadcast(&B.run_cv);
	pthread_mutex_unlock(&B.run_mu);
	return NULL;
}

/* curl asks this about once a second: a listener ends with stdin */
static int
on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void) ctx, (void) dt, (void) dn, (void) ut, (void) un;
	return atomic_load(&B.ending) ? 1 : 0;
}

/* GET on the session: its events to stdout until stdin ends. A gateway
 * without the stream (405) is fine: nothing to forward. A stream that
 * drops is opened again after a second. */
static void *
listen_session(void *arg)
{
	(void) arg;
	while (!atomic_load(&B.ending)) {
		struct exchange *x = calloc(1, sizeof(*x));
		struct curl_slist *h = NULL;
		CURL *c = curl_easy_init();
		char hdr[200];
		long status = 0;
		if (x == NULL || c == NULL) {
			free(x);
			if (c != NULL)
				curl_easy_cleanup(c);
			break;
		}
		h = curl_slist_append(h, "Accept: text/event-stream");
		if (B.auth[0])
			h = curl_slist_append(h, B.auth);
		pthread_mutex_lock(&B.mu);
		snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s", B.session);
		h = curl_slist_append(h, hdr);
		if (B.version[0]) {
			snprintf(hdr, sizeof(hdr), "MCP-Protocol-Version: %s", B.version);
			h = curl_slist_append(h, hdr);
		}
		pthread_mutex_unlock(&B.mu);
		exchange_options(c, h, x);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		(void) curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		free(x->body);
		free(x->event);
		free(x);
		if (status == 405 || status == 404 || status == 401 || status == 403)
			break; /* no stream here, or the session ended: nothing to wait for */
		for (int i = 0; i < 10 && !atomic_load(&B.ending); i++)
			usleep(100000);
	}
	return NULL;
}

/* the session ends with stdin: tell the gateway (2025-era) */
static void
end_session(void)
{
	if (!B.session[0])
		return;
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char hdr[200];
	if (c == NULL)
		return;
	snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s", B.session);
	h = curl_slist_append(h, hdr);
	if (B.auth[0])
		h = curl_slist_append(h, B.auth);
	curl_easy_setopt(c, CURLOPT_URL, B.url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void) curl_easy_perform(c);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

int
cmd_mcp(int argc, char **argv)
{
	static const struct option opts[] = {{"gateway", required_argument, NULL, 'g'}, {"token", required_argument, NULL, 't'},
	    {"max-inflight", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0}};
	const char *token_arg = getenv("AGENT_MESH_TOKEN");
	long inflight = 16;
	char *line = NULL, *token = NULL;
	size_t cap = 0;
	ssize_t n;
	int c;

	if (cli_help(argc, argv, cli_usage))
		return 0;
	B.url = "http://127.0.0.1:8790/mcp";
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'g': B.url = optarg; break;
		case 't': token_arg = optarg; break;
		case 'm':
			inflight = strtol(optarg, &end, 10);
			if (end == optarg || *end || inflight < 1 || inflight > 256)
				return cli_usage_error("--max-inflight: a whole number 1..256, not \"%s\"", optarg);
			break;
		default: return cli_opt_error(c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (strncmp(B.url, "http://", 7) != 0 && strncmp(B.url, "https://", 8) != 0)
		return cli_usage_error("--gateway: an http:// or https:// URL of the gateway's MCP endpoint, not \"%s\"", B.url);
	if (token_arg != NULL) {
		if ((token = cli_token_arg(token_arg)) == NULL)
			return 1;
		if (strlen(token) > 4000) {
			free(token);
			return cli_usage_error("--token: over 4000 characters");
		}
		snprintf(B.auth, sizeof(B.auth), "Authorization: Bearer %s", token);
		sodium_memzero(token, strlen(token));
		free(token);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return cli_fail(AM_EIO, "libcurl");
	sem_init(&B.slots, 0, (unsigned) inflight);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if ((size_t) n > MCP_LINE_MAX) {
			emit_error(json_null(), "a message over %s on stdin", "4 MiB");
			continue;
		}
		json_error_t jerr;
		json_t *msg = json_loadb(line, (size_t) n, 0, &jerr);
		if (msg == NULL) {
			json_t *e = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code", -32700, "message",
			    jerr.text);
			emit_json(e, NULL);
			json_decref(e);
			continue;
		}
		struct exchange *x = calloc(1, sizeof(*x));
		if (x == NULL || (x->line = strdup(line)) == NULL) {
			free(x);
			json_decref(msg);
			break;
		}
		x->msg = msg;
		x->id = json_object_get(msg, "id");
		const char *method = json_string_value(json_object_get(msg, "method"));
		x->initialize = method != NULL && strcmp(method, "initialize") == 0;
		bool init = x->initialize; /* x is the thread's once it runs */
		sem_wait(&B.slots);
		pthread_mutex_lock(&B.run_mu);
		/* an initialize is answered before anything else goes: the rest
		 * needs its session */
		while (init && B.running > 0)
			pthread_cond_wait(&B.run_cv, &B.run_mu);
		B.running++;
		pthread_mutex_unlock(&B.run_mu);
		pthread_t t;
		if (pthread_create(&t, NULL, forward, x) != 0) {
			forward(x); /* no thread: in this one */
		} else if (init) {
			pthread_join(t, NULL);
			pthread_mutex_lock(&B.mu);
			bool session = B.session[0] != '\0';
			pthread_mutex_unlock(&B.mu);
			if (session && !B.listening && pthread_create(&B.listener, NULL, listen_session, NULL) == 0)
				B.listening = true;
		} else
			pthread_detach(t);
	}
	free(line);
	pthread_mutex_lock(&B.run_mu);
	while (B.running > 0)
		pthread_cond_wait(&B.run_cv, &B.run_mu);
	pthread_mutex_unlock(&B.run_mu);
	atomic_store(&B.ending, true);
	if (B.listening)
		pthread_join(B.listener, NULL);
	end_session();
	curl_global_cleanup();
	return 0;
}
