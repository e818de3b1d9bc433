/*
 * http_client.c — one HTTP request to another daemon (the development
 * join, pairing, the CLI's calls to a gateway), over nng's HTTP client.
 *
 * The answer comes from a machine we do not trust yet (a pairing node
 * dials whatever address it was given), so its body is read by us, not
 * by nng's transact (which allocates whatever Content-Length says): the
 * head first, then at most reply_max bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_api.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* wait for aio, then its result */
static int
wait_for(nng_aio *aio)
{
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

int
am_http_fetch(const char *method, const char *url, const char *type, const void *body, size_t len,
    const char *authorization, size_t reply_max, int timeout_ms, unsigned *status, char **reply, size_t *reply_len)
{
	nng_url *u = NULL;
	nng_http_client *cl = NULL;
	nng_http_conn *conn = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_aio *aio = NULL;
	char *out = NULL, *end;
	const char *cl_text;
	unsigned long long want = 0;
	nng_iov iov;
	int rv, rc = 0;

	*reply = NULL;
	*reply_len = 0;
	*status = 0;
	if ((rv = nng_url_parse(&u, url)) != 0 || strcmp(u->u_scheme, "http") != 0) {
		rc = am_error_set(AM_EINVAL, "%s: not an http:// URL", url);
		goto out;
	}
	if ((rv = nng_http_client_alloc(&cl, u)) != 0 || (rv = nng_http_req_alloc(&req, u)) != 0 ||
	    (rv = nng_http_res_alloc(&res)) != 0 || (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (rv = nng_http_req_set_method(req, method)) != 0 ||
	    (authorization != NULL && (rv = nng_http_req_set_header(req, "Authorization", authorization)) != 0) ||
	    (body != NULL && ((rv = nng_http_req_set_header(req, "Content-Type", type)) != 0 ||
	                         (rv = nng_http_req_copy_data(req, body, len)) != 0))) {
		rc = am_error_set(AM_ENOMEM, "%s", nng_strerror(rv));
		goto out;
	}
	nng_aio_set_timeout(aio, timeout_ms);
	nng_http_client_connect(cl, aio);
	if ((rv = wait_for(aio)) != 0) {
		rc = am_error_set(AM_EIO, "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	conn = nng_aio_get_output(aio, 0);
	nng_http_conn_write_req(conn, req, aio);
	if ((rv = wait_for(aio)) == 0) {
		nng_http_conn_read_res(conn, res, aio); /* the head only */
		rv = wait_for(aio);
	}
	if (rv != 0) {
		rc = am_error_set(AM_EIO, "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	*status = nng_http_res_get_status(res);
	cl_text = nng_http_res_get_header(res, "Content-Length");
	if (cl_text != NULL) {
		want = strtoull(cl_text, &end, 10);
		if (end == cl_text || *end != '\0') {
			rc = am_error_set(AM_EMALFORMED, "%s: Content-Length \"%.40s\" is not a number", url, cl_text);
			goto out;
		}
	}
	if (want > reply_max) {
		rc = am_error_set(AM_ELIMIT, "%s: a %llu-byte answer (the most taken: %zu)", url, want, reply_max);
		goto out;
	}
	if ((out = malloc(want + 1)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	if (want > 0) {
		iov.iov_buf = out;
		iov.iov_len = want;
		nng_aio_set_iov(aio, 1, &iov);
		nng_http_conn_read_all(conn, aio);
		if ((rv = wait_for(aio)) != 0) {
			rc = am_error_set(AM_EIO, "%s: the answer's body: %s", url, nng_strerror(rv));
			goto out;
		}
	}
	out[want] = '\0';
	*reply = out;
	*reply_len = want;
	out = NULL;
out:
	free(out);
	if (conn != NULL)
		nng_http_conn_close(conn);
	nng_aio_free(aio);
	nng_http_res_free(res);
	nng_http_req_free(req);
	nng_http_client_free(cl);
	nng_url_free(u);
	return rc;
}
