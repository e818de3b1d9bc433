/*
 * main.c — agent-mesh-gateway: the gateway's daemon, the role-agnostic
 * daemon (src/runtime) with the gateway's defaults (GATEWAY_HOST/
 * GATEWAY_PORT 127.0.0.1:8787, metrics at /v1/metrics, /v1/mesh_scan)
 * and its feature: tool calls to the mesh, their jobs, MCP.
 */
#include "am_gateway.h"

int
main(int argc, char **argv)
{
	static const am_feature *const features[] = {&am_gateway_calls};
	static const am_role gateway = {true, features, sizeof(features) / sizeof(features[0])};

	return am_daemon_main(&gateway, argc, argv);
}
