/*
 * main.c — agent-mesh-gateway: the gateway's daemon (runtime/daemon.c with
 * the gateway's defaults: GATEWAY_HOST/GATEWAY_PORT 127.0.0.1:8787,
 * metrics at /v1/metrics, /v1/mesh_scan). Its own features (the PKI
 * signer, MCP, jobs) still live in runtime and are switched on by role.
 */
#include "am_runtime.h"

int
main(int argc, char **argv)
{
	return am_daemon_main(true, argc, argv);
}
