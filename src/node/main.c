/*
 * main.c — agent-mesh-node: an edge node's daemon, the role-agnostic
 * daemon (src/runtime) with the node's defaults (NODE_PORT 8000, metrics
 * at /metrics) and its one feature: the tools it runs on request.
 */
#include "am_node.h"

int
main(int argc, char **argv)
{
	static const am_feature *const features[] = {&am_node_tools};
	static const am_role node = {false, features, sizeof(features) / sizeof(features[0])};

	return am_daemon_main(&node, argc, argv);
}
