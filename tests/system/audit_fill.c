/*
 * audit_fill.c — test helper: append N records to an audit log with a node
 * folder's key, through the same writer the daemons use (without the
 * per-line fdatasync, to make 100 000 lines in seconds), each with a
 * workflow_id out of three so the jq examples have something to count.
 * usage: audit_fill DIR LOG N
 */
#include "am_runtime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
	static const char *const wf[] = {"feedback_safe_summary", "site_survey", "crane_inspection"};
	char path[4096];
	am_identity *me = NULL;
	am_audit *a = NULL;
	long n;

	if (argc != 4 || am_core_init() != 0 || (n = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: audit_fill DIR LOG N\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/identity.pem", argv[1]);
	if (am_identity_load_pem(&me, path) != 0 || am_audit_open(&a, argv[2], me) != 0) {
		fprintf(stderr, "audit_fill: %s\n", am_error_detail());
		return 1;
	}
	am_audit_set_sync(a, false);
	for (long i = 0; i < n; i++)
		if (am_audit_log(a, i % 7 == 0 ? "token_refused" : "tool_call", "bearer", wf[i % 3],
		        json_pack("{s:s, s:I}", "action", "call:crane-1:read_sensor", "i", (json_int_t) i)) != 0) {
			fprintf(stderr, "audit_fill: %s\n", am_error_detail());
			return 1;
		}
	am_audit_close(a);
	am_identity_free(me);
	return 0;
}
