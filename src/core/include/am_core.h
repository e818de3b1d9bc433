/*
 * am_core.h — the public contract of src/core: error codes, identities and
 * keys, the signed envelope codec, and geo targets.
 *
 * core owns everything that must be bit-exact between implementations. It
 * does no I/O except reading and writing key files, keeps no global state
 * except libsodium's one-time initialisation and a per-thread error detail,
 * and never exits.
 *
 * Conventions (see docs/PROTOCOL.md for the wire format itself):
 *  - Every fallible function returns 0 or a negative AM_E* code. When it
 *    fails it also leaves a one-line human detail in am_error_detail(), e.g.
 *    "geo: latitude 91 out of range [-90, 90]".
 *  - Outputs come before inputs. Pointers are borrowed for the call unless
 *    the comment says otherwise.
 *  - Thread-safety: all functions are reentrant; am_core_init() must have
 *    returned 0 once before any other call (it is idempotent).
 */
#ifndef AM_CORE_H
#define AM_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define AM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define AM_MUST_CHECK
#endif

/* ------------------------------------------------------------ errors --- */

enum am_error {
	AM_OK          = 0,
	AM_EINVAL      = -1,  /* bad argument from the caller */
	AM_ENOMEM      = -2,  /* allocation failed */
	AM_EIO         = -3,  /* file or device I/O failed (errno in detail) */
	AM_EFULL       = -4,  /* store full (LMDB map full) */
	AM_ENOTFOUND   = -5,  /* no such envelope / key / peer */
	AM_EEXIST      = -6,  /* refusing to overwrite */
	AM_EMALFORMED  = -7,  /* not valid msgpack, or wrong shape */
	AM_ETRUNC      = -8,  /* input ends early */
	AM_ETRAILING   = -9,  /* bytes after the end of the envelope */
	AM_EVERSION    = -10, /* unknown envelope / store version */
	AM_EBADSIG     = -11, /* signature does not verify */
	AM_ETOOBIG     = -12, /* a size limit is exceeded */
	AM_ELIMIT      = -13, /* a count limit is exceeded (tags, points, depth) */
	AM_EFIELD      = -14, /* a field is missing, duplicated or has a bad value */
	AM_EGEO        = -15, /* a geo value is out of range */
	AM_EPEM        = -16, /* not a PEM file of the expected kind */
	AM_EKEY        = -17, /* a key of the wrong algorithm or length */
	AM_EEXPIRED    = -18, /* the envelope's expiry has passed */
	AM_ETOMBSTONE  = -19, /* deleted, delivered or expired here before */
	AM_EDUP        = -20, /* already held */
	AM_ESTORE      = -21, /* store failure other than full (detail says) */
	AM_ECOMPRESS   = -22, /* zlib failed, or output over the payload limit */
	AM_ESEAL       = -23, /* sealed payload cannot be opened with this key */
	AM_ENOSTORE    = -24, /* no store at that path */
	AM_ELOCKED     = -25, /* store busy (reader table full) */
	AM_EUNTRUSTED  = -26, /* a peer's key is not the one trusted for it */
	AM_EDENIED     = -27, /* a valid token that does not allow the action */
	AM_EREVOKED    = -28, /* a token or key revoked by its issuer */
	AM_ETIMEDOUT   = -29, /* the peer did not answer in time */
	AM_ENETKEY     = -30, /* the peer does not hold this network's key */
	AM_EKEYCHANGED = -31, /* a pinned name presented another key, or a pinned key another name */
	AM_EREADONLY   = -32, /* a file system or folder that takes no writes */
};

/* the last code: every one from -1 to here has its own am_strerror phrase */
#define AM_ERROR_MIN (-32)

/* am_strerror: a fixed, stable phrase for code (never NULL). */
const char *am_strerror(int code);

/* am_error_detail: the detail of the last failure on this thread, or the
 * plain am_strerror() phrase when none was recorded. Valid until the next
 * failing call on this thread. */
const char *am_error_detail(void);

/* am_error_set: record a detail (printf-style) for code and return code.
 * Used by every module so that a CLI can print one precise line. */
int am_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* am_say: one log line (printf-style, a newline added) on standard output,
 * written whole: lines from several threads never interleave inside a
 * line; over 2 KiB it is cut. The daemons' log. */
void am_say(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* am_core_init: initialise libsodium. Returns 0 or AM_ENOMEM. Idempotent,
 * thread-safe. */
int am_core_init(void) AM_MUST_CHECK;

/* --------------------------------------------------------- identities --- */

#define AM_PK_BYTES     32 /* Ed25519 public key */
#define AM_SK_BYTES     64 /* libsodium's expanded Ed25519 secret key */
#define AM_SEED_BYTES   32 /* the 32-byte seed stored in PKCS#8 */
#define AM_SIG_BYTES    64
#define AM_ID_BYTES     32 /* BLAKE2b-256 of the body bytes */
#define AM_NODE_ID_LEN  64 /* lowercase hex of the public key */
#define AM_ID_HEX_LEN   64

/* An identity is a key pair. Its secret half lives in sodium_malloc'd,
 * guarded memory and is wiped by am_identity_free. */
typedef struct am_identity am_identity;

/* am_identity_generate: a fresh random key pair into *out (freed with
 * am_identity_free). Errors: AM_ENOMEM. */
int am_identity_generate(am_identity **out) AM_MUST_CHECK;

/* am_identity_from_seed: the key pair derived from a 32-byte seed
 * (test vectors, provisioning). Errors: AM_ENOMEM. */
int am_identity_from_seed(am_identity **out,
    const uint8_t seed[static AM_SEED_BYTES]) AM_MUST_CHECK;

/* am_identity_load_pem: read a PKCS#8 "PRIVATE KEY" PEM holding an Ed25519
 * key (as written by keygen or `openssl genpkey -algorithm ed25519`).
 * Errors: AM_EIO (cannot read), AM_EPEM (not PEM / bad base64),
 * AM_EKEY (PEM holds another algorithm or a malformed key). */
int am_identity_load_pem(am_identity **out, const char *path) AM_MUST_CHECK;

/* am_identity_parse_pem: the same from memory (the fuzzer's entry). */
int am_identity_parse_pem(am_identity **out, const char *pem,
    size_t len) AM_MUST_CHECK;

/* am_identity_save_pem: write the key as PKCS#8 PEM, mode 0600, through a
 * temporary file, fsync and rename so a crash leaves either nothing or the
 * whole key. Without overwrite an existing path is refused (AM_EEXIST),
 * atomically. Errors: AM_EEXIST, AM_EIO. */
int am_identity_save_pem(const am_identity *id, const char *path,
    bool overwrite) AM_MUST_CHECK;

/* am_identity_to_pem: the PEM text into a malloc'd NUL-terminated buffer
 * (caller frees with am_pem_free, which wipes it). */
int am_identity_to_pem(char **out, const am_identity *id) AM_MUST_CHECK;
void am_pem_free(char *pem);

/* am_identity_pk: the public key (borrowed for the identity's lifetime). */
const uint8_t *am_identity_pk(const am_identity *id);

/* am_identity_sign: detached Ed25519 signature of msg. */
void am_identity_sign(const am_identity *id, uint8_t sig[static AM_SIG_BYTES],
    const uint8_t *msg, size_t len);

/* am_identity_open_sealed: open a payload sealed to this identity
 * (crypto_box_seal to the X25519 form of its key). *out is malloc'd.
 * Errors: AM_ESEAL, AM_ENOMEM. */
int am_identity_open_sealed(const am_identity *id, uint8_t **out,
    size_t *out_len, const uint8_t *in, size_t in_len) AM_MUST_CHECK;

void am_identity_free(am_identity *id);

/* am_node_id_format / parse: the printable node id is the lowercase hex of
 * the public key (64 characters). parse accepts upper or lower case.
 * parse errors: AM_EFIELD. */
void am_node_id_format(char out[static AM_NODE_ID_LEN + 1],
    const uint8_t pk[static AM_PK_BYTES]);
int am_node_id_parse(uint8_t pk[static AM_PK_BYTES], const char *text);

/* am_id_format / parse: envelope ids, same hex rules. */
void am_id_format(char out[static AM_ID_HEX_LEN + 1],
    const uint8_t id[static AM_ID_BYTES]);
int am_id_parse(uint8_t id[static AM_ID_BYTES], const char *text);

/* ---------------------------------------------------------- geo --- */

#define AM_GEO_MAX_POINTS   256 /* polygon vertices */
#define AM_GEO_MIN_POINTS   3
#define AM_GEO_MAX_TAGS     16  /* zone tags in a zone target / on a node */
#define AM_TAG_MAX          63  /* bytes of one tag, group, type ... */
#define AM_GEOHASH_MAX      12
#define AM_EARTH_RADIUS_M   6371008.8 /* mean radius (IUGG) */
#define AM_GEO_MAX_RADIUS_M 20015114.0 /* half the mean circumference */

enum am_geo_kind {
	AM_GEO_NONE = 0,
	AM_GEO_CIRCLE,
	AM_GEO_POLYGON,
	AM_GEO_GEOHASH,
	AM_GEO_ZONE,
};

typedef struct am_geo {
	enum am_geo_kind kind;
	double lat, lon, radius_m;               /* circle */
	uint16_t npoints;                        /* polygon */
	double points[AM_GEO_MAX_POINTS][2];     /* polygon: lat, lon */
	char geohash[AM_GEOHASH_MAX + 1];        /* geohash prefix */
	uint8_t ntags;                           /* zone */
	char tags[AM_GEO_MAX_TAGS][AM_TAG_MAX + 1];
} am_geo;

/* What a node knows of itself for geo matching. */
typedef struct am_position {
	bool has_fix;
	double lat, lon;
	uint8_t ntags;
	char tags[AM_GEO_MAX_TAGS][AM_TAG_MAX + 1];
} am_position;

/* am_geo_check: validate ranges (lat [-90,90], lon [-180,180], radius
 * (0, AM_GEO_MAX_RADIUS_M], 3..256 finite points, geohash alphabet, tag
 * syntax). Errors: AM_EGEO, AM_ELIMIT. */
int am_geo_check(const am_geo *g);

/* am_geo_parse: parse the CLI/API text forms
 *   circle:LAT,LON,RADIUS_M   polygon:LAT,LON;LAT,LON;...
 *   geohash:PREFIX            zone:TAG[,TAG...]
 * and check them. Errors: AM_EGEO, AM_ELIMIT, AM_EFIELD. */
int am_geo_parse(am_geo *out, const char *text);

/* am_geo_format: the same text form (for display). */
void am_geo_format(char *out, size_t cap, const am_geo *g);

/* am_geo_matches: true when a node at pos lies in g. Circles use the
 * haversine distance; polygons are rings in lat/lon, unwrapped across the
 * antimeridian, and a ring that winds around a pole encloses the pole on
 * the side of its mean latitude; zones match on any shared tag; a node
 * without a fix matches no spatial target. */
bool am_geo_matches(const am_geo *g, const am_position *pos);

/* am_geo_distance_m: great-circle distance (haversine). */
double am_geo_distance_m(double lat1, double lon1, double lat2, double lon2);

/* am_geohash_encode: geohash of a point with len characters (1..12). */
void am_geohash_encode(char *out, double lat, double lon, int len);

/* am_tag_check: a tag, group or type name is 1..63 bytes of
 * [A-Za-z0-9._:-]. Errors: AM_EFIELD. */
int am_tag_check(const char *what, const char *s, size_t len);

/* ---------------------------------------------------------- envelope --- */

#define AM_ENVELOPE_VERSION 1
#define AM_MAX_PAYLOAD      (1u << 20)          /* 1 MiB after decompression */
/* Lifetimes: an envelope lives at most 10 years (expires - created; long
 * enough for the revocation of a long-lived token) and no time is past
 * the year 9999; what users ask for (--ttl, "ttl") at most a year. */
#define AM_MAX_LIFETIME_MS  (3653ull * 24 * 3600 * 1000)
#define AM_MAX_TIME_MS      253402300799999ull  /* 9999-12-31T23:59:59.999Z */
#define AM_MAX_TTL_MS       (366ull * 24 * 3600 * 1000)
#define AM_MAX_BODY         (AM_MAX_PAYLOAD + 16384)
#define AM_MAX_ENVELOPE     (AM_MAX_BODY + 96)
#define AM_MAX_DEPTH        6     /* msgpack nesting inside a body */
#define AM_MAX_CTYPE        127
#define AM_MAX_WORKFLOW     127
#define AM_DEFAULT_HOPS     16
#define AM_NONCE_BYTES      8

enum am_dest_kind {
	AM_DEST_NODE = 1,
	AM_DEST_GROUP,
	AM_DEST_BROADCAST,
};

enum am_priority {
	AM_PRIO_BULK = 0,
	AM_PRIO_NORMAL = 1,
	AM_PRIO_HIGH = 2,
	AM_PRIO_URGENT = 3,
};

/* The decoded body. Strings are NUL-terminated copies; payload points into
 * the envelope's own buffer and is the bytes as carried (compressed and/or
 * sealed when the flags say so; use am_envelope_payload to get plaintext). */
typedef struct am_body {
	char type[AM_TAG_MAX + 1];      /* "message", "receipt", ... */
	uint8_t src[AM_PK_BYTES];
	enum am_dest_kind dest_kind;
	uint8_t dest_node[AM_PK_BYTES]; /* AM_DEST_NODE */
	char dest_group[AM_TAG_MAX + 1];/* AM_DEST_GROUP */
	am_geo geo;                     /* kind AM_GEO_NONE when absent */
	uint64_t created_ms;            /* unix epoch milliseconds */
	uint64_t expires_ms;            /* > created_ms */
	uint8_t priority;               /* 0..3, 3 most urgent */
	char content_type[AM_MAX_CTYPE + 1];
	bool compressed;                /* payload is a zlib stream */
	bool sealed;                    /* payload is crypto_box_seal'ed */
	uint8_t nonce[AM_NONCE_BYTES];  /* makes equal sends distinct */
	bool has_ref;
	uint8_t ref[AM_ID_BYTES];
	char workflow_id[AM_MAX_WORKFLOW + 1];
	const uint8_t *payload;
	size_t payload_len;
} am_body;

/* A verified envelope. Owns a copy of the encoded bytes. */
typedef struct am_envelope {
	uint8_t id[AM_ID_BYTES];
	uint8_t sig[AM_SIG_BYTES];
	uint8_t version;
	uint8_t hops_left;
	am_body body;
	uint8_t *raw;          /* whole encoded envelope (owned; NULL for a view) */
	size_t raw_len;
	const uint8_t *body_bytes; /* into raw: the signed bytes */
	size_t body_len;
} am_envelope;

/* What a sender fills in; am_envelope_seal_and_sign does the rest. */
typedef struct am_envelope_spec {
	const char *type;           /* NULL: "message" */
	enum am_dest_kind dest_kind;
	uint8_t dest_node[AM_PK_BYTES];
	const char *dest_group;
	const am_geo *geo;          /* NULL: none */
	uint64_t created_ms;
	uint64_t expires_ms;
	uint8_t priority;
	const char *content_type;   /* NULL: "application/octet-stream" */
	bool seal;                  /* seal payload to dest_node */
	bool no_compress;           /* never try zlib */
	const uint8_t *nonce;       /* NULL: random (non-NULL for vectors) */
	const uint8_t *ref;         /* NULL: none */
	const char *workflow_id;    /* NULL: none */
	const uint8_t *payload;
	size_t payload_len;
	uint8_t hops;               /* 0: AM_DEFAULT_HOPS */
} am_envelope_spec;

/* am_envelope_create: build the body (compressing only when zlib makes it
 * smaller, sealing when asked), sign it with `from`, and return the encoded
 * envelope in *out (malloc'd, caller frees) and its id. Errors: AM_EINVAL,
 * AM_ETOOBIG, AM_EFIELD, AM_EGEO, AM_ELIMIT, AM_ENOMEM, AM_ECOMPRESS. */
int am_envelope_create(uint8_t **out, size_t *out_len,
    uint8_t id[static AM_ID_BYTES], const am_envelope_spec *spec,
    const am_identity *from) AM_MUST_CHECK;

/* am_envelope_create_decoded: am_envelope_create, returning the envelope
 * decoded in *env (free with am_envelope_clear) for callers that store or
 * send what they just signed. Its signature is not re-checked: this
 * process made it. Errors as am_envelope_create. */
int am_envelope_create_decoded(am_envelope *env, const am_envelope_spec *spec,
    const am_identity *from) AM_MUST_CHECK;

/* am_envelope_decode: parse an encoded envelope, enforce every limit,
 * compute its id and verify its signature. On success *env holds a copy of
 * the bytes (free with am_envelope_clear). On failure *env is zeroed: a
 * payload is never returned unverified.
 * Errors: AM_ETRUNC, AM_ETRAILING, AM_EMALFORMED, AM_EVERSION, AM_ETOOBIG,
 * AM_ELIMIT, AM_EFIELD, AM_EGEO, AM_EBADSIG, AM_ENOMEM. */
int am_envelope_decode(am_envelope *env, const uint8_t *buf,
    size_t len) AM_MUST_CHECK;

/* am_envelope_decode_view: am_envelope_decode without copying: env's
 * pointers go into buf, which the caller keeps alive and unchanged while
 * env is used (env->raw stays NULL; am_envelope_clear is still safe).
 * When known_id is not NULL it must be what am_envelope_peek returned for
 * these same bytes, and the body is not hashed again. Same checks and
 * errors as am_envelope_decode. */
int am_envelope_decode_view(am_envelope *env, const uint8_t *buf, size_t len,
    const uint8_t *known_id) AM_MUST_CHECK;

/* am_envelope_peek: the cheap path used before any signature check (dedup):
 * parse only the outer array and hash the body. Nothing is verified; use
 * the id only to look things up. Errors as decode's outer-layer ones. */
int am_envelope_peek(uint8_t id[static AM_ID_BYTES], uint8_t *hops_left,
    const uint8_t *buf, size_t len) AM_MUST_CHECK;

/* am_envelope_payload: the plaintext payload, decompressed (bounded by
 * AM_MAX_PAYLOAD) and, when sealed, opened with `me` (may be NULL for an
 * unsealed envelope). *out is malloc'd; caller frees. Errors: AM_ECOMPRESS,
 * AM_ESEAL, AM_ENOMEM. */
int am_envelope_payload(uint8_t **out, size_t *out_len, const am_envelope *env,
    const am_identity *me) AM_MUST_CHECK;

/* am_envelope_set_hops: rewrite hops_left in an encoded envelope in place
 * (the one field outside the signature). The buffer must have been accepted
 * by decode or peek. */
int am_envelope_set_hops(uint8_t *buf, size_t len, uint8_t hops);

void am_envelope_clear(am_envelope *env);

/* am_dest_format: "node:<hex>", "group:<name>" or "broadcast". */
void am_dest_format(char *out, size_t cap, const am_body *b);

/* am_now_ms: wall clock in unix milliseconds (callers pass it down; core
 * functions never read the clock themselves). */
uint64_t am_now_ms(void);

/* am_duration_parse: "90s", "15m", "2h", "7d", "500ms" or plain seconds
 * into milliseconds. Errors: AM_EFIELD. */
int am_duration_parse(uint64_t *out_ms, const char *text);

/* am_msgpack_check: before handing untrusted bytes to msgpack-c, walk
 * exactly one object and check that it ends inside the buffer, that no
 * container claims more elements than bytes remain (msgpack-c allocates
 * for the claim up front), and that depth and object count stay under the
 * limits. *end is the object's length. Errors: AM_ETRUNC, AM_EMALFORMED
 * (reserved byte or ext type), AM_ELIMIT. */
int am_msgpack_check(size_t *end, const uint8_t *buf, size_t len,
    unsigned max_depth, size_t max_objects) AM_MUST_CHECK;

/* ------------------------------------------------------------ files --- */

/* am_file_read: the whole file into *out (malloc'd, NUL-terminated, caller
 * frees), refusing files over max bytes. path "-" reads stdin.
 * Errors: AM_EIO (named with path and errno), AM_ETOOBIG, AM_ENOMEM. */
int am_file_read(char **out, size_t *len, const char *path,
    size_t max) AM_MUST_CHECK;

/* am_file_write_atomic: write data to path through a temporary file in the
 * same folder, fsync it, then rename (overwrite) or link (refuse an existing
 * path atomically), and fsync the folder, so a crash leaves the old file or
 * the new one, never a mix. Errors: AM_EEXIST, AM_EIO. */
int am_file_write_atomic(const char *path, const void *data, size_t len,
    unsigned mode, bool overwrite) AM_MUST_CHECK;

/* ---------------------------------------------------------- threads --- */

/* am_parallel_for: call fn(ctx, i0, i1) on contiguous slices of [0, n),
 * one per core (at most 8, and none smaller than 8 items), the calling
 * thread taking the first; returns when all are done. fn must only touch
 * its own slice of shared arrays. Falls back to the calling thread when a
 * thread cannot be started. */
void am_parallel_for(size_t n, void (*fn)(void *ctx, size_t i0, size_t i1),
    void *ctx);

/* ---------------------------------------------------------------- files --- */

/* files.c (am_file_write_atomic is fileio.c's) */
/* am_file_map / am_file_unmap: a read-only mapping of a whole file. */
int am_file_map(const uint8_t **buf, size_t *len, const char *path) AM_MUST_CHECK;
void am_file_unmap(const uint8_t *buf, size_t len);

/* am_dir_list: sorted names in dir ending in suffix (no temporaries).
 * Free with am_dir_list_free. Errors: AM_ENOTFOUND, AM_EIO. */
int am_dir_list(char ***names, size_t *n, const char *dir, const char *suffix);
void am_dir_list_free(char **names, size_t n);

/* am_prune_dir: remove the files ending in suffix not changed for
 * older_than_ms. Job files and call records are kept AM_KEEP_RECORDS_MS:
 * a call older than that is refused by the store anyway (expired, or its
 * tombstone), so its record is no longer needed for at-most-once. */
#define AM_KEEP_RECORDS_MS (30ull * 24 * 3600 * 1000)
void am_prune_dir(const char *dir, const char *suffix, uint64_t older_than_ms);
/* am_file_release: drop mapped pages before upto from the resident set. */
void am_file_release(const uint8_t *buf, size_t upto);

#endif /* AM_CORE_H */
