#!/usr/bin/python3
"""Independent check of the envelope format (docs/PROTOCOL.md).

Uses only Debian's python3-nacl and python3-msgpack plus the standard
library, and shares no code with the C implementation. It
  1. verifies every positive vector (signature, id, fields, payload) and
     rebuilds the first vector's body byte for byte from its fields;
  2. refuses every negative vector with the documented error;
  3. verifies envelopes made by the agent-mesh CLI (plain, compressed,
     group+geo, sealed) and opens the sealed one with the recipient's PEM key;
  4. makes an envelope here and has the CLI accept it (and refuse a tampered copy);
  5. rebuilds the link transcript vector (LINK.json: the handshake and the
     first frames) byte for byte from PROTOCOL.md section 12 and the seeds.
If C and Python disagree, either docs/PROTOCOL.md or the code is wrong.

usage: crosscheck.py VECTORS.json PATH/TO/agent-mesh [LINK.json]
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import zlib

import msgpack
import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.public
import nacl.signing

MAX_PAYLOAD = 1 << 20
MAX_BODY = MAX_PAYLOAD + 16384
MAX_DEPTH = 5  # nested containers in a body, the body map included
REQUIRED = ["type", "src", "dst", "created", "expires", "prio", "nonce", "payload"]
GEOHASH = "0123456789bcdefghjkmnpqrstuvwxyz"

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg, file=sys.stderr)


def blake(b):
    return nacl.hash.blake2b(b, digest_size=32, encoder=nacl.encoding.RawEncoder)


class Refused(Exception):
    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


def depth(o):
    if isinstance(o, (list, tuple)):
        return 1 + max((depth(x) for x in o), default=0)
    if isinstance(o, dict):
        return 1 + max((max(depth(k), depth(v)) for k, v in o.items()), default=0)
    return 0


def check_geo(g):
    if not isinstance(g, list) or len(g) < 2 or not isinstance(g[0], str):
        raise Refused("AM_EGEO", "geo shape")

    def point(lat, lon):
        if not all(isinstance(x, (int, float)) for x in (lat, lon)):
            raise Refused("AM_EGEO", "geo number")
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise Refused("AM_EGEO", "geo range")

    kind = g[0]
    if kind == "circle":
        if len(g) != 4:
            raise Refused("AM_EGEO", "circle shape")
        point(g[1], g[2])
        if not 0 < g[3] <= 20015114.0:
            raise Refused("AM_EGEO", "radius")
    elif kind == "polygon":
        pts = g[1]
        if len(pts) > 256:
            raise Refused("AM_ELIMIT", "points")
        if len(pts) < 3:
            raise Refused("AM_EGEO", "polygon needs 3 points")
        for p in pts:
            point(p[0], p[1])
    elif kind == "geohash":
        if not 1 <= len(g[1]) <= 12 or any(c not in GEOHASH for c in g[1]):
            raise Refused("AM_EGEO", "geohash")
    elif kind == "zone":
        if not g[1]:
            raise Refused("AM_EGEO", "zone empty")
        if len(g[1]) > 16:
            raise Refused("AM_ELIMIT", "zone tags")
    else:
        raise Refused("AM_EGEO", "geo kind")


def decode(raw):
    """Return (id, hops, body dict) or raise Refused with the C error name."""
    if len(raw) > MAX_BODY + 96:
        raise Refused("AM_ETOOBIG", "envelope size")
    if not raw:
        raise Refused("AM_ETRUNC", "empty")
    if raw[0] != 0x94:  # PROTOCOL.md: the first byte is always fixarray(4)
        raise Refused("AM_EMALFORMED", "first byte 0x%02x is not 0x94" % raw[0])
    try:
        outer = msgpack.unpackb(raw, raw=True, strict_map_key=False)
    except msgpack.ExtraData:
        raise Refused("AM_ETRAILING", "trailing bytes")
    except (ValueError, msgpack.UnpackValueError) as e:
        if "incomplete" in str(e).lower() or "insufficient" in str(e).lower():
            raise Refused("AM_ETRUNC", str(e))
        raise Refused("AM_EMALFORMED", str(e))
    if not isinstance(outer, list) or len(outer) != 4:
        raise Refused("AM_EMALFORMED", "outer is not a 4-element array")
    version, body, sig, hops = outer
    if version != 1:
        raise Refused("AM_EVERSION", "version %r" % version)
    if not isinstance(body, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
        raise Refused("AM_EMALFORMED", "outer field types")
    if len(body) > MAX_BODY:
        raise Refused("AM_ETOOBIG", "body size")
    try:
        m = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as e:
        raise Refused("AM_EMALFORMED", "body: %s" % e)
    if not isinstance(m, dict):
        raise Refused("AM_EMALFORMED", "body is not a map")
    if depth(m) > MAX_DEPTH:
        raise Refused("AM_ELIMIT", "nesting")
    # duplicate keys: msgpack-python keeps the last; count them from the raw map
    pairs = msgpack.unpackb(body, raw=False, object_pairs_hook=lambda p: p, strict_map_key=False)
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise Refused("AM_EFIELD", "duplicate key")
    for k in REQUIRED:
        if k not in m:
            raise Refused("AM_EFIELD", "missing " + k)
    dst = m["dst"]
    if not isinstance(dst, list) or not dst or dst[0] not in ("node", "group", "broadcast"):
        raise Refused("AM_EFIELD", "dst")
    if dst[0] == "node" and (len(dst) != 2 or not isinstance(dst[1], bytes) or len(dst[1]) != 32):
        raise Refused("AM_EFIELD", "dst node")
    if "geo" in m:
        check_geo(m["geo"])
    if not isinstance(m["prio"], int) or not 0 <= m["prio"] <= 3:
        raise Refused("AM_EFIELD", "prio")
    if m["expires"] <= m["created"]:
        raise Refused("AM_EFIELD", "expiry")
    if m["expires"] > 253402300799999 or m["expires"] - m["created"] > 3653 * 86400000:
        raise Refused("AM_EFIELD", "lifetime")
    if len(m["payload"]) > MAX_PAYLOAD + 48:
        raise Refused("AM_ETOOBIG", "payload")
    if not isinstance(m["src"], bytes) or len(m["src"]) != 32:
        raise Refused("AM_EFIELD", "src")
    try:
        nacl.signing.VerifyKey(m["src"]).verify(body, sig)
    except nacl.exceptions.BadSignatureError:
        raise Refused("AM_EBADSIG", "signature")
    return blake(body), hops, m, body, sig


def payload_of(m, recipient_seed=None):
    p = m["payload"]
    if m.get("sealed"):
        sk = nacl.signing.SigningKey(recipient_seed).to_curve25519_private_key()
        p = nacl.public.SealedBox(sk).decrypt(p)
    if m.get("zlib"):
        p = zlib.decompress(p)
    return p


def rebuild_body(m):
    """Encode a body map in the documented key order (PROTOCOL.md)."""
    order = ["type", "src", "dst", "geo", "created", "expires", "prio", "ctype", "zlib", "sealed",
             "nonce", "ref", "workflow", "payload"]
    return msgpack.packb({k: m[k] for k in order if k in m}, use_bin_type=True)


def check_vectors(path):
    v = json.load(open(path))
    for pv in v["positive"]:
        raw = bytes.fromhex(pv["envelope"])
        try:
            eid, hops, m, body, sig = decode(raw)
        except Refused as e:
            fail("positive %s refused: %s %s" % (pv["name"], e.code, e))
            continue
        sk = nacl.signing.SigningKey(bytes.fromhex(pv["signer_seed"]))
        checks = {
            "id": eid.hex() == pv["id"],
            "signature": sig.hex() == pv["signature"],
            "deterministic signature": sk.sign(body).signature == sig,
            "signer key from seed": bytes(sk.verify_key).hex() == pv["signer_pk"],
            "body hex": body.hex() == pv["body"],
            "hops": hops == pv["hops_left"],
            "type": m["type"] == pv["type"],
            "created": m["created"] == pv["created"],
            "expires": m["expires"] == pv["expires"],
            "prio": m["prio"] == pv["prio"],
            "zlib flag": bool(m.get("zlib")) == pv["zlib"],
            "payload": payload_of(m) == pv["payload_text"].encode(),
            "body re-encodes byte for byte": rebuild_body(m) == body,
        }
        for what, ok in checks.items():
            if not ok:
                fail("positive %s: %s" % (pv["name"], what))
        print("vector %-24s ok (%d bytes)" % (pv["name"], len(raw)))
    for nv in v["negative"]:
        raw = bytes.fromhex(nv["envelope"])
        try:
            decode(raw)
            fail("negative %s accepted" % nv["name"])
        except Refused as e:
            if e.code != nv["error"]:
                fail("negative %s: python says %s (%s), vector says %s" % (nv["name"], e.code, e, nv["error"]))
            else:
                print("negative %-22s refused: %s" % (nv["name"], e.code))
    # oversize is generated here rather than stored (it is > 1 MiB)
    sk = nacl.signing.SigningKey(bytes(range(32)))
    body = msgpack.packb({"type": "message", "src": bytes(sk.verify_key), "dst": ["broadcast"],
                          "created": 1, "expires": 2, "prio": 1, "nonce": bytes(8),
                          "payload": bytes(MAX_PAYLOAD + 100)}, use_bin_type=True)
    big = msgpack.packb([1, body, sk.sign(body).signature, 16], use_bin_type=True)
    try:
        decode(big)
        fail("oversize accepted")
    except Refused as e:
        if e.code != "AM_ETOOBIG":
            fail("oversize: %s" % e.code)
    return v


def check_spec_appendix(v):
    """docs/PROTOCOL.md appendix A holds the negative vectors' bytes as the
    vector file does: a second implementation may start from the document."""
    import os
    import re
    spec = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "PROTOCOL.md")).read()
    appendix = spec.split("## Appendix A.", 1)
    if len(appendix) != 2:
        fail("PROTOCOL.md has no appendix A (negative vectors in hex)")
        return
    blocks = dict((m.group(1), re.sub(r"\s", "", m.group(3))) for m in
                  re.finditer(r"^`([a-z0-9-]+)` \((.*)\):\n\n```\n([0-9a-f\n]+)```", appendix[1], re.M))
    for nv in v["negative"]:
        if blocks.get(nv["name"]) != nv["envelope"]:
            fail("PROTOCOL.md appendix A: %s differs from the vector file" % nv["name"])
    print("PROTOCOL.md appendix A: %d negative vectors as in the vector file" % len(v["negative"]))


def check_bundle(v):
    """The bundle vector, read by the rules of PROTOCOL.md section 8."""
    b = bytes.fromhex(v["bundle"]["file"])
    be32 = lambda x, o: int.from_bytes(x[o:o + 4], "big")
    be64 = lambda x, o: int.from_bytes(x[o:o + 8], "big")
    if b[:8] != b"AMBUNDLE" or b[8] != 1:
        return fail("bundle: magic or version")
    writer = b[10:42]
    try:
        nacl.signing.VerifyKey(writer).verify(b[:138], b[138:202])
    except nacl.exceptions.BadSignatureError:
        return fail("bundle: header signature")
    count, nblocks, index_off, total = be32(b, 50), be32(b, 54), be64(b, 58), be64(b, 66)
    if be64(b, 42) != v["bundle"]["created"] or count != v["bundle"]["count"] or total != len(b):
        fail("bundle: header fields")
    if blake(b[202:]) != b[74:106]:
        fail("bundle: contents hash")
    off, ids, blocks = 202, [], 0
    while off < index_off:
        if b[off:off + 4] != b"BLK1":
            return fail("bundle: block marker at %d" % off)
        method, n, ulen, clen = b[off + 4], be32(b, off + 5), be32(b, off + 9), be32(b, off + 13)
        data = b[off + 17:off + 17 + clen]
        data = zlib.decompress(data) if method == 1 else data
        if len(data) != ulen:
            fail("bundle: block length")
        pos = 0
        for _ in range(n):
            ln = be32(data, pos)
            try:
                eid, _, _, _, _ = decode(data[pos + 4:pos + 4 + ln])
                ids.append(eid)
            except Refused as e:
                fail("bundle: envelope refused: %s" % e)
            pos += 4 + ln
        off += 17 + clen
        blocks += 1
    if b[index_off:index_off + 4] != b"IDX1" or be32(b, index_off + 4) != count:
        return fail("bundle: index block")
    index = [b[index_off + 8 + 32 * i:index_off + 40 + 32 * i] for i in range(count)]
    want = [bytes.fromhex(p["id"]) for p in v["positive"]]
    if ids != want or index != want or blocks != nblocks:
        fail("bundle: ids or block count differ")
    else:
        print("bundle vector: %d blocks, %d envelopes, signature, hash and index ok" % (blocks, len(ids)))


def pem_seed(path):
    text = open(path).read()
    b64 = "".join(l for l in text.splitlines() if l and not l.startswith("-----"))
    der = base64.b64decode(b64)
    assert der[:16] == bytes.fromhex("302e020100300506032b657004220420"), "PKCS#8 Ed25519 prefix"
    return der[16:48]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=kw.pop("text", True), check=False, **kw)


def check_cli(tool):
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        ra = run([tool, "init", "--store", a])
        rb = run([tool, "init", "--store", b, "--group", "crane-ops", "--position", "52.52,13.405"])
        if ra.returncode or rb.returncode:
            fail("init: %s %s" % (ra.stderr, rb.stderr))
            return
        bid = rb.stdout.strip()
        # the CLI's node id is the hex public key of the PEM it wrote
        if bytes(nacl.signing.SigningKey(pem_seed(os.path.join(b, "identity.pem"))).verify_key).hex() != bid:
            fail("node id is not the hex of the PEM's public key")
        sends = [
            ("plain", ["--to", bid, "--text", "hello from the crane"]),
            ("compressed", ["--to", bid, "--text", "concrete pour at 0600. " * 40]),
            ("group-geo", ["--group", "crane-ops", "--geo", "circle:52.52,13.405,1500", "--priority", "3",
                           "--workflow", "wf-7", "--text", "wind above 20 m/s, stop lifts"]),
            ("sealed", ["--to", bid, "--seal", "--text", "gate code 4711"]),
        ]
        bseed = pem_seed(os.path.join(b, "identity.pem"))
        for name, args in sends:
            r = run([tool, "send", "--store", a] + args)
            if r.returncode:
                fail("send %s: %s" % (name, r.stderr))
                continue
            eid = r.stdout.strip()
            g = run([tool, "store", "get", "--store", a, "--id", eid], text=False)
            if g.returncode:
                fail("store get %s: %s" % (name, g.stderr))
                continue
            try:
                pid, hops, m, body, sig = decode(g.stdout)
            except Refused as e:
                fail("CLI envelope %s refused by python: %s %s" % (name, e.code, e))
                continue
            text = args[args.index("--text") + 1].encode()
            if pid.hex() != eid:
                fail("%s: id %s != CLI id %s" % (name, pid.hex(), eid))
            if payload_of(m, bseed) != text:
                fail("%s: payload differs" % name)
            if name == "compressed" and not m.get("zlib"):
                fail("compressed: zlib flag not set")
            if name == "sealed" and (not m.get("sealed") or b"4711" in g.stdout):
                fail("sealed: not sealed")
            if name == "group-geo" and (m["dst"] != ["group", "crane-ops"] or m["geo"][0] != "circle"
                                        or m["prio"] != 3 or m["workflow"] != "wf-7"):
                fail("group-geo: fields %r" % m)
            print("cli envelope %-12s verified by python (%d bytes)" % (name, len(g.stdout)))
        # the other way: an envelope made here, accepted by the CLI
        sk = nacl.signing.SigningKey(bytes(range(32)))
        body = msgpack.packb({"type": "message", "src": bytes(sk.verify_key), "dst": ["broadcast"],
                              "created": 1767225600000, "expires": 1767830400000, "prio": 1,
                              "nonce": os.urandom(8), "payload": b"made in python"}, use_bin_type=True)
        env = msgpack.packb([1, body, sk.sign(body).signature, 16], use_bin_type=True)
        f = os.path.join(d, "py.env")
        open(f, "wb").write(env)
        r = run([tool, "envelope", "inspect", "--json", f])
        if r.returncode or json.loads(r.stdout).get("id") != blake(body).hex() \
                or json.loads(r.stdout).get("text") != "made in python":
            fail("CLI refused or misread a python envelope: %s %s" % (r.stdout, r.stderr))
        else:
            print("python envelope accepted by the CLI")
        bad = bytearray(env)
        bad[-20] ^= 1
        open(f, "wb").write(bytes(bad))
        r = run([tool, "envelope", "inspect", f])
        if r.returncode == 0 or "signature" not in r.stderr:
            fail("CLI accepted a tampered python envelope: %s" % r.stderr)
        # correctly signed, but living forever or past the year 9999: refused
        # on decode (failed on ee90c10: accepted)
        for created, expires, why in ((1767225600000, 2**64 - 1, "year 9999"),
                                      (1767225600000, 1767225600000 + 3654 * 86400000, "3653 allowed")):
            body = msgpack.packb({"type": "message", "src": bytes(sk.verify_key), "dst": ["broadcast"],
                                  "created": created, "expires": expires, "prio": 1,
                                  "nonce": os.urandom(8), "payload": b"forever"}, use_bin_type=True)
            open(f, "wb").write(msgpack.packb([1, body, sk.sign(body).signature, 16], use_bin_type=True))
            r = run([tool, "envelope", "inspect", f])
            if r.returncode == 0 or why not in r.stderr:
                fail("CLI accepted an envelope with expires %d: %s" % (expires, r.stderr))
            else:
                print("an envelope living past the limits is refused: %s" % r.stderr.strip())


def link_rules(n, seed_i, seed_r, a, b):
    """Section 12 from scratch: the four handshake messages and both frame
    keys, from the network key, both identity seeds and both ephemeral
    secrets."""
    import hashlib
    import hmac
    sk_i, sk_r = nacl.signing.SigningKey(seed_i), nacl.signing.SigningKey(seed_r)
    pk_i, pk_r = bytes(sk_i.verify_key), bytes(sk_r.verify_key)
    a_pub, b_pub = nacl.bindings.crypto_scalarmult_base(a), nacl.bindings.crypto_scalarmult_base(b)

    def hello(pub):
        head = b"AML" + bytes([1]) + pub
        return head + hmac.new(n, head, hashlib.sha512).digest()[:32]

    ab = nacl.bindings.crypto_scalarmult(a, b_pub)
    if ab != nacl.bindings.crypto_scalarmult(b, a_pub):
        fail("link: X25519 does not agree")
    h = hashlib.blake2b(n + ab + a_pub + b_pub, digest_size=32).digest()

    def key(label, x=b"", y=b""):
        return hashlib.blake2b(label.encode() + x + y, digest_size=32, key=h).digest()

    def seal(k, plain, nonce=bytes(24), ad=None):
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, nonce, k)

    m3 = seal(key("agent_mesh initiator"), pk_i + sk_i.sign(n + h + b"agent_mesh initiator").signature)
    m4 = seal(key("agent_mesh responder"), pk_r + sk_r.sign(n + h + pk_i + b"agent_mesh responder").signature)
    return {"initiator_pk": pk_i, "responder_pk": pk_r, "initiator_ephemeral_public": a_pub,
            "responder_ephemeral_public": b_pub, "message1": hello(a_pub), "message2": hello(b_pub),
            "message3": m3, "message4": m4,
            "i2r": key("agent_mesh i2r", pk_i, pk_r), "r2i": key("agent_mesh r2i", pk_i, pk_r)}


def seal_frame(k, counter, plain):
    """A frame: u32 big-endian length of what follows, then the sealed
    plaintext (nonce: the counter, 8 bytes little-endian, then 16 zeros;
    the length as associated data)."""
    length = (len(plain) + 16).to_bytes(4, "big")
    nonce = counter.to_bytes(8, "little") + bytes(16)
    return length + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, length, nonce, k)


def check_link(path):
    """The link transcript, from section 12's rules and the vector's seeds."""
    v = json.load(open(path))
    hx = bytes.fromhex
    r = link_rules(hx(v["network_key"]), hx(v["initiator_seed"]), hx(v["responder_seed"]),
                   hx(v["initiator_ephemeral_secret"]), hx(v["responder_ephemeral_secret"]))
    for k in ("initiator_pk", "responder_pk", "initiator_ephemeral_public", "responder_ephemeral_public",
              "message1", "message2", "message3", "message4"):
        if hx(v[k]) != r[k]:
            fail("link: %s differs from the rules (%s, vector %s)" % (k, r[k].hex()[:32], v[k][:32]))
    for f in v["frames"]:
        plain = hx(f["plaintext"])
        if seal_frame(r[f["direction"]], f["counter"], plain) != hx(f["frame"]):
            fail("link: frame %s #%d differs from the rules" % (f["direction"], f["counter"]))
        if plain[:1] == b"N":
            info = msgpack.unpackb(plain[1:], raw=False)
            if not isinstance(info, dict) or not info.get("name"):
                fail("link: an 'N' frame without a peer name: %r" % info)
    print("link transcript: handshake and %d frames rebuilt from PROTOCOL.md section 12" % len(v["frames"]))


def varint(x):
    out = b""
    while True:
        b, x = x & 0x7F, x >> 7
        out += bytes([b | (0x80 if x else 0)])
        if not x:
            return out


def check_session(path):
    """The session transcript: each side's whole byte stream rebuilt from
    sections 1, 10 and 12 and the two stored envelopes alone."""
    v = json.load(open(path))
    hx = bytes.fromhex
    r = link_rules(hx(v["network_key"]), hx(v["initiator_seed"]), hx(v["responder_seed"]),
                   hx(v["initiator_ephemeral_secret"]), hx(v["responder_ephemeral_secret"]))
    x, y = hx(v["initiator_holds"]), hx(v["responder_holds"])
    for env in (x, y):
        if env[-2] != 0xCC or env[-1] == 0:
            fail("session: a stored envelope does not end in hops as 0xcc NN > 0")
            return
    id_x = decode(x)[0]

    def pushed(env):  # one envelope in an 'E' frame, one hop spent (section 1)
        out = env[:-1] + bytes([env[-1] - 1])
        return b"E" + (1).to_bytes(4, "big") + len(out).to_bytes(4, "big") + out

    def info(name, role):  # section 13's map as our encoder writes it is checked by decoding below
        return name, role

    # section 10: the initiator holds one item (<= 32): one range up to
    # infinity (t = 0, then n = 0) as an IDLIST; the responder lacks it and
    # answers NEEDS; the initiator then has nothing to ask: 'F'
    recon_i = b"R" + bytes([1]) + varint(0) + bytes([0]) + bytes([2]) + varint(1) + id_x
    recon_r = b"R" + bytes([1]) + varint(0) + bytes([0]) + bytes([3]) + varint(1) + id_x
    want = {"i2r": (r["message1"] + r["message3"], [info("crane-1", "node"), recon_i, b"F", pushed(x), b"D", b"C"]),
            "r2i": (r["message2"] + r["message4"], [info("site-gw", "gateway"), recon_r, pushed(y), b"D", b"C"])}
    for d, (hs, frames) in want.items():
        got = hx(v[d])
        if got[:len(hs)] != hs:
            fail("session: %s handshake messages differ from the rules" % d)
            continue
        mine = hs
        for counter, plain in enumerate(frames):
            if isinstance(plain, tuple):  # 'N': take the peer info the stream carries, check it, seal it
                off = len(mine)
                length = int.from_bytes(got[off:off + 4], "big")
                nonce = counter.to_bytes(8, "little") + bytes(16)
                try:
                    opened = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                        got[off + 4:off + 4 + length], got[off:off + 4], nonce, r[d])
                except Exception:
                    fail("session: %s 'N' frame does not open with the %s key" % (d, d))
                    break
                pi = msgpack.unpackb(opened[1:], raw=False) if opened[:1] == b"N" else {}
                if pi.get("name") != plain[0] or pi.get("role") != plain[1]:
                    fail("session: %s 'N' frame says %r" % (d, pi))
                plain = opened
            mine += seal_frame(r[d], counter, plain)
        if mine != got:
            n = next((i for i in range(min(len(mine), len(got))) if mine[i] != got[i]), min(len(mine), len(got)))
            fail("session: %s differs from the rules at byte %d of %d (rules: %d bytes)" % (d, n, len(got), len(mine)))
    print("session transcript: handshake, N, R, F, E, D and C each way rebuilt from PROTOCOL.md sections 1, 10, 12")


def main():
    if len(sys.argv) not in (3, 4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    v = check_vectors(sys.argv[1])
    check_spec_appendix(v)
    check_bundle(v)
    check_cli(sys.argv[2])
    if len(sys.argv) >= 4:
        check_link(sys.argv[3])
    if len(sys.argv) == 5:
        check_session(sys.argv[4])
    print("python cross-check: %d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
