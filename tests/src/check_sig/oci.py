# Hand-made registry content for the check-sig tests: signature manifests with any layers
# (tampered, replayed, attachments), cosign v3 bundles as OCI 1.1 referrers (tag schema), and
# plain ECDSA P-256 keys to sign them. Run with the venv's python (cryptography).
#
# usage:
#   oci.py keygen PREFIX                         -> PREFIX.pem (PKCS#8), PREFIX.pub
#   oci.py sign KEY.pem FILE                     -> base64 DER ECDSA-SHA256 signature of FILE
#   oci.py get-sig REG REPO TAG                  -> {"layers":[{media_type, payload_b64, annotations}]}
#   oci.py push-sig REG REPO TAG LAYERS_JSON     -> pushes a cosign signature manifest; prints digest
#   oci.py push-bundle REG REPO DIGEST KEY.pem ANNOTATIONS_JSON [SUBJECT_DIGEST]
#                                                -> cosign v3 bundle referrer + tag-schema index
import base64
import hashlib
import http.client
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE = "https://sigstore.dev/cosign/sign/v1"
IN_TOTO = "application/vnd.in-toto+json"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def conn(reg):
    return http.client.HTTPConnection(reg, timeout=30)


def request(reg, method, path, body=None, headers=None):
    c = conn(reg)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r.status, dict(r.getheaders()), data


def push_blob(reg, repo, data):
    d = sha(data)
    status, _, _ = request(reg, "HEAD", f"/v2/{repo}/blobs/{d}")
    if status == 200:
        return d
    status, headers, body = request(reg, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, (status, body)
    loc = headers.get("Location") or headers.get("location")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    sep = "&" if "?" in loc else "?"
    status, _, body = request(reg, "PUT", f"{loc}{sep}digest={d}", data,
                              {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    return d


def put_manifest(reg, repo, ref, manifest, media_type=OCI_MANIFEST):
    data = json.dumps(manifest, separators=(",", ":")).encode()
    status, _, body = request(reg, "PUT", f"/v2/{repo}/manifests/{ref}", data,
                              {"Content-Type": media_type})
    assert status == 201, (status, body)
    return sha(data), len(data)


def get_manifest(reg, repo, ref, accept=OCI_MANIFEST):
    status, _, body = request(reg, "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    return json.loads(body) if status == 200 else None


def get_blob(reg, repo, digest):
    status, headers, body = request(reg, "GET", f"/v2/{repo}/blobs/{digest}")
    if status in (301, 302, 307):
        loc = headers.get("Location") or headers.get("location")
        return get_blob_url(loc)
    assert status == 200, (status, body)
    return body


def get_blob_url(url):
    host, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
    status, _, body = request(host, "GET", path)
    assert status == 200
    return body


def push_sig(reg, repo, tag, layers):
    descs, diff_ids = [], []
    for l in layers:
        payload = base64.b64decode(l["payload_b64"])
        d = push_blob(reg, repo, payload)
        desc = {"mediaType": l["media_type"], "size": len(payload), "digest": d}
        if l.get("annotations"):
            desc["annotations"] = l["annotations"]
        descs.append(desc)
        diff_ids.append(d)
    config = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                         "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
                         "os": "", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "config": {}}, separators=(",", ":")).encode()
    cd = push_blob(reg, repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "size": len(config), "digest": cd},
                "layers": descs}
    return put_manifest(reg, repo, tag, manifest)[0]


def get_sig(reg, repo, tag):
    m = get_manifest(reg, repo, tag)
    out = []
    for l in m["layers"]:
        out.append({"media_type": l["mediaType"],
                    "payload_b64": base64.b64encode(get_blob(reg, repo, l["digest"])).decode(),
                    "annotations": l.get("annotations", {})})
    return {"layers": out}


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign(key, data):
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def pae(payload_type, payload):
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def push_bundle(reg, repo, digest, key_path, annotations, subject_digest=None):
    key = load_key(key_path)
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                            "subject": [{"digest": {"sha256": (subject_digest or digest).split(":")[1]},
                                         "annotations": annotations}],
                            "predicateType": PREDICATE, "predicate": {}}).encode()
    bundle = json.dumps({"mediaType": BUNDLE,
                         "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
                         "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                                          "payloadType": IN_TOTO,
                                          "signatures": [{"sig": sign(key, pae(IN_TOTO, statement)),
                                                          "keyid": ""}]}}).encode()
    bd = push_blob(reg, repo, bundle)
    empty = b"{}"
    ed = push_blob(reg, repo, empty)
    status, _, image_bytes = request(reg, "GET", f"/v2/{repo}/manifests/{digest}",
                                     headers={"Accept": OCI_MANIFEST})
    assert status == 200, status
    annotations_m = {"dev.sigstore.bundle.content": "dsse-envelope",
                     "dev.sigstore.bundle.predicateType": PREDICATE,
                     "org.opencontainers.image.created": "2025-01-01T00:00:00Z"}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": ed},
                "layers": [{"mediaType": BUNDLE, "size": len(bundle), "digest": bd}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(image_bytes)},
                "annotations": annotations_m}
    data = json.dumps(manifest, separators=(",", ":")).encode()
    md, size = put_manifest(reg, repo, sha(data), manifest)
    # List it in the tag-schema index that registries without the referrers API use.
    tag = digest.replace(":", "-")
    index = get_manifest(reg, repo, tag, OCI_INDEX) or {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": md, "size": size,
                               "artifactType": BUNDLE, "annotations": annotations_m})
    put_manifest(reg, repo, tag, index, OCI_INDEX)
    return md


def main(argv):
    cmd = argv[0]
    if cmd == "keygen":
        key = ec.generate_private_key(ec.SECP256R1())
        with open(argv[1] + ".pem", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(argv[1] + ".pub", "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    elif cmd == "sign":
        with open(argv[2], "rb") as f:
            print(sign(load_key(argv[1]), f.read()))
    elif cmd == "get-sig":
        print(json.dumps(get_sig(argv[1], argv[2], argv[3])))
    elif cmd == "push-sig":
        print(push_sig(argv[1], argv[2], argv[3], json.loads(argv[4])))
    elif cmd == "push-bundle":
        print(push_bundle(argv[1], argv[2], argv[3], argv[4], json.loads(argv[5]),
                          argv[6] if len(argv) > 6 else None))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
