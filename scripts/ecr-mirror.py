#!/usr/bin/env python3
"""Tell the ECR emulator (moto) about an image pushed to the local registry, so ECR's
DescribeImages / BatchGetImage know its tag, digest and push time.

moto does not compute real digests (it stores whatever imageDigest it is given, and without one
it makes up its own), so the caller passes the real digest of the manifest bytes. The
repository is created when missing. Prints the imageId moto stored, as JSON.

usage: ecr-mirror.py REPOSITORY TAG MANIFEST DIGEST [--media-type TYPE]
  MANIFEST  a file with the exact manifest bytes, or - for stdin
  DIGEST    sha256:<hex> of those bytes (checked)
uses AWS_ENDPOINT_URL, AWS_REGION and the AWS_* credentials from the environment
"""
import argparse
import hashlib
import json
import os
import sys

import boto3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repository")
    parser.add_argument("tag")
    parser.add_argument("manifest", help="file with the manifest bytes, or - for stdin")
    parser.add_argument("digest")
    parser.add_argument("--media-type", help="default: the manifest's mediaType field")
    args = parser.parse_args()

    if args.manifest == "-":
        manifest = sys.stdin.buffer.read()
    else:
        with open(args.manifest, "rb") as f:
            manifest = f.read()
    actual = "sha256:" + hashlib.sha256(manifest).hexdigest()
    if actual != args.digest:
        sys.exit(f"ecr-mirror.py: the manifest hashes to {actual}, not {args.digest}")
    media_type = args.media_type or json.loads(manifest).get("mediaType")

    # botocore reads AWS_DEFAULT_REGION; the Rust SDK and our env contract use AWS_REGION
    ecr = boto3.client("ecr", region_name=os.environ.get("AWS_REGION"))
    try:
        ecr.create_repository(repositoryName=args.repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    put = {"repositoryName": args.repository, "imageManifest": manifest.decode(),
           "imageDigest": args.digest, "imageTag": args.tag}
    if media_type:
        put["imageManifestMediaType"] = media_type
    image = ecr.put_image(**put)["image"]
    print(json.dumps(image["imageId"]))


if __name__ == "__main__":
    main()
