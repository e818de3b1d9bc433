/*
 * am_trust.h — the public contract of src/trust: who this node believes.
 * The TOFU trust store (the first key a name proves is pinned), PKI
 * provisioning bundles and certificates, and the hash-chained, signed
 * audit log every decision lands in (with the limiter that keeps
 * refusals anyone can cause at a bounded cost).
 */
#ifndef AM_TRUST_H
#define AM_TRUST_H

#include "am_core.h"
#include "am_queue.h"
#include "am_sync.h"

struct json_t; /* jansson's, for the few calls that take JSON */

/* ---------------------------------------------------------------- trust --- */

/* TOFU trust store DATA/trust/trust_store.json (trust.c): the first key a
 * name proves is pinned; a changed key, or a pinned key under another
 * name, is refused with AM_EKEYCHANGED. Thread-safe. */
typedef struct am_trust am_trust;
/* Errors: AM_EIO, AM_EMALFORMED / AM_EFIELD (a damaged file is never
 * overwritten), AM_ENOMEM. */
int am_trust_open(am_trust **out, const char *data_dir) AM_MUST_CHECK;
void am_trust_close(am_trust *t);
const char *am_trust_path(const am_trust *t);
/* am_trust_list: a copy of the pins, {"NAME": {"key", "first_seen_ms",
 * "first_address"}} (the caller's to free) */
struct json_t *am_trust_list(am_trust *t);
/* am_trust_forget: remove the pin of a name, or of a key (64 hex), so the
 * next device to prove that name is pinned; the name forgotten in
 * forgotten. AM_ENOTFOUND when nothing matches. */
int am_trust_forget(am_trust *t, const char *name_or_key, char *forgotten, size_t cap) AM_MUST_CHECK;
int am_trust_check(am_trust *t, const char *name, const uint8_t pk[static AM_PK_BYTES],
    const char *address, uint64_t now_ms, bool *pinned_now) AM_MUST_CHECK;
/* am_trust_share: pins a gateway pair shares (set by the gateway). Before a
 * first pin, claim(ctx, name, key_hex, why) is asked: 0 when the pair has
 * the name free or pinned to that key (and now claims it); AM_EKEYCHANGED
 * with why when the other gateway pinned another key for the name, or the
 * key under another name (refused here too); any other error (the shared
 * state is down): this gateway decides alone, as without a pair. */
typedef int (*am_trust_claim_fn)(void *ctx, const char *name, const char *key_hex, char *why, size_t cap);
void am_trust_share(am_trust *t, am_trust_claim_fn claim, void *ctx);

/* ----------------------------------------------------------------- pki --- */

/* Provisioning bundles and certificates (provision.c). */
typedef struct am_provision {
	char name[AM_TAG_MAX + 1];
	uint8_t node_pk[AM_PK_BYTES];
	char *node_key_pem;               /* NULL when the key was made on the device */
	uint8_t gateway_pk[AM_PK_BYTES];
	uint8_t netkey[32];
	char cert[AM_PEER_CERT_MAX + 1];  /* presented on every link */
	uint64_t expires_ms;
} am_provision;
/* am_provision_create: a signed bundle as JSON text (*out malloc'd). */
int am_provision_create(char **out, const am_identity *gateway, const char *name,
    const uint8_t node_pk[static AM_PK_BYTES], const char *node_key_pem, const uint8_t netkey[static 32],
    const char *const *roles, size_t nroles, uint64_t now_ms, uint64_t valid_ms) AM_MUST_CHECK;
/* am_provision_parse / _load: read and check a bundle (the gateway's
 * signature, the certificate's issuer, subject and name). Errors:
 * AM_EMALFORMED, AM_EVERSION, AM_EFIELD, AM_EBADSIG, token errors. */
int am_provision_parse(am_provision *p, const char *text, size_t len) AM_MUST_CHECK;
int am_provision_load(am_provision *p, const char *path) AM_MUST_CHECK;
void am_provision_clear(am_provision *p);
/* am_pki_check_peer: in PKI mode, may the peer that proved pk and calls
 * itself name link with us? A trusted gateway key may; anyone else needs
 * a certificate from a trusted gateway for that key and name, valid now,
 * neither it nor the key revoked (q may be NULL). Errors: AM_EUNTRUSTED,
 * AM_EEXPIRED, AM_EREVOKED, each naming the reason. */
int am_pki_check_peer(const char *cert, const uint8_t pk[static AM_PK_BYTES], const char *name,
    const uint8_t *trusted, size_t ntrusted, am_queue *q, uint64_t now_ms);

/* ------------------------------------------------------------- pairing --- */

/* Pairing a node on another machine in one step (pair.c,
 * docs/PROTOCOL.md §20): the gateway prints a single-use code; the node
 * claims with a MAC under a key drawn from it and gets the grant sealed
 * under another. */
#define AM_PAIR_CODE_BYTES 12
#define AM_PAIR_CODE_TEXT  30          /* xxxx-xxxx-xxxx-xxxx-xxxx-xxxx */
#define AM_PAIR_GRANT_MAX  (16u << 10) /* a sealed grant's most bytes */
typedef struct am_pair_keys {
	uint8_t claim_key[32]; /* the claim's MAC */
	uint8_t box_key[32];   /* the grant's AEAD */
} am_pair_keys;
void am_pair_code_new(uint8_t code[static AM_PAIR_CODE_BYTES], char text[static AM_PAIR_CODE_TEXT]);
void am_pair_code_format(char text[static AM_PAIR_CODE_TEXT], const uint8_t code[static AM_PAIR_CODE_BYTES]);
/* 24 hex digits, dashes and spaces ignored, either case; AM_EFIELD */
int am_pair_code_parse(uint8_t code[static AM_PAIR_CODE_BYTES], const char *text) AM_MUST_CHECK;
void am_pair_keys_derive(am_pair_keys *k, const uint8_t code[static AM_PAIR_CODE_BYTES]);
void am_pair_proof(uint8_t out[static 32], const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES]);
/* the claim {node, name, proof} as JSON text (malloc'd) */
int am_pair_claim_make(char **out, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES], const char *name)
    AM_MUST_CHECK;
/* read a claim (hostile input); the proof is checked by the caller
 * against its codes. Errors: AM_EMALFORMED, AM_EFIELD. */
int am_pair_claim_parse(const char *text, size_t len, uint8_t node_pk[static AM_PK_BYTES],
    char name[static AM_TAG_MAX + 1], uint8_t proof[static 32]) AM_MUST_CHECK;
/* seal: the answer {grant: hex} (malloc'd); open: its plain text
 * (malloc'd, NUL-ended). Errors: AM_EMALFORMED, AM_EBADSIG (not sealed
 * with this code for this node). */
int am_pair_seal(char **out, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES], const char *plain,
    size_t len) AM_MUST_CHECK;
int am_pair_open(char **plain, size_t *plen, const am_pair_keys *k, const uint8_t node_pk[static AM_PK_BYTES],
    const char *text, size_t len) AM_MUST_CHECK;
/* `[http://]HOST:PORT/CODE` (what agent-mesh pair prints): the API URL
 * http://HOST:PORT, the HOST alone, the code. AM_EFIELD names the part. */
int am_pair_join_parse(const char *arg, char api_url[static 160], char host[static 96],
    uint8_t code[static AM_PAIR_CODE_BYTES]) AM_MUST_CHECK;

/* --------------------------------------------------------------- audit --- */

/* The hash-chained, signed audit log (audit.c, docs/OPERATIONS.md). */
typedef struct am_audit am_audit;
struct json_t;
/* am_audit_open: append to path (made with its folder, mode 0600),
 * continuing the chain from its last line. Errors: AM_EIO, AM_EMALFORMED
 * (the last line is damaged: verify the log, then move it aside). */
int am_audit_open(am_audit **out, const char *path, const am_identity *me) AM_MUST_CHECK;
void am_audit_close(am_audit *a);
/* am_audit_reopen: open the path again (after logrotate moved it: the
 * daemons do it on SIGHUP). A new, empty file goes on with the chain the
 * old one ended, so `audit verify OLD NEW` checks the joint. */
int am_audit_reopen(am_audit *a) AM_MUST_CHECK;
/* am_audit_syslog_check: would AUDIT_SYSLOG (spec) work as written (its
 * form, a UDP host that resolves, TLS's AUDIT_SYSLOG_CA)? AM_EINVAL
 * naming the problem; nothing is sent. */
int am_audit_syslog_check(const char *spec) AM_MUST_CHECK;
const char *am_audit_path(const am_audit *a);
/* am_audit_set_sync: false skips the fdatasync per line (bulk tests only;
 * the daemons never do). */
void am_audit_set_sync(am_audit *a, bool sync);
/* am_audit_log: one record: event ("link_refused", "token_refused", ...),
 * subject (who or what it is about), workflow_id (may be NULL) and the
 * fields of details (a JSON object, consumed; may be NULL). a may be NULL
 * (nothing is logged). Thread- and process-safe. */
int am_audit_log(am_audit *a, const char *event, const char *subject, const char *workflow_id,
    struct json_t *details);

/* Refusals anyone can cause (a bad token, a wrong network key) at a
 * bounded cost (audit_limit.c): the first of each kind a minute in full,
 * the rest as one "<event>_repeated" record with their count. Takes
 * details. l may be NULL (nothing is written). */
typedef struct am_audit_limiter am_audit_limiter;
int am_audit_limiter_new(am_audit_limiter **out, am_audit *a) AM_MUST_CHECK;
void am_audit_limiter_free(am_audit_limiter *l); /* writes what it still counts */
int am_audit_refusal(am_audit_limiter *l, const char *event, const char *reason, const char *subject,
    struct json_t *details, uint64_t now_ms);

typedef struct am_audit_report {
	uint64_t lines;      /* lines that verified */
	uint64_t bad_line;   /* the first bad line (1-based), 0 if none */
	uint64_t first_seq, last_seq;
	char last_hash[65];  /* of the last line that verified: the next file's first prev */
	bool continues;      /* the first line goes on from a file not given (--continued) */
} am_audit_report;
/* am_audit_verify: check every line's chain link and signature (and, when
 * want_node is not NULL, that this node wrote it). Errors: AM_EIO,
 * AM_EBADSIG naming the first bad line and what is wrong with it. */
int am_audit_verify(const char *path, const uint8_t *want_node, am_audit_report *r);
/* the same for one of several files given in order: after_hash NULL for
 * the first, which starts a chain at seq 1 (or, with continued, goes on
 * from lines not given); else the previous file's last_hash and
 * last_seq, which its first line must continue (the joint). */
int am_audit_verify_after(const char *path, const uint8_t *want_node, const char *after_hash, uint64_t after_seq,
    bool continued, am_audit_report *r);

#endif /* AM_TRUST_H */
