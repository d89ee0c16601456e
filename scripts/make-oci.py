#!/usr/bin/env python3
"""Build a small deterministic OCI image layout without docker, for pushing with skopeo.

The same CONTENT always gives the same bytes, hence the same digests, so tests can predict
them. With --index the layout holds an OCI image index over two platforms (linux/amd64 and
linux/arm64), each a one-layer image whose file also names its platform.

usage: make-oci.py OUTDIR TAG [CONTENT] [--index]
prints the digest of the top-level manifest (the image manifest, or the index)
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
CREATED = "2024-01-01T00:00:00Z"


def canonical(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class Layout:
    def __init__(self, root: str):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def put(self, data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, hexdigest), "wb") as f:
            f.write(data)
        return "sha256:" + hexdigest

    def descriptor(self, media_type: str, data: bytes, **extra) -> dict:
        return {"mediaType": media_type, "digest": self.put(data), "size": len(data), **extra}


def layer(content: bytes) -> tuple:
    """A gzip tar with one file; fixed names, times and owners so the bytes never vary."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode, info.uid, info.gid = len(content), 0, 0o644, 0, 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = tar_buf.getvalue()
    gz_buf = io.BytesIO()
    with gzip.GzipFile(fileobj=gz_buf, mode="wb", mtime=0) as gz:
        gz.write(tar_bytes)
    return gz_buf.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def image(layout: Layout, content: bytes, os_name: str, arch: str) -> tuple:
    """Writes one image; returns (manifest bytes, manifest descriptor)."""
    layer_bytes, diff_id = layer(content)
    config = canonical({
        "created": CREATED,
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "sigtrail scripts/make-oci.py"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [layout.descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer_bytes)],
    })
    return manifest, layout.descriptor(OCI_MANIFEST, manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("tag")
    parser.add_argument("content", nargs="?", default="hello from sample-app\n")
    parser.add_argument("--index", action="store_true", help="two-platform OCI image index")
    args = parser.parse_args()

    layout = Layout(args.outdir)
    content = args.content.encode()
    if args.index:
        manifests = []
        for os_name, arch in PLATFORMS:
            _, desc = image(layout, content + f" ({os_name}/{arch})\n".encode(), os_name, arch)
            manifests.append({**desc, "platform": {"architecture": arch, "os": os_name}})
        top = layout.descriptor(OCI_INDEX, canonical({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        }))
    else:
        _, top = image(layout, content, "linux", "amd64")

    top["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    with open(os.path.join(args.outdir, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(args.outdir, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "manifests": [top]}))
    print(top["digest"])


if __name__ == "__main__":
    main()
