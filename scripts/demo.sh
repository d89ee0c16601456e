#!/usr/bin/env bash
# The demo behind `cargo xtask demo`: push sample images to the local registry, sign them with a
# KMS key through the tool pipeline, verify them, and show their trail:
#
#   digest-of REG/sample-app-1:v1.0 | payload-for -a git_sha=... \
#     | kms-sign --key awskms:///alias/sigtrail-demo | attach-sig
#   digest-of ... | check-sig --key awskms:///alias/sigtrail-demo | trail-for
#
# Runs inside the environment of `cargo xtask env up` (xtask sets it; by hand: source
# .sigtrail/env/env.sh). Tools that are not built yet are skipped, and the output says so.
set -euo pipefail

: "${SIGTRAIL_REGISTRY:?run with cargo xtask demo, or source .sigtrail/env/env.sh first}"
root=$(cd "$(dirname "$0")/.." && pwd)
scripts=$root/scripts
key=awskms:///alias/sigtrail-demo
git_sha=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo 0000000000000000000000000000000000000000)

say() { printf '\n== %s\n' "$*" >&2; }
skipped=()
failed=()
skip() { skipped+=("$1"); echo "   SKIPPED: $1 is not built yet" >&2; }
# A tool counts as present only when the workspace built it, not when something else is on PATH.
have() { [ -x "$bin/$1" ]; }
show() { jq -c . "$1" >&2 || cat "$1" >&2; }

say "building the tools (cargo build --bins)"
(cd "$root" && cargo build --quiet --bins)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
export PATH="$bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "pushing sample images to $SIGTRAIL_REGISTRY (built without docker) and telling moto's ECR"
images=()
push() { # REPO TAG CONTENT [--index]
  local ref=$SIGTRAIL_REGISTRY/$1:$2 digest
  digest=$("$scripts/push-image.sh" "$ref" "$3" "${@:4}")
  "$SIGTRAIL_SKOPEO" inspect --raw --tls-verify=false "docker://$ref" \
    | "$SIGTRAIL_PYTHON" "$scripts/ecr-mirror.py" "$1" "$2" - "$digest" >/dev/null
  echo "   $ref  $digest" >&2
  images+=("$ref")
  printf '{"image":"%s","digest":"%s","repository":"%s","tag":"%s","pushed_at":"%s"}\n' \
    "$ref" "$digest" "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$work/pushed.jsonl"
}
push sample-app-1 v1.0 "sample app 1, release 1.0"
push sample-app-1 v1.1 "sample app 1, release 1.1"
push sample-app-2 v1.0 "sample app 2, two platforms" --index

say "creating the KMS key alias/sigtrail-demo (ECC_NIST_P256, SIGN_VERIFY) in moto"
"$SIGTRAIL_PYTHON" "$scripts/kms-create-key.py" ECC_NIST_P256 alias/sigtrail-demo >&2

# Each stage reads the previous stage's records from a file, so a missing tool stops the chain
# visibly instead of breaking a pipe. A stage returns 1 only when its tool is missing; a tool
# that fails is reported and fails the demo at the end.
stage() { # NAME IN OUT ARGS...
  local name=$1 in=$2 out=$3
  shift 3
  if ! have "$name"; then skip "$name"; return 1; fi
  echo "   \$ $name $*" >&2
  local rc=0
  "$name" "$@" < "$in" > "$out" || rc=$?
  show "$out"
  if [ $rc -ne 0 ]; then
    failed+=("$name (exit $rc)")
    echo "   FAILED: $name exited with $rc" >&2
  fi
}

say "sign: digest-of | payload-for | kms-sign | attach-sig"
if have digest-of; then
  printf '%s\n' "${images[@]}" > "$work/refs"
  stage digest-of "$work/refs" "$work/digests.jsonl"
else
  skip digest-of
  echo "   (using the digests push-image.sh reported instead)" >&2
  cp "$work/pushed.jsonl" "$work/digests.jsonl"
fi
signed=no
if stage payload-for "$work/digests.jsonl" "$work/payloads.jsonl" -a "git_sha=$git_sha" &&
  stage kms-sign "$work/payloads.jsonl" "$work/signatures.jsonl" --key "$key" &&
  stage attach-sig "$work/signatures.jsonl" "$work/attached.jsonl"; then
  signed=yes
  attached_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

say "verify: check-sig --key $key"
if stage check-sig "$work/digests.jsonl" "$work/checked.jsonl" --key "$key" &&
  [ -s "$work/checked.jsonl" ]; then
  trail_input=$work/checked.jsonl
else
  trail_input=$work/digests.jsonl
fi

if [ $signed = yes ]; then
  say "independent check: sigstore-rs verifies the attached signatures with the KMS public key"
  "$SIGTRAIL_PYTHON" -c '
import boto3, os, sys
from cryptography.hazmat.primitives import serialization
kms = boto3.client("kms", region_name=os.environ.get("AWS_REGION"))
der = kms.get_public_key(KeyId="alias/sigtrail-demo")["PublicKey"]
key = serialization.load_der_public_key(der)
sys.stdout.buffer.write(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
' > "$work/kms.pub"
  for ref in "${images[@]}"; do
    if ! "$SIGTRAIL_SRS_VERIFY" "$ref" "$work/kms.pub" --http 2>/dev/null | sed 's/^/   /' >&2; then
      failed+=("srs-verify $ref")
    fi
  done
fi

say "trail: trail-for --cloudtrail lookup"
# moto records no CloudTrail. For the LookupEvents stand-in of scripts/moto_server.py, write the
# events AWS would have recorded for this demo: an ECR PutImage per pushed tag, a KMS Sign per
# kms-sign request (its request id, time, key and algorithm) and a PutImage per signature
# manifest attach-sig pushed. Nothing else is invented.
account=123456789012
put_image='{
    eventVersion: "1.08", eventTime: .pushed_at, eventSource: "ecr.amazonaws.com",
    eventName: "PutImage", awsRegion: "us-east-1", readOnly: false,
    eventID: ("demo-push-" + .repository + "-" + .tag), requestID: ("demo-push-" + .repository + "-" + .tag),
    userIdentity: {type: "IAMUser", accountId: $acct, accessKeyId: "testing", userName: "sigtrail-demo",
                   arn: ("arn:aws:iam::" + $acct + ":user/sigtrail-demo")},
    requestParameters: {repositoryName: .repository, imageTag: .tag, registryId: $acct},
    responseElements: {image: {repositoryName: .repository, registryId: $acct,
                               imageId: {imageDigest: .digest, imageTag: .tag}}},
    resources: [{accountId: $acct, ARN: ("arn:aws:ecr:us-east-1:" + $acct + ":repository/" + .repository)}],
    eventType: "AwsApiCall", recipientAccountId: $acct
  }'
jq -c --arg acct "$account" "$put_image" "$work/pushed.jsonl" > "$work/events.jsonl"
if [ $signed = yes ]; then
  jq -c --arg at "$attached_at" 'select(.attached) | {repository, tag: .attached.tag,
      digest: .attached.manifest_digest, pushed_at: $at}' "$work/attached.jsonl" \
    | jq -c --arg acct "$account" "$put_image" >> "$work/events.jsonl"
fi
if [ -s "$work/signatures.jsonl" ]; then
  jq -c --arg acct "$account" 'select(.kms) | {
      eventVersion: "1.08", eventTime: (.kms.time | sub("\\.[0-9]+Z$"; "Z")),
      eventSource: "kms.amazonaws.com", eventName: "Sign", awsRegion: "us-east-1", readOnly: true,
      eventID: ("demo-sign-" + .kms.request_id), requestID: .kms.request_id,
      userIdentity: {type: "IAMUser", accountId: $acct, accessKeyId: "testing", userName: "sigtrail-demo",
                     arn: ("arn:aws:iam::" + $acct + ":user/sigtrail-demo")},
      requestParameters: {keyId: "alias/sigtrail-demo", messageType: "DIGEST", signingAlgorithm: .algorithm},
      responseElements: null,
      resources: [{accountId: $acct, type: "AWS::KMS::Key", ARN: .kms.key_arn}],
      eventType: "AwsApiCall", managementEvent: true, recipientAccountId: $acct
    }' "$work/signatures.jsonl" >> "$work/events.jsonl"
fi
jq -s '{Records: .}' "$work/events.jsonl" > "$SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE"
echo "   (wrote $(jq '.Records | length' "$SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE") stand-in CloudTrail records for LookupEvents)" >&2
stage trail-for "$trail_input" "$work/trail.jsonl" --cloudtrail lookup --key "$key" \
  --since "$(date -u +%Y-%m-%d)" --account "$account" --region us-east-1 --git-dir "$root" || true

say "demo done"
if [ ${#skipped[@]} -gt 0 ]; then
  echo "   skipped because not built yet: ${skipped[*]}" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "   failed: ${failed[*]}" >&2
  exit 1
fi
