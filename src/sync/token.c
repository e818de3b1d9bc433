/*
 * token.c — capability tokens: offline-verifiable, attenuable, Ed25519
 * (docs/PROTOCOL.md section 15; the Biscuit idea, with rights as strings).
 *
 *   token  = msgpack [1, issuer(bin32), [block, ...], proof(bin32)]
 *   block  = [body(bin), sig(bin64)]
 *   body 0 = {"id": bin16, "sub": str, "nbf": uint, "exp": uint,
 *             "rights": [str...], "next": bin32}
 *   body i = {"nbf", "exp", "rights", "next"}            (i > 0)
 *   sig 0  = Ed25519 by the issuer over body 0
 *   sig i  = Ed25519 by body (i-1)'s "next" key over body i | sig (i-1)
 *   proof  = the seed of the last block's "next" key
 *
 * Whoever holds a token holds the last proof, so may append a block — with
 * rights each covered by the previous block's, and a validity inside it,
 * signed with the proof — and hand on the longer token with a fresh proof.
 * Nobody can remove a block (the next signature covers the previous one)
 * or widen one (every block is checked against the one before). Text form:
 * "amt1." + base64url without padding.
 *
 * A call grant (am_token_bind) is the chain without a proof,
 *   grant  = msgpack [1, issuer(bin32), [block, ...]]   text "amg1." ...
 * whose last block alone carries "call": bin16, and whose "next" is the
 * key that signs the call envelope: the envelope's signature is the proof.
 *
 * A right is segments separated by ':'; in a covering right "*" matches
 * any one segment, and a last segment "*" matches the rest:
 * "send:*" covers "send:group:cranes"; "call:crane-1:*" covers
 * "call:crane-1:read_sensor".
 */
#include "am_sync.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "amt1."
#define GRANT_PREFIX "amg1."

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void
pack_bin(msgpack_packer *pk, const void *b, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, b, n);
}

bool
am_right_covers(const char *have, const char *want)
{
	for (;;) {
		const char *he = strchr(have, ':'), *we = strchr(want, ':');
		size_t hl = he ? (size_t) (he - have) : strlen(have), wl = we ? (size_t) (we - want) : strlen(want);
		if (hl == 1 && have[0] == '*' && he == NULL)
			return wl > 0; /* a last "*": the rest, at least one segment */
		if (!(hl == 1 && have[0] == '*') && (hl != wl || memcmp(have, want, hl) != 0))
			return false;
		if (he == NULL || we == NULL)
			return he == NULL && we == NULL;
		have = he + 1;
		want = we + 1;
	}
}

static int
check_right(const char *r, size_t len)
{
	if (len == 0 || len > AM_RIGHT_MAX)
		return am_error_set(AM_EFIELD, "token: a right must be 1..%d bytes", AM_RIGHT_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = r[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		        c == '-' || c == ':' || c == '*' || c == '/'))
			return am_error_set(AM_EFIELD, "token: right \"%.*s\" has a character outside [A-Za-z0-9._:/*-]",
			    (int) len, r);
	}
	bool empty = r[0] == ':' || r[len - 1] == ':';
	for (size_t i = 1; i < len && !empty; i++) /* r need not end in a NUL */
		empty = r[i] == ':' && r[i - 1] == ':';
	if (empty)
		return am_error_set(AM_EFIELD, "token: right \"%.*s\" has an empty segment", (int) len, r);
	return 0;
}

/* body of a block, msgpack */
static int
block_body(msgpack_sbuffer *sb, const am_token_block *b, const uint8_t *id, const char *sub)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, (id ? 6 : 4) + (b->bound ? 1 : 0));
	if (id) {
		pack_str(&pk, "id");
		pack_bin(&pk, id, AM_TOKEN_ID_BYTES);
		pack_str(&pk, "sub");
		pack_str(&pk, sub);
	}
	pack_str(&pk, "nbf");
	msgpack_pack_uint64(&pk, b->nbf_ms);
	pack_str(&pk, "exp");
	msgpack_pack_uint64(&pk, b->exp_ms);
	pack_str(&pk, "rights");
	msgpack_pack_array(&pk, b->nrights);
	for (size_t i = 0; i < b->nrights; i++)
		pack_str(&pk, b->rights[i]);
	pack_str(&pk, "next");
	pack_bin(&pk, b->next_pk, AM_PK_BYTES);
	if (b->bound) {
		pack_str(&pk, "call");
		pack_bin(&pk, b->call, AM_TOKEN_ID_BYTES);
	}
	return sb->data == NULL ? am_error_set(AM_ENOMEM, "out of memory") : 0;
}

/* the whole token as text */
static int
to_text(char **out, const am_token *t)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t cap;
	int rc = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, t->grant ? 3 : 4);
	msgpack_pack_uint8(&pk, 1);
	pack_bin(&pk, t->issuer, AM_PK_BYTES);
	msgpack_pack_array(&pk, t->nblocks);
	for (size_t i = 0; i < t->nblocks; i++) {
		msgpack_pack_array(&pk, 2);
		pack_bin(&pk, t->body[i], t->body_len[i]);
		pack_bin(&pk, t->sig[i], AM_SIG_BYTES);
	}
	if (!t->grant)
		pack_bin(&pk, t->proof, AM_SEED_BYTES);
	const char *prefix = t->grant ? GRANT_PREFIX : PREFIX;
	cap = sodium_base64_ENCODED_LEN(sb.size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (sb.data == NULL || (*out = malloc(strlen(prefix) + cap)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
	} else {
		memcpy(*out, prefix, strlen(prefix));
		sodium_bin2base64(*out + strlen(prefix), cap, (const uint8_t *) sb.data, sb.size,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

void
am_token_clear(am_token *t)
{
	for (size_t i = 0; i < AM_TOKEN_MAX_BLOCKS; i++)
		free(t->body[i]);
	sodium_memzero(t, sizeof(*t));
}

/* append block b to t, signed by signer (the issuer for block 0, else the
 * holder of the previous proof); a fresh proof replaces the old one */
static int
append_block(am_token *t, am_token_block *b, const am_identity *signer)
{
	msgpack_sbuffer sb;
	uint8_t seed[AM_SEED_BYTES] = {0}, *msg;
	am_identity *next = NULL;
	size_t i = t->nblocks, mlen;
	int rc;

	if (i == AM_TOKEN_MAX_BLOCKS)
		return am_error_set(AM_ELIMIT, "token: at most %d blocks", AM_TOKEN_MAX_BLOCKS);
	if (!b->bound) { /* a bound block's next key is the call's signer */
		randombytes_buf(seed, sizeof(seed));
		if ((rc = am_identity_from_seed(&next, seed)) != 0)
			return rc;
		memcpy(b->next_pk, am_identity_pk(next), AM_PK_BYTES);
		am_identity_free(next);
	}
	if ((rc = block_body(&sb, b, i == 0 ? t->id : NULL, t->subject)) != 0) {
		msgpack_sbuffer_destroy(&sb);
		return rc;
	}
	mlen = sb.size + (i > 0 ? AM_SIG_BYTES : 0);
	if ((msg = malloc(mlen)) == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return am_error_set(AM_ENOMEM, "out of memory");
	}
	memcpy(msg, sb.data, sb.size);
	if (i > 0)
		memcpy(msg + sb.size, t->sig[i - 1], AM_SIG_BYTES);
	am_identity_sign(signer, t->sig[i], msg, mlen);
	free(msg);
	t->body[i] = (uint8_t *) sb.data; /* ours now */
	t->body_len[i] = sb.size;
	t->blocks[i] = *b;
	t->nblocks++;
	memcpy(t->proof, seed, sizeof(seed));
	sodium_memzero(seed, sizeof(seed));
	return 0;
}

static int
check_block_rights(const am_token_block *b, const am_token_block *prev, size_t i)
{
	for (size_t r = 0; r < b->nrights; r++) {
		int rc = check_right(b->rights[r], strlen(b->rights[r]));
		if (rc != 0)
			return rc;
		bool covered = prev == NULL;
		for (size_t p = 0; prev != NULL && p < prev->nrights && !covered; p++)
			covered = am_right_covers(prev->rights[p], b->rights[r]);
		if (!covered)
			return am_error_set(AM_EDENIED, "token: block %zu widens the rights (\"%s\" is not covered by block %zu)",
			    i, b->rights[r], i - 1);
	}
	if (b->exp_ms <= b->nbf_ms)
		return am_error_set(AM_EFIELD, "token: block %zu expires before it starts", i);
	if (prev != NULL && (b->nbf_ms < prev->nbf_ms || b->exp_ms > prev->exp_ms))
		return am_error_set(AM_EDENIED, "token: block %zu is valid outside block %zu's time", i, i - 1);
	return 0;
}

int
am_token_issue(char **out, const am_identity *issuer, const char *subject, const char *const *rights, size_t n,
    uint64_t nbf_ms, uint64_t exp_ms, am_token *copy)
{
	am_token t;
	am_token_block b;
	int rc;

	*out = NULL;
	memset(&t, 0, sizeof(t));
	memset(&b, 0, sizeof(b));
	if (n == 0 || n > AM_TOKEN_MAX_RIGHTS)
		return am_error_set(AM_ELIMIT, "token: 1..%d rights, not %zu", AM_TOKEN_MAX_RIGHTS, n);
	if (strlen(subject) == 0 || strlen(subject) >= sizeof(t.subject))
		return am_error_set(AM_EFIELD, "token: the subject must be 1..%zu bytes", sizeof(t.subject) - 1);
	for (size_t i = 0; i < n; i++) {
		if ((rc = check_right(rights[i], strlen(rights[i]))) != 0)
			return rc;
		snprintf(b.rights[i], sizeof(b.rights[i]), "%s", rights[i]);
	}
	b.nrights = (uint8_t) n;
	b.nbf_ms = nbf_ms;
	b.exp_ms = exp_ms;
	if (exp_ms <= nbf_ms)
		return am_error_set(AM_EFIELD, "token: it expires before it starts");
	randombytes_buf(t.id, sizeof(t.id));
	snprintf(t.subject, sizeof(t.subject), "%s", subject);
	memcpy(t.issuer, am_identity_pk(issuer), AM_PK_BYTES);
	if ((rc = append_block(&t, &b, issuer)) == 0)
		rc = to_text(out, &t);
	if (rc == 0 && copy != NULL)
		*copy = t;
	else
		am_token_clear(&t);
	return rc;
}

/* t plus block b (its rights and exp asked for; nbf inherited), signed
 * with t's proof: the shared part of attenuate and bind */
static int
extend(char **out, const am_token *in, am_token_block *b, const char *const *rights, size_t n, uint64_t exp_ms,
    bool grant)
{
	am_token t = *in;
	am_identity *holder = NULL;
	int rc;

	*out = NULL;
	/* the copy shares in's bodies; give it its own */
	for (size_t i = 0; i < AM_TOKEN_MAX_BLOCKS; i++)
		t.body[i] = NULL;
	if (in->grant) {
		rc = am_error_set(AM_EDENIED, "token: a call grant cannot be extended");
		goto out;
	}
	for (size_t i = 0; i < in->nblocks; i++) {
		if ((t.body[i] = malloc(in->body_len[i])) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(t.body[i], in->body[i], in->body_len[i]);
	}
	const am_token_block *last = &in->blocks[in->nblocks - 1];
	if (n == 0 || n > AM_TOKEN_MAX_RIGHTS) {
		rc = am_error_set(AM_ELIMIT, "token: 1..%d rights, not %zu", AM_TOKEN_MAX_RIGHTS, n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(b->rights[i], sizeof(b->rights[i]), "%s", rights[i]);
	b->nrights = (uint8_t) n;
	b->nbf_ms = last->nbf_ms;
	b->exp_ms = exp_ms && exp_ms < last->exp_ms ? exp_ms : last->exp_ms;
	/* refuse here what any verifier would refuse */
	if ((rc = check_block_rights(b, last, in->nblocks)) != 0)
		goto out;
	if ((rc = am_identity_from_seed(&holder, in->proof)) != 0)
		goto out;
	if ((rc = append_block(&t, b, holder)) == 0) {
		t.grant = grant;
		rc = to_text(out, &t);
	}
out:
	am_identity_free(holder);
	am_token_clear(&t);
	return rc;
}

int
am_token_attenuate(char **out, const am_token *in, const char *const *rights, size_t n, uint64_t exp_ms)
{
	am_token_block b;

	memset(&b, 0, sizeof(b));
	return extend(out, in, &b, rights, n, exp_ms, false);
}

int
am_token_bind(char **out, const am_token *in, const char *action, uint64_t exp_ms,
    const uint8_t signer_pk[static AM_PK_BYTES])
{
	am_token_block b;
	const char *rights[] = {action};

	memset(&b, 0, sizeof(b));
	b.bound = true;
	randombytes_buf(b.call, sizeof(b.call));
	memcpy(b.next_pk, signer_pk, AM_PK_BYTES);
	if (exp_ms == 0)
		return am_error_set(AM_EFIELD, "token: a call grant needs the call's deadline");
	return extend(out, in, &b, rights, 1, exp_ms, true);
}

static int
copy_bin(uint8_t *dst, size_t n, const msgpack_object *o, const char *what)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
		return am_error_set(AM_EFIELD, "token: %s must be %zu bytes", what, n);
	memcpy(dst, o->via.bin.ptr, n);
	return 0;
}

static int
decode_body(am_token *t, size_t i, const uint8_t *buf, size_t len)
{
	msgpack_unpacked up;
	size_t end = 0, off = 0;
	bool has_next = false, has_exp = false, has_rights = false, has_id = false, has_sub = false;
	am_token_block *b = &t->blocks[i];
	int rc = 0;

	if ((rc = am_msgpack_check(&end, buf, len, 3, 256)) != 0 || end != len)
		return am_error_set(rc ? rc : AM_ETRAILING, "token: block %zu is not one msgpack map", i);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *) buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP) {
		rc = am_error_set(AM_EMALFORMED, "token: block %zu is not a map", i);
		goto out;
	}
	for (uint32_t k = 0; k < up.data.via.map.size && rc == 0; k++) {
		const msgpack_object *key = &up.data.via.map.ptr[k].key, *v = &up.data.via.map.ptr[k].val;
		if (key->type != MSGPACK_OBJECT_STR)
			continue;
#define KEY(s) (key->via.str.size == strlen(s) && memcmp(key->via.str.ptr, s, strlen(s)) == 0)
		if (KEY("nbf") || KEY("exp")) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
				rc = am_error_set(AM_EFIELD, "token: block %zu: nbf/exp must be times in ms", i);
			else if (KEY("nbf"))
				b->nbf_ms = v->via.u64;
			else {
				b->exp_ms = v->via.u64;
				has_exp = true;
			}
		} else if (KEY("rights")) {
			if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0 || v->via.array.size > AM_TOKEN_MAX_RIGHTS) {
				rc = am_error_set(AM_EFIELD, "token: block %zu: rights must be a list of 1..%d", i, AM_TOKEN_MAX_RIGHTS);
				break;
			}
			for (uint32_t r = 0; r < v->via.array.size && rc == 0; r++) {
				const msgpack_object *s = &v->via.array.ptr[r];
				if (s->type != MSGPACK_OBJECT_STR || (rc = check_right(s->via.str.ptr, s->via.str.size)) != 0) {
					rc = rc ? rc : am_error_set(AM_EFIELD, "token: block %zu: a right is not a string", i);
					break;
				}
				memcpy(b->rights[r], s->via.str.ptr, s->via.str.size);
				b->rights[r][s->via.str.size] = '\0';
			}
			b->nrights = (uint8_t) v->via.array.size;
			has_rights = true;
		} else if (KEY("next")) {
			rc = copy_bin(b->next_pk, AM_PK_BYTES, v, "next");
			has_next = true;
		} else if (KEY("call")) {
			rc = copy_bin(b->call, AM_TOKEN_ID_BYTES, v, "call");
			b->bound = true;
		} else if (KEY("id") && i == 0) {
			rc = copy_bin(t->id, AM_TOKEN_ID_BYTES, v, "id");
			has_id = true;
		} else if (KEY("sub") && i == 0) {
			if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 || v->via.str.size >= sizeof(t->subject) ||
			    memchr(v->via.str.ptr, 0, v->via.str.size) != NULL)
				rc = am_error_set(AM_EFIELD, "token: sub must be a string of 1..%zu bytes", sizeof(t->subject) - 1);
			else {
				memcpy(t->subject, v->via.str.ptr, v->via.str.size);
				t->subject[v->via.str.size] = '\0';
				has_sub = true;
			}
		}
#undef KEY
	}
	if (rc == 0 && (!has_next || !has_exp || !has_rights || (i == 0 && (!has_id || !has_sub))))
		rc = am_error_set(AM_EFIELD, "token: block %zu lacks %s", i,
		    !has_next ? "next" : !has_exp ? "exp" : !has_rights ? "rights" : !has_id ? "id" : "sub");
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

static int
parse(am_token *t, const char *text, bool grant)
{
	size_t tl = strlen(text), cap, len = 0, off = 0, end = 0;
	uint8_t *bin = NULL;
	msgpack_unpacked up;
	const char *prefix = grant ? GRANT_PREFIX : PREFIX;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	msgpack_unpacked_init(&up);
	if (!grant && tl >= strlen(GRANT_PREFIX) && memcmp(text, GRANT_PREFIX, strlen(GRANT_PREFIX)) == 0) {
		rc = am_error_set(AM_EDENIED, "a call grant is not a bearer token: it is valid only inside the one call "
		                              "it was made for");
		goto out;
	}
	if (tl < strlen(prefix) || memcmp(text, prefix, strlen(prefix)) != 0) {
		rc = am_error_set(AM_EVERSION, grant ? "not a call grant (they start with \"%s\")" :
		                                       "not a capability token (they start with \"%s\")", prefix);
		goto out;
	}
	text += strlen(prefix);
	tl -= strlen(prefix);
	if (tl > AM_TOKEN_MAX_TEXT) {
		rc = am_error_set(AM_ETOOBIG, "token of %zu characters (limit %d)", tl, AM_TOKEN_MAX_TEXT);
		goto out;
	}
	cap = tl / 4 * 3 + 3;
	if ((bin = malloc(cap)) == NULL) {
		rc = am_error_set(AM_ENOMEM, "out of memory");
		goto out;
	}
	if (sodium_base642bin(bin, cap, text, tl, NULL, &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
		rc = am_error_set(AM_EMALFORMED, "token: not valid base64url");
		goto out;
	}
	if ((rc = am_msgpack_check(&end, bin, len, 4, 512)) != 0 || end != len) {
		rc = am_error_set(rc ? rc : AM_ETRAILING, "token: not one msgpack array");
		goto out;
	}
	if (msgpack_unpack_next(&up, (const char *) bin, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != (grant ? 3u : 4u)) {
		rc = am_error_set(AM_EMALFORMED, "token: not a %d-element array", grant ? 3 : 4);
		goto out;
	}
	const msgpack_object *a = up.data.via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1) {
		rc = am_error_set(AM_EVERSION, "token: unknown version");
		goto out;
	}
	if ((rc = copy_bin(t->issuer, AM_PK_BYTES, &a[1], "issuer")) != 0 ||
	    (!grant && (rc = copy_bin(t->proof, AM_SEED_BYTES, &a[3], "proof")) != 0))
		goto out;
	if (a[2].type != MSGPACK_OBJECT_ARRAY || a[2].via.array.size == 0 || a[2].via.array.size > AM_TOKEN_MAX_BLOCKS) {
		rc = am_error_set(AM_EFIELD, "token: 1..%d blocks", AM_TOKEN_MAX_BLOCKS);
		goto out;
	}
	for (uint32_t i = 0; i < a[2].via.array.size; i++) {
		const msgpack_object *blk = &a[2].via.array.ptr[i];
		const uint8_t *signer = i == 0 ? t->issuer : t->blocks[i - 1].next_pk;
		uint8_t *msg;
		size_t mlen;
		if (blk->type != MSGPACK_OBJECT_ARRAY || blk->via.array.size != 2 ||
		    blk->via.array.ptr[0].type != MSGPACK_OBJECT_BIN) {
			rc = am_error_set(AM_EMALFORMED, "token: block %u is not [body, sig]", i);
			goto out;
		}
		const msgpack_object *body = &blk->via.array.ptr[0];
		if ((rc = copy_bin(t->sig[i], AM_SIG_BYTES, &blk->via.array.ptr[1], "sig")) != 0)
			goto out;
		t->body_len[i] = body->via.bin.size;
		if ((t->body[i] = malloc(body->via.bin.size ? body->via.bin.size : 1)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(t->body[i], body->via.bin.ptr, body->via.bin.size);
		t->nblocks = i + 1;
		mlen = t->body_len[i] + (i > 0 ? AM_SIG_BYTES : 0);
		if ((msg = malloc(mlen)) == NULL) {
			rc = am_error_set(AM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(msg, t->body[i], t->body_len[i]);
		if (i > 0)
			memcpy(msg + t->body_len[i], t->sig[i - 1], AM_SIG_BYTES);
		bool good = crypto_sign_verify_detached(t->sig[i], msg, mlen, signer) == 0;
		free(msg);
		if (!good) {
			rc = am_error_set(AM_EBADSIG, "token: block %u's signature does not verify (forged or altered)", i);
			goto out;
		}
		if ((rc = decode_body(t, i, t->body[i], t->body_len[i])) != 0 ||
		    (rc = check_block_rights(&t->blocks[i], i ? &t->blocks[i - 1] : NULL, i)) != 0)
			goto out;
		/* only a grant's last block is bound, and a grant's last block is */
		bool last = i + 1 == a[2].via.array.size;
		if (t->blocks[i].bound != (grant && last)) {
			if (grant && last)
				rc = am_error_set(AM_EMALFORMED, "grant: its last block (%u) names no call", i);
			else if (grant)
				rc = am_error_set(AM_EMALFORMED, "grant: block %u is bound but not last", i);
			else
				rc = am_error_set(AM_EMALFORMED, "token: block %u is bound to one call (a grant's)", i);
			goto out;
		}
	}
	if (grant) {
		t->grant = true;
		goto out;
	}
	{
		/* the proof must be the last block's next key */
		am_identity *p = NULL;
		if ((rc = am_identity_from_seed(&p, t->proof)) != 0)
			goto out;
		bool ok = memcmp(am_identity_pk(p), t->blocks[t->nblocks - 1].next_pk, AM_PK_BYTES) == 0;
		am_identity_free(p);
		if (!ok) {
			rc = am_error_set(AM_EBADSIG, "token: its proof does not match its last block");
			goto out;
		}
	}
out:
	msgpack_unpacked_destroy(&up);
	free(bin);
	if (rc != 0)
		am_token_clear(t);
	return rc;
}

int
am_token_parse(am_token *t, const char *text)
{
	return parse(t, text, false);
}

int
am_grant_parse(am_token *t, const char *text)
{
	return parse(t, text, true);
}

int
am_token_check(const am_token *t, const uint8_t *trusted, size_t ntrusted, uint64_t now_ms, const char *action)
{
	bool issuer_ok = false;
	const am_token_block *last;

	for (size_t i = 0; i < ntrusted && !issuer_ok; i++)
		issuer_ok = memcmp(trusted + i * AM_PK_BYTES, t->issuer, AM_PK_BYTES) == 0;
	if (!issuer_ok) {
		char hex[AM_NODE_ID_LEN + 1];
		am_node_id_format(hex, t->issuer);
		return am_error_set(AM_EUNTRUSTED, "token: issued by %.16s…, not a trusted gateway", hex);
	}
	for (size_t i = 0; i < t->nblocks; i++) {
		if (now_ms < t->blocks[i].nbf_ms)
			return am_error_set(AM_EEXPIRED, "token: not valid yet (block %zu)", i);
		if (now_ms >= t->blocks[i].exp_ms)
			return am_error_set(AM_EEXPIRED, "token: expired (block %zu)", i);
	}
	if (action == NULL)
		return 0;
	last = &t->blocks[t->nblocks - 1];
	for (size_t r = 0; r < last->nrights; r++)
		if (am_right_covers(last->rights[r], action))
			return 0;
	return am_error_set(AM_EDENIED, "token: does not allow \"%s\"", action);
}

void
am_token_revocation_id(uint8_t out[static AM_TOKEN_ID_BYTES], const am_token *t, size_t block)
{
	crypto_generichash(out, AM_TOKEN_ID_BYTES, t->sig[block], AM_SIG_BYTES, NULL, 0);
}

bool
am_token_revoked(const am_token *t, am_queue *q, const uint8_t *trusted, size_t ntrusted)
{
	/* the token's family (its id) and each block on its way here */
	for (size_t i = 0; i <= t->nblocks; i++) {
		uint8_t what[AM_PK_BYTES] = {0};
		if (i == 0)
			memcpy(what, t->id, AM_TOKEN_ID_BYTES);
		else
			am_token_revocation_id(what, t, i - 1);
		if (am_queue_revoked(q, what, trusted, ntrusted) == 0)
			return true;
	}
	return false;
}

void
am_token_id_hex(char out[static 2 * AM_TOKEN_ID_BYTES + 1], const am_token *t)
{
	sodium_bin2hex(out, 2 * AM_TOKEN_ID_BYTES + 1, t->id, AM_TOKEN_ID_BYTES);
}
