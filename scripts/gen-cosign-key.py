#!/usr/bin/env python3
"""Generate an encrypted ECDSA P-256 key pair in cosign's format, for tests that sign with a key
file (the sigstore-rs harness, skopeo, kms-sign's local-key mode) and the demo.

The format is what `cosign generate-key-pair` writes (go-tuf's `encrypted` package): PEM
"ENCRYPTED SIGSTORE PRIVATE KEY" around JSON
  {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":b64(32 bytes)},
   "cipher":{"name":"nacl/secretbox","nonce":b64(24 bytes)},
   "ciphertext":b64(secretbox(PKCS#8 DER private key))}
and PREFIX.pub, the public key as PEM SubjectPublicKeyInfo.

usage: gen-cosign-key.py PREFIX PASSFILE [--pem-type TYPE]
  PASSFILE  file holding the passphrase (one trailing newline is ignored); created with a random
            passphrase when it does not exist
  TYPE      PEM label, default "ENCRYPTED SIGSTORE PRIVATE KEY" (older cosign: "ENCRYPTED COSIGN
            PRIVATE KEY")
writes PREFIX.key (mode 0600) and PREFIX.pub
"""
import argparse
import base64
import hashlib
import json
import os
import secrets

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SCRYPT = {"N": 32768, "r": 8, "p": 1}
# cosign's own keys use N=65536 elsewhere; hashlib's default 32 MiB limit is too small for both
SCRYPT_MAXMEM = 256 * 1024 * 1024


def pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def secretbox_key(passphrase: bytes, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=params["N"], r=params["r"], p=params["p"],
                          dklen=32, maxmem=SCRYPT_MAXMEM)


def encrypt(plaintext: bytes, passphrase: bytes) -> bytes:
    salt, nonce = os.urandom(32), os.urandom(24)
    box = nacl.secret.SecretBox(secretbox_key(passphrase, salt, SCRYPT))
    # PyNaCl's ciphertext is tag || encrypted bytes, the layout of Go's secretbox.Seal
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    b64 = lambda b: base64.b64encode(b).decode()
    return json.dumps({
        "kdf": {"name": "scrypt", "params": SCRYPT, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(ciphertext),
    }, separators=(",", ":")).encode()


def decrypt(document: bytes, passphrase: bytes) -> bytes:
    doc = json.loads(document)
    key = secretbox_key(passphrase, base64.b64decode(doc["kdf"]["salt"]), doc["kdf"]["params"])
    return nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                              base64.b64decode(doc["cipher"]["nonce"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix")
    parser.add_argument("passfile")
    parser.add_argument("--pem-type", default="ENCRYPTED SIGSTORE PRIVATE KEY")
    args = parser.parse_args()

    if not os.path.exists(args.passfile):
        with open(args.passfile, "w") as f:
            f.write(secrets.token_hex(16))
    with open(args.passfile, "rb") as f:
        passphrase = f.read().removesuffix(b"\n")

    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    encrypted = encrypt(pkcs8, passphrase)
    assert decrypt(encrypted, passphrase) == pkcs8
    fd = os.open(args.prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem(args.pem_type, encrypted))
    with open(args.prefix + ".pub", "wb") as f:
        f.write(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    print(f"wrote {args.prefix}.key and {args.prefix}.pub")


if __name__ == "__main__":
    main()
