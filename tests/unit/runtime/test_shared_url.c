/*
 * test_shared_url.c — the --shared-state URL: the forms the guide and
 * Redis users write (host:port, a password, a user and password, a
 * database, IPv6), the defaults, and each refusal naming its problem.
 */
#include "am_runtime.h"
#include "../../check.h"

#include <string.h>

int
main(void)
{
	am_shared_url u;

	CHECK_RC(am_shared_url_parse(&u, "redis://localhost:6379"), 0);
	CHECK(strcmp(u.host, "localhost") == 0 && u.port == 6379 && u.db == 0 && u.pass[0] == '\0');
	CHECK(strcmp(u.shown, "redis://localhost:6379/0") == 0);
	CHECK_RC(am_shared_url_parse(&u, "redis://10.0.0.5"), 0);
	CHECK(u.port == 6379 && strcmp(u.host, "10.0.0.5") == 0);
	CHECK_RC(am_shared_url_parse(&u, "redis://:pw@127.0.0.1:6380/3"), 0);
	CHECK(strcmp(u.pass, "pw") == 0 && u.user[0] == '\0' && u.port == 6380 && u.db == 3);
	CHECK(strstr(u.shown, "pw") == NULL && strcmp(u.shown, "redis://***@127.0.0.1:6380/3") == 0);
	CHECK_RC(am_shared_url_parse(&u, "redis://mesh:pa:ss@db.site.lan:7000/"), 0);
	CHECK(strcmp(u.user, "mesh") == 0 && strcmp(u.pass, "pa:ss") == 0 && u.db == 0 && u.port == 7000);
	CHECK_RC(am_shared_url_parse(&u, "redis://[::1]:6390/1"), 0);
	CHECK(strcmp(u.host, "::1") == 0 && u.port == 6390 && strcmp(u.shown, "redis://[::1]:6390/1") == 0);
	CHECK_RC(am_shared_url_parse(&u, "redis://::1"), 0); /* a bare v6 address: no port in it */
	CHECK(strcmp(u.host, "::1") == 0 && u.port == 6379);

	CHECK_RC(am_shared_url_parse(&u, "http://localhost:6379"), AM_EINVAL);
	CHECK(strstr(am_error_detail(), "not a redis:// URL") != NULL);
	CHECK_RC(am_shared_url_parse(&u, "redis://localhost:99999"), AM_EINVAL);
	CHECK(strstr(am_error_detail(), "port must be 1..65535") != NULL);
	CHECK_RC(am_shared_url_parse(&u, "redis://localhost:x"), AM_EINVAL);
	CHECK_RC(am_shared_url_parse(&u, "redis://:6379"), AM_EINVAL);
	CHECK(strstr(am_error_detail(), "no host") != NULL);
	CHECK_RC(am_shared_url_parse(&u, "redis://localhost/db"), AM_EINVAL);
	CHECK(strstr(am_error_detail(), "database") != NULL);
	CHECK_RC(am_shared_url_parse(&u, "redis://[::1:6379"), AM_EINVAL);
	{
		char longpw[600] = "redis://:";
		memset(longpw + 9, 'p', 400);
		strcpy(longpw + 409, "@h:1");
		CHECK_RC(am_shared_url_parse(&u, longpw), AM_EINVAL);
		CHECK(strstr(am_error_detail(), "too long") != NULL);
	}
	return check_done("test_shared_url");
}
