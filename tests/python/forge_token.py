#!/usr/bin/env python3
# forge_token.py TOKEN RIGHT: the token with one more block granting RIGHT,
# correctly signed with the token's proof, built from docs/PROTOCOL.md
# section 15 alone (PyNaCl, msgpack): what a dishonest holder could make.
# The daemons must refuse it when RIGHT is wider than the block before.
import base64, msgpack, nacl.signing, os, sys
t = sys.argv[1][5:]
raw = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
v, issuer, blocks, proof = msgpack.unpackb(raw)
last = msgpack.unpackb(blocks[-1][0])
holder = nacl.signing.SigningKey(proof)
seed = os.urandom(32)
nxt = nacl.signing.SigningKey(seed)
body = msgpack.packb({"nbf": last["nbf"], "exp": last["exp"], "rights": [sys.argv[2]], "next": bytes(nxt.verify_key)})
sig = holder.sign(body + blocks[-1][1]).signature
out = msgpack.packb([1, issuer, blocks + [[body, sig]], seed])
print("amt1." + base64.urlsafe_b64encode(out).decode().rstrip("="))
