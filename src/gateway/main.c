/*
 * main.c — agent-mesh-gateway: the gateway's daemon (runtime/daemon.c with
 * the gateway's defaults: GATEWAY_HOST/GATEWAY_PORT 127.0.0.1:8787,
 * metrics at /v1/metrics, /v1/mesh_scan). The gateway's own features (PKI
 * signer, MCP, audit sink) come with the later issues.
 */
#include "am_runtime.h"

int
main(int argc, char **argv)
{
	return am_daemon_main(true, argc, argv);
}
