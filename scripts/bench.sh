#!/usr/bin/env bash
# The benchmark behind `cargo xtask bench`: re-verify N signed images on the local registry with
# check-sig, and measure in the same run, on the same images and registry:
#   - a loop of skopeo 1.18 verifications (one process per image, sigstoreSigned policy),
#   - the sigstore-rs harness run sequentially, one process per image,
#   - the registry's own limit: the three requests a verification needs per image (image
#     manifest, signature manifest, payload blob), as a plain HTTP load (curl --parallel, 8 at once),
#   - the KMS calls check-sig made (counted by the AWS emulator, not by check-sig).
# Peers are slow, so they run on the first SAMPLE images; rates are images per second.
# env: SIGTRAIL_BENCH_IMAGES (default 2000), SIGTRAIL_BENCH_SAMPLE (default 40), and the
# environment contract of `cargo xtask env up` (xtask sets it).
set -euo pipefail
: "${SIGTRAIL_REGISTRY:?run with cargo xtask bench}"
N=${SIGTRAIL_BENCH_IMAGES:-2000}
S=${SIGTRAIL_BENCH_SAMPLE:-40}
root=$(cd "$(dirname "$0")/.." && pwd)
scripts=$root/scripts
bin=${CARGO_TARGET_DIR:-$root/target}/release
export PATH="$bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,a,b=map(float,sys.argv[1:]); print(f'{n/(b-a):.1f}')" "$@"; }

repo=bench-$$
say "pushing $N images to $SIGTRAIL_REGISTRY/$repo"
"$SIGTRAIL_PYTHON" "$scripts/bench-push.py" "$SIGTRAIL_REGISTRY" "$repo" "$N" > "$work/images.jsonl"

say "signing them: payload-for | kms-sign (moto KMS, P-256) | attach-sig"
"$SIGTRAIL_PYTHON" "$scripts/kms-create-key.py" ECC_NIST_P256 alias/sigtrail-bench > /dev/null
key=awskms:///alias/sigtrail-bench
t0=$(now)
payload-for -q < "$work/images.jsonl" | kms-sign -q --key "$key" | attach-sig -q > "$work/signed.jsonl"
t1=$(now)
signed=$(jq -s 'map(select(.attached)) | length' "$work/signed.jsonl")
[ "$signed" = "$N" ] || { echo "bench: only $signed of $N images signed" >&2; exit 1; }
sign_rate=$(rate "$N" "$t0" "$t1")
kms-sign --public-key --key "$key" > "$work/key.pub"

say "check-sig over all $N images (KMS calls counted by moto)"
: > "$SIGTRAIL_MOTO_KMS_CALLS"
t0=$(now)
check-sig -q --key "$key" < "$work/images.jsonl" > "$work/verified.jsonl"
t1=$(now)
verified=$(jq -s 'map(select(.verification.verified == true)) | length' "$work/verified.jsonl")
[ "$verified" = "$N" ] || { echo "bench: check-sig verified $verified of $N" >&2; exit 1; }
check_rate=$(rate "$N" "$t0" "$t1")
kms_calls=$(sort "$SIGTRAIL_MOTO_KMS_CALLS" | uniq -c | awk '{printf "%s%s=%s", sep, $2, $1; sep=", "}')
kms_total=$(wc -l < "$SIGTRAIL_MOTO_KMS_CALLS")

say "skopeo 1.18 loop over $S images"
cat > "$work/policy.json" <<JSON
{"default":[{"type":"reject"}],"transports":{"docker":{"$SIGTRAIL_REGISTRY":[{"type":"sigstoreSigned","keyPath":"$work/key.pub","signedIdentity":{"type":"matchRepository"}}]},"oci":{"":[{"type":"insecureAcceptAnything"}]}}}
JSON
head -n "$S" "$work/images.jsonl" | jq -r .ref > "$work/sample.txt"
t0=$(now)
while read -r ref; do
  rm -rf "$work/x"
  "$SIGTRAIL_SKOPEO" --registries.d "$SIGTRAIL_SKOPEO_REGISTRIES_D" --policy "$work/policy.json" \
    copy -q --remove-signatures --src-tls-verify=false "docker://$ref" "oci:$work/x:t" > /dev/null
done < "$work/sample.txt"
t1=$(now)
skopeo_rate=$(rate "$S" "$t0" "$t1")

say "sigstore-rs harness, sequential, one process per image, over $S images"
t0=$(now)
while read -r ref; do
  "$SIGTRAIL_SRS_VERIFY" "$ref" "$work/key.pub" --http > /dev/null
done < "$work/sample.txt"
t1=$(now)
srs_rate=$(rate "$S" "$t0" "$t1")

say "registry limit: 3 requests per image for all $N images, curl --parallel (8 at once)"
"$SIGTRAIL_PYTHON" - "$work/signed.jsonl" "$SIGTRAIL_REGISTRY" > "$work/curl.cfg" <<'PY'
import base64, hashlib, json, sys
accept = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
for line in open(sys.argv[1]):
    r = json.loads(line)
    base = f"http://{sys.argv[2]}/v2/{r['repository']}"
    blob = "sha256:" + hashlib.sha256(base64.b64decode(r["payload"])).hexdigest()
    for url in (f"{base}/manifests/{r['digest']}", f"{base}/manifests/{r['digest'].replace(':', '-')}.sig", f"{base}/blobs/{blob}"):
        print(f'url = "{url}"\noutput = "/dev/null"\nheader = "{accept}"')
PY
t0=$(now)
curl -s -f --parallel --parallel-max 8 -K "$work/curl.cfg"
t1=$(now)
registry_rate=$(rate "$N" "$t0" "$t1")

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.1f}x')" "$@"; }
cat <<REPORT

sigtrail bench: $N signed images on the local registry, $(nproc) cores, peers on the first $S
  signing (payload-for | kms-sign | attach-sig)  $sign_rate images/s
  check-sig                                      $check_rate images/s
  skopeo 1.18 loop                               $skopeo_rate images/s   check-sig is $(ratio "$check_rate" "$skopeo_rate") (goal >= 10x)
  sigstore-rs harness, sequential                $srs_rate images/s   check-sig is $(ratio "$check_rate" "$srs_rate") (goal >= 5x)
  registry limit (3 requests/image, 8 at once)   $registry_rate images/s   check-sig is $(ratio "$check_rate" "$registry_rate") of it (goal >= 0.5x)
  KMS calls during check-sig                     $kms_total ($kms_calls) (goal: 1 GetPublicKey)
REPORT
