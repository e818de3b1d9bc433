/*
 * main.c — agent-mesh-node: an edge node's daemon (runtime/daemon.c with
 * the node's defaults: NODE_PORT 8000, metrics at /metrics).
 */
#include "am_runtime.h"

int
main(int argc, char **argv)
{
	return am_daemon_main(false, argc, argv);
}
