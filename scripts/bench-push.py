#!/usr/bin/env python3
"""Push N small distinct images to a registry quickly, for `cargo xtask bench`.

All images share one layer and one config blob; each manifest carries its own annotation, so
each has its own digest. Pushes over one keep-alive HTTP connection (plain HTTP, loopback).
Prints one reference a line, REGISTRY/REPOSITORY:TAG (the input of `digest-of`, which the
benchmark pipes into the signing tools).

usage: bench-push.py REGISTRY REPOSITORY COUNT
"""
import hashlib
import http.client
import json
import sys

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().split("\n\n")[-1])
    registry, repo, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = http.client.HTTPConnection(registry, timeout=30)

    def request(method, path, body=b"", headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            sys.exit(f"bench-push: {method} {path}: {resp.status} {data[:200]!r}")
        return resp

    def blob(data: bytes) -> dict:
        digest = sha(data)
        resp = request("POST", f"/v2/{repo}/blobs/uploads/")
        loc = resp.getheader("Location")
        loc = loc.split(registry, 1)[-1] if loc.startswith("http") else loc
        sep = "&" if "?" in loc else "?"
        request("PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    layer = blob(b"sigtrail bench layer\n")
    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    for i in range(count):
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
            "annotations": {"dev.sigtrail.bench.index": str(i)},
        }, separators=(",", ":")).encode()
        tag = f"b{i:05d}"
        request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST})
        print(f"{registry}/{repo}:{tag}")


if __name__ == "__main__":
    main()
