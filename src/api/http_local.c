/*
 * http_local.c — a request served in-process, without a socket: the same
 * router, head checks, token hook and handler a connection gets, for the
 * fuzz targets of the JSON routes (tests/fuzz/fuzz_http_*.c). The framing
 * (chunks, Content-Length, deadlines) is libmicrohttpd's and is not here.
 */
#include "http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
am_http_local(am_http_server *srv, const char *method, const char *uri, const char *const *headers, const void *body,
    size_t len, void (*pending)(void *ctx), void *ctx, unsigned *status, char **reply, size_t *reply_len)
{
	am_http_ex *ex = calloc(1, sizeof(*ex));
	char allow[48], path[256];
	int rc = 0;

	*status = 0;
	*reply = NULL;
	*reply_len = 0;
	if (ex == NULL)
		return am_error_set(AM_ENOMEM, "out of memory");
	pthread_mutex_init(&ex->mu, NULL);
	pthread_cond_init(&ex->cv, NULL);
	ex->srv = srv;
	ex->local_headers = headers;
	snprintf(ex->method, sizeof(ex->method), "%s", method);
	if ((ex->uri = strdup(uri)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	/* routes match the path; the query stays in the uri for handlers */
	snprintf(path, sizeof(path), "%.*s", (int) strcspn(uri, "?"), uri);
	if ((ex->route = am_http_route_find(srv, ex->method, path, allow, sizeof(allow))) == NULL) {
		*status = allow[0] ? 405 : 404;
		goto out;
	}
	if (len > ex->route->body_max) {
		*status = 413;
		goto out;
	}
	if (len > 0) {
		if ((ex->body = malloc(len + 1)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(ex->body, body, len);
		ex->body[len] = '\0';
		ex->blen = len;
	}
	if (ex->route->pre != NULL)
		ex->route->pre(ex);
	if (!ex->answered)
		ex->route->fn(ex);
	if (!ex->answered && pending != NULL)
		pending(ctx); /* a deferred answer: the caller makes it come now */
	pthread_mutex_lock(&ex->mu);
	while (!ex->answered)
		pthread_cond_wait(&ex->cv, &ex->mu);
	pthread_mutex_unlock(&ex->mu);
	*status = ex->status;
	*reply = ex->abody; /* streams are refused here: there is no connection */
	*reply_len = ex->alen;
	ex->abody = NULL;
out:
	am_http_ex_free(ex);
	return rc;
}
