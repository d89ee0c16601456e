#!/usr/bin/env bash
# The benchmark behind `cargo xtask bench` (release binaries, fresh local environment):
#   1. pushes N small distinct images to the local registry and signs every one through the real
#      pipeline `digest-of | payload-for | kms-sign --key awskms:///... | attach-sig` (moto KMS);
#   2. re-verifies all N with `check-sig --key awskms:///...` (default --jobs; ROUNDS runs,
#      alternating with the registry limit below, medians reported) and measures, in the same
#      run, on the same images and registry:
#      - a loop of skopeo 1.18 verifications (one `skopeo copy` per image, sigstoreSigned policy),
#      - the sigstore-rs harness run sequentially, one process per image,
#      - the registry's own limit: exactly the three requests check-sig makes per image (HEAD of
#        the image manifest, GET of the `.sig` manifest, GET of the payload blob), as a plain HTTP
#        load with curl --parallel, 8 at once,
#      - the KMS calls check-sig made (counted by the AWS emulator, not by check-sig);
#   3. the trail-for scaling table (bench-trail): generated gzip CloudTrail trails of 100,000,
#      1,000,000 and 10,000,000 records, each streamed to disk, timed and deleted in turn;
#      `trail-for` on one image and `trail-for --key-usage`: wall time, records/s, peak RSS;
#      one core against both at 1,000,000; the goals printed beside the figures. The 10,000,000
#      row writes about 600 MB and takes minutes.
# Peers are slow, so they run on the first SAMPLE images; rates are images per second. The
# machine is shared: every figure comes from this one run, so the ratios compare like with like.
# env: SIGTRAIL_BENCH_ONLY (all, verify or trail; default all), SIGTRAIL_BENCH_IMAGES (default
# 2000), SIGTRAIL_BENCH_SAMPLE (default 100), SIGTRAIL_BENCH_TRAIL_SIZES (records, comma-separated;
# default 100000,1000000,10000000), SIGTRAIL_BENCH_TRAIL_DIR (where the trails are written; default
# target/bench-trail), SIGTRAIL_BENCH_ROUNDS (default 3), and the environment contract of
# `cargo xtask env up` (xtask sets it).
set -euo pipefail
: "${SIGTRAIL_REGISTRY:?run with cargo xtask bench}"
ONLY=${SIGTRAIL_BENCH_ONLY:-all}
N=${SIGTRAIL_BENCH_IMAGES:-2000}
S=${SIGTRAIL_BENCH_SAMPLE:-100}
T=${SIGTRAIL_BENCH_TRAIL_SIZES:-${SIGTRAIL_BENCH_TRAIL_RECORDS:-100000,1000000,10000000}}
R=${SIGTRAIL_BENCH_ROUNDS:-3}
[ "$S" -le "$N" ] || S=$N
case $ONLY in all|verify|trail) ;; *) echo "bench: SIGTRAIL_BENCH_ONLY is all, verify or trail, not $ONLY" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
scripts=$root/scripts
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release
trail_dir=${SIGTRAIL_BENCH_TRAIL_DIR:-$target/bench-trail}
export PATH="$bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '== %s\n' "$*" >&2; }

trail_bench() {
  say "trail-for scaling: trails of $T records under $trail_dir (written, timed, deleted in turn)"
  bench-trail --dir "$trail_dir" --rounds "$R" "$bin/trail-for" "$T"
}
if [ "$ONLY" = trail ]; then
  printf '\nsigtrail bench (trail part), %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
  trail_bench
  exit
fi
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,a,b=map(float,sys.argv[1:]); print(f'{n/(b-a):.1f}')" "$@"; }
secs() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'{b-a:.1f}')" "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}x')" "$@"; }
kms_log() { sort "$SIGTRAIL_MOTO_KMS_CALLS" | awk '{print $1}' | uniq -c | awk '{printf "%s%s=%s", sep, $2, $1; sep=", "}'; }

repo=bench-$$
say "pushing $N images to $SIGTRAIL_REGISTRY/$repo"
t0=$(now)
"$SIGTRAIL_PYTHON" "$scripts/bench-push.py" "$SIGTRAIL_REGISTRY" "$repo" "$N" > "$work/refs.txt"
t1=$(now)
push_secs=$(secs "$t0" "$t1")

say "signing them: digest-of | payload-for | kms-sign (moto KMS, P-256) | attach-sig"
"$SIGTRAIL_PYTHON" "$scripts/kms-create-key.py" ECC_NIST_P256 alias/sigtrail-bench > /dev/null
key=awskms:///alias/sigtrail-bench
: > "$SIGTRAIL_MOTO_KMS_CALLS"
t0=$(now)
digest-of -q < "$work/refs.txt" | tee "$work/images.jsonl" \
  | payload-for -q | kms-sign -q --key "$key" | attach-sig -q > "$work/signed.jsonl"
t1=$(now)
signed=$(jq -s 'map(select(.attached.added == true)) | length' "$work/signed.jsonl")
[ "$signed" = "$N" ] || { echo "bench: only $signed of $N images signed" >&2; exit 1; }
sign_rate=$(rate "$N" "$t0" "$t1")
sign_secs=$(secs "$t0" "$t1")
sign_kms=$(kms_log)
kms-sign --public-key --key "$key" > "$work/key.pub"

# check-sig and the registry limit alternate, ROUNDS times each, and the median of each is
# reported: the machine's load changes by the minute, and this keeps the ratio between the two
# fair. The registry limit is curl doing exactly check-sig's requests for the same images.
"$SIGTRAIL_PYTHON" - "$work/signed.jsonl" "$SIGTRAIL_REGISTRY" > "$work/curl.cfg" <<'PY'
import base64, hashlib, json, sys
accept = ("Accept: application/vnd.oci.image.index.v1+json, "
          "application/vnd.docker.distribution.manifest.list.v2+json, "
          "application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")
first = True
def transfer(url, head=False, accept_manifest=True):
    # Options apply per transfer: `next` starts the next one (none after the last).
    global first
    if not first:
        print("next")
    first = False
    print(f'url = "{url}"\noutput = "/dev/null"\nsilent\nshow-error\nwrite-out = "%{{http_code}}\\n"')
    if head:
        print("head")
    if accept_manifest:
        print(f'header = "{accept}"')
for line in open(sys.argv[1]):
    r = json.loads(line)
    base = f"http://{sys.argv[2]}/v2/{r['repository']}"
    blob = "sha256:" + hashlib.sha256(base64.b64decode(r["payload"])).hexdigest()
    transfer(f"{base}/manifests/{r['digest']}", head=True)
    transfer(f"{base}/manifests/{r['digest'].replace(':', '-')}.sig")
    transfer(f"{base}/blobs/{blob}", accept_manifest=False)
PY
checks=() limits=()
for round in $(seq "$R"); do
  say "round $round/$R: check-sig over all $N images (KMS calls counted by moto)"
  : > "$SIGTRAIL_MOTO_KMS_CALLS"
  t0=$(now)
  check-sig -q --key "$key" < "$work/images.jsonl" > "$work/verified.jsonl"
  t1=$(now)
  verified=$(jq -s 'map(select(.verification.verified == true)) | length' "$work/verified.jsonl")
  [ "$verified" = "$N" ] || { echo "bench: check-sig verified $verified of $N" >&2; exit 1; }
  checks+=("$(rate "$N" "$t0" "$t1")")
  if [ "$round" = 1 ]; then
    kms_calls=$(kms_log)
    kms_total=$(wc -l < "$SIGTRAIL_MOTO_KMS_CALLS")
  fi
  say "round $round/$R: registry limit, check-sig's 3 requests per image for all $N images, curl --parallel (8 at once)"
  t0=$(now)
  curl --no-progress-meter --parallel --parallel-max 8 -K "$work/curl.cfg" > "$work/codes.txt"
  t1=$(now)
  ok=$(grep -c '^200$' "$work/codes.txt" || true)
  [ "$ok" = "$((3 * N))" ] || { echo "bench: only $ok of $((3 * N)) registry requests answered 200" >&2; exit 1; }
  limits+=("$(rate "$N" "$t0" "$t1")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
check_rate=$(median "${checks[@]}")
registry_rate=$(median "${limits[@]}")

head -n "$S" "$work/images.jsonl" | jq -r .ref > "$work/sample.txt"

say "skopeo 1.18 loop over $S images"
cat > "$work/policy.json" <<JSON
{"default":[{"type":"reject"}],"transports":{"docker":{"$SIGTRAIL_REGISTRY":[{"type":"sigstoreSigned","keyPath":"$work/key.pub","signedIdentity":{"type":"matchRepository"}}]},"oci":{"":[{"type":"insecureAcceptAnything"}]}}}
JSON
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
  "$SIGTRAIL_SRS_VERIFY" "$ref" "$work/key.pub" --http > /dev/null 2> "$work/srs.err" \
    || { cat "$work/srs.err" >&2; exit 1; }
done < "$work/sample.txt"
t1=$(now)
srs_rate=$(rate "$S" "$t0" "$t1")

cat <<REPORT

sigtrail bench, $(date -u +%Y-%m-%dT%H:%MZ): $N signed images on the local registry ($SIGTRAIL_REGISTRY),
$(nproc) cores shared with other work; every figure from this one run; peers on the first $S images
  push (bench-push.py, 1 connection)             $N images in ${push_secs} s
  signing (digest-of | payload-for | kms-sign | attach-sig)
                                                 $sign_rate images/s ($N in ${sign_secs} s; KMS: $sign_kms)
  check-sig --key awskms:// (default --jobs)     $check_rate images/s (median of $R runs over $N: ${checks[*]})
  skopeo 1.18 loop ($S images)                   $skopeo_rate images/s   check-sig is $(ratio "$check_rate" "$skopeo_rate") (goal >= 10x)
  sigstore-rs harness, sequential ($S images)    $srs_rate images/s   check-sig is $(ratio "$check_rate" "$srs_rate") (goal >= 5x)
  registry limit (3 requests/image, 8 at once)   $registry_rate images/s   check-sig is $(ratio "$check_rate" "$registry_rate") of it (goal >= 0.5x)
                                                 (median of $R runs over $N: ${limits[*]})
  KMS calls during one check-sig run             $kms_total (${kms_calls:-none}) (goal: 1 GetPublicKey, no Sign/Verify)
REPORT
[ "$ONLY" = verify ] || trail_bench
