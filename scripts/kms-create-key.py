#!/usr/bin/env python3
"""Create a SIGN_VERIFY key in the AWS emulator (moto, or any endpoint boto3 is pointed at) with
an alias, for tests and the demo. Prints the key ARN.

usage: kms-create-key.py KEYSPEC ALIAS
  KEYSPEC  ECC_NIST_P256 | ECC_NIST_P384 | RSA_2048 (any SIGN_VERIFY key spec KMS knows)
  ALIAS    alias name, with or without the alias/ prefix; an existing alias is moved to the key
uses AWS_ENDPOINT_URL, AWS_REGION and the AWS_* credentials from the environment
"""
import os
import sys

import boto3


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n\n")[1])
    spec, alias = sys.argv[1], sys.argv[2]
    if not alias.startswith("alias/"):
        alias = "alias/" + alias
    # botocore reads AWS_DEFAULT_REGION; the Rust SDK and our env contract use AWS_REGION
    kms = boto3.client("kms", region_name=os.environ.get("AWS_REGION"))
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY", Description=f"sigtrail test key {alias}")
    arn = key["KeyMetadata"]["Arn"]
    existing = {a["AliasName"] for page in kms.get_paginator("list_aliases").paginate() for a in page["Aliases"]}
    if alias in existing:
        kms.update_alias(AliasName=alias, TargetKeyId=arn)
    else:
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    print(arn)


if __name__ == "__main__":
    main()
