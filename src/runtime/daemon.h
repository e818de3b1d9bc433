/*
 * daemon.h — private to src/runtime: the state one daemon process shares
 * between its threads (daemon.c runs them, status.c answers /health,
 * the metrics and /v1/mesh_scan from it).
 */
#ifndef AM_RUNTIME_DAEMON_H
#define AM_RUNTIME_DAEMON_H

#include "am_runtime.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define MAX_DIALERS 64
#define MAX_LIVE    256
/* why a link failed, for am_link_refused_total (names: am_daemon_reasons) */
enum reason {
	R_NETWORK_KEY,
	R_BAD_PROOF,
	R_MALFORMED,
	R_CONNECTION,
	R_TRUST,
	R_OTHER,
	R_HANDSHAKE_TIMEOUT,
	R_EVICTED,
	N_REASONS
};
/* connections on the link port that have not finished their handshake:
 * at most this many at once, and at most PREAUTH_PER_ADDR from one
 * address; past either, the oldest is closed (so a newcomer, a real node
 * re-linking among them, always gets its few seconds) */
#define PREAUTH_MAX      64   /* AM_LINK_PREAUTH_MAX */
#define PREAUTH_PER_ADDR 16   /* AM_LINK_PREAUTH_PER_ADDRESS */
#define PREAUTH_CAP      1024 /* the most either may be set to */

struct node;

/* An inbound connection still in its handshake. */
struct preauth {
	am_link_cancel *cancel; /* NULL: free */
	char addr[64];          /* the remote address, without the port */
	uint64_t since_ms;
	bool *evicted;          /* set when we closed it for a newer one */
};

/* A peer this daemon has a link with, or had one with since it started. */
struct live_peer {
	bool used;
	uint8_t pk[AM_PK_BYTES];
	am_peer_info info;
	char address[128];  /* dialed URL, or where it came from */
	char via[16];       /* "static", "discovery", "inbound" */
	int links;          /* sessions open now */
	uint64_t last_seen_ms;
};

/* One peer this daemon keeps a link to (--peer, --gateway, discovery). */
struct dialer {
	struct node *n;
	char url[128];
	char via[16];
	uint8_t pk[AM_PK_BYTES]; /* known for discovered peers */
	bool has_pk;
	pthread_t th;
};

#define MAX_FEATURES 8

/* A pairing code the gateway printed (pair_gateway.c): its keys, never
 * the code itself. */
#define PAIR_CODES 16
#define PAIR_ROLES 4
struct pair_code {
	bool live;
	am_pair_keys k;
	uint64_t expires_ms;
	char name[AM_TAG_MAX + 1]; /* "": the name the node gives */
	char roles[PAIR_ROLES][AM_TAG_MAX + 1];
	size_t nroles;
};

struct node {
	bool gateway;
	const am_role *role;
	void *fstate[MAX_FEATURES]; /* each feature's, from its open */
	am_daemon_view view;        /* what they were given */
	size_t fopened;             /* features opened (stopped and closed in reverse) */
	bool features_stopped;
	bool pki;                 /* trust mode pki: certificates, not TOFU */
	const char *prog;
	am_queue *q;
	am_identity *me;
	uint8_t netkey[32];
	am_hub *hub;
	am_trust *trust;
	am_discovery *disc;
	am_audit *audit;
	int mcp_port;
	bool in_pair;             /* a gateway with --shared-state: its pair shares its key */
	const char *listen;
	char link_inner[160];      /* when links share the HTTP port: the loopback listener they are relayed to */
	bool monitor_public;       /* /metrics, /v1/metrics, /v1/mesh_scan without a token */
	am_http_server *http;
	uint16_t link_port;       /* the port of --listen others can dial, for beacons */
	bool link_ws;             /* ... as ws://ADDR:link_port/mesh (the HTTP port) */
	int beacon_ms;
	uint64_t resync_ms;
	uint64_t gc_every_ms, gc_next_ms; /* MESH_GC_EVERY (0: off); the dispatcher's */
	int link_timeout_ms;      /* silence that ends a link; also the retry cap */
	atomic_int stop;          /* set by the main thread (after sigwait) or a failed listener; read by all */
	am_api api;
	pthread_t serve_th, watch_th, dispatch_th;
	bool serving, watching, dispatching; /* those threads were started */
	uint64_t dispatched;      /* inbox entries up to here were looked at (the dispatcher's) */
	_Atomic uint64_t results_refused; /* the features' count of answers refused */
	am_peer_info info;        /* what this node says about itself */
	char node_id[AM_NODE_ID_LEN + 1];

	pthread_mutex_t mu;       /* guards everything below */
	pthread_cond_t idle;
	struct dialer *dialers[MAX_DIALERS];
	size_t ndialers;
	struct live_peer peers[MAX_LIVE];
	int sessions;             /* inbound sessions running */
	struct preauth preauth[PREAUTH_CAP];
	int preauth_max, preauth_per_addr; /* from the environment, else the defaults above */
	int handshake_ms;                  /* AM_LINK_HANDSHAKE_TIMEOUT (s); 0: AM_LINK_HANDSHAKE_MS */
	uint64_t evictions;       /* pre-handshake connections closed for newer ones */
	uint64_t evictions_said;  /* ... of which the log has told */
	uint64_t evict_log_ms;    /* when it last did */
	uint64_t quiet_log_ms;    /* when a handshake timeout or eviction was last logged */
	uint64_t links_ok, links_failed, sent, received, live_sent, live_received;
	uint64_t receipts_foreign; /* receipts refused as proof (signed by another key) */
	uint64_t refused[N_REASONS];
	struct pair_code pair[PAIR_CODES];
	char pair_addr[120];      /* where a node on another machine reaches our API */
};

extern const char *const am_daemon_reasons[N_REASONS];

/* What the configuration gives that the node does not keep (daemon_config.c
 * fills it, with the node's own settings, before anything is opened). */
struct daemon_config {
	bool gateway;
	const char *prog;
	const char *join;         /* --join GATEWAY:PORT/CODE */
	const char *shared_state; /* --shared-state redis://… (gateway) */
	bool trust_mode_default;  /* no --trust-mode or TRUST_MODE: a pairing bundle may make it pki */
	const char *identity, *dir, *key, *host, *name, *trust_mode, *provision, *env_file, *position;
	const char *peers[MAX_DIALERS], *zones[AM_GEO_MAX_TAGS], *groups[AM_QUEUE_MAX_GROUPS];
	size_t npeers, nzones, ngroups, ntrust;
	bool dev_token, no_discovery, check_config;
	bool auto_dir;            /* the default folder (not --data): made, with its keys, at the first start */
	bool dev_joined;          /* DIR/join.json: joined a development gateway on this machine */
	char dir_buf[4096], key_buf[4300], listen_buf[200], join_link[128], name_buf[AM_TAG_MAX + 1];
	char provision_buf[4200];
	int port, multicast_port;
	am_provision prov;        /* --provision's bundle (cleared by the caller) */
};

/* daemon_config.c: flags > environment > .env > defaults. Returns
 * DAEMON_GO to start, else the exit status (after --help, --version, or
 * with the error printed). */
#define DAEMON_GO (-1)
int am_daemon_configure(struct node *n, struct daemon_config *c, const am_role *role, int argc, char **argv);
/* a provisioning bundle's network key, name, gateway and certificate
 * (c->provision, loaded into c->prov); DAEMON_GO or the exit status */
int am_daemon_apply_provision(struct node *n, struct daemon_config *c);
/* --check-config: the key and the tool files read and reported; the exit status */
int am_daemon_check_config(struct node *n, struct daemon_config *c);

/* daemon.c: an API host only this machine can reach */
bool am_daemon_loopback(const char *host);

/* daemon_first.c: the default data folder; at the first start in it the
 * key, the store and the network key made (a gateway) or joined from a
 * development gateway on this machine (a node); 0, or the exit status
 * with the error printed */
void am_daemon_default_dir(struct daemon_config *c);
int am_daemon_first_start(struct node *n, struct daemon_config *c);
/* the folder and its parents, 0700 (AM_EIO names the one that failed) */
int am_daemon_make_dir(const char *dir);
/* the folder holds name */
bool am_daemon_has(const char *dir, const char *name);
/* a new key and an empty store owned by it in c->dir (as agent-mesh init) */
int am_daemon_make_identity(const struct daemon_config *c);
/* c->dir/network.key (0600) */
int am_daemon_save_netkey(const struct daemon_config *c, const uint8_t key[32]);
/* c->dir/join.json: the gateway whose tokens count, its link, how we
 * joined ("dev", "pair"), the name the gateway gave us (may be NULL) */
int am_daemon_save_join(const struct daemon_config *c, const uint8_t gateway_pk[AM_PK_BYTES], const char *link,
    const char *how, const char *node_name);
/* pair_node.c: --join GATEWAY:PORT/CODE at the first start (a folder
 * joined before is left as it is); 0 or the exit status, printed */
int am_daemon_pair_join(struct node *n, struct daemon_config *c);

/* GET /v1/join on a development gateway (--dev-token on loopback) */
int am_daemon_join_register(struct node *n, const struct daemon_config *c);
/* where a client on this machine dials our links: listen with 127.0.0.1 */
bool am_daemon_local_link(char *out, size_t cap, const char *listen);

/* pair_gateway.c: POST /v1/pair and /v1/pair/claim on a gateway */
int am_daemon_pair_register(struct node *n, const struct daemon_config *c);

/* daemon_links.c */
void *am_daemon_serve(void *node);   /* a thread: accept inbound links */
int am_daemon_add_dialer(struct node *n, const char *url, const char *via, const uint8_t *pk);
struct am_beacon;
void am_daemon_discovered(void *node, const struct am_beacon *b, const char *url);
void am_daemon_nap(struct node *n, uint64_t ms);

/* dispatch.c: the dispatcher thread (the features' inbox types, their ticks) */
int am_daemon_dispatch_start(struct node *n);
void am_daemon_dispatch_stop(struct node *n); /* sets n->stop */

/* status.c */
int am_daemon_http_open(struct node *n, const char *host, int port, const char *link_path);

#endif
