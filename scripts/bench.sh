#!/usr/bin/env bash
# The benchmark behind `cargo xtask bench` (release binaries, fresh local environment):
#   1. pushes N small distinct images to the local registry and signs every one through the real
#      pipeline `digest-of | payload-for | kms-sign --key awskms:///... | attach-sig` (moto KMS);
#   2. starts delay-proxy (tests/src/bin/delay-proxy.rs: binds its own port, adds RTT_MS of
#      round-trip time to every request and one more round trip to every new connection) in
#      front of the registry, and measures every figure at +0 ms (the registry itself) and at
#      +RTT_MS (through the proxy), on the same images:
#      - check-sig --key awskms:///... over all N (default --jobs, JOBS = its DEFAULT_JOBS),
#      - the registry's own limit: exactly the three requests check-sig makes per image (HEAD of
#        the image manifest, GET of the `.sig` manifest, GET of the payload blob), as a plain HTTP
#        load with curl --parallel, JOBS at once, over all N;
#        these two alternate, at one latency then the other, ROUNDS times; medians reported;
#      - a loop of cosign 3.1.1 verifications (`cosign verify --key awskms:///...
#        --insecure-ignore-tlog`, one process per image), and one `cosign verify` given all
#        SAMPLE images,
#      - a loop of skopeo 1.18 verifications (one `skopeo copy` per image, sigstoreSigned policy),
#      - the sigstore-rs harness run sequentially, one process per image,
#      - the KMS calls check-sig made (counted by the AWS emulator, not by check-sig), and the
#        connections each tool opened through the proxy;
#      and prints check-sig's ratio to each peer at each latency, check-sig as a fraction of the
#      registry limit, and the goals beside the figures;
#   3. the trail-for scaling table (bench-trail): generated gzip CloudTrail trails of 100,000,
#      1,000,000 and 10,000,000 records, each streamed to disk, timed and deleted in turn;
#      `trail-for` on one image and `trail-for --key-usage`: wall time, records/s, peak RSS;
#      one core against both at 1,000,000; the goals printed beside the figures. The 10,000,000
#      row writes about 600 MB and takes minutes.
# Peers are slow, so they run on the first SAMPLE images; rates are images per second. The
# machine is shared: every figure comes from this one run, so the ratios compare like with like.
# env: SIGTRAIL_BENCH_ONLY (all, verify or trail; default all), SIGTRAIL_BENCH_IMAGES (default
# 2000), SIGTRAIL_BENCH_SAMPLE (default 100), SIGTRAIL_BENCH_RTT_MS (the added round-trip time;
# default 20), SIGTRAIL_BENCH_TRAIL_SIZES (records, comma-separated;
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
RTT_MS=${SIGTRAIL_BENCH_RTT_MS:-20}
[ "$S" -le "$N" ] || S=$N
[ "$RTT_MS" -gt 0 ] || { echo "bench: SIGTRAIL_BENCH_RTT_MS must be more than 0" >&2; exit 2; }
case $ONLY in all|verify|trail) ;; *) echo "bench: SIGTRAIL_BENCH_ONLY is all, verify or trail, not $ONLY" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
# check-sig's own default --jobs, read from its source so the registry limit follows it.
JOBS=$(sed -n 's/.*const DEFAULT_JOBS: u16 = \([0-9]*\);.*/\1/p' "$root/shared/src/verify/tool.rs")
[ -n "$JOBS" ] || { echo "bench: cannot read check-sig's DEFAULT_JOBS" >&2; exit 2; }
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

# The same images at two latencies: straight to the registry (0 ms), then through delay-proxy
# (tests/src/bin/delay-proxy.rs), which the benchmark starts here on a port it binds itself and
# which adds RTT_MS of round-trip time to every request (and one more round trip to every new
# connection, its handshake). The signatures name the registry's own address as docker-reference;
# check-sig (--identity any, its default), cosign and sigstore-rs do not compare it with the
# address they are given; skopeo's policy for the proxy's address wants exactly the registry's
# repository (exactRepository), so skopeo still checks the identity.
delay-proxy --rtt-ms "$RTT_MS" "$SIGTRAIL_REGISTRY" > "$work/proxy.addr" 2> "$work/proxy.err" &
proxy_pid=$!
trap 'kill "$proxy_pid" 2> /dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/proxy.addr" ] && break; sleep 0.05; done
proxy=$(head -n 1 "$work/proxy.addr")
[ -n "$proxy" ] || { cat "$work/proxy.err" >&2; echo "bench: delay-proxy did not start" >&2; exit 1; }
say "delay-proxy on $proxy: +$RTT_MS ms round-trip time to $SIGTRAIL_REGISTRY"
# Client connections the proxy accepted so far (it prints the count on SIGUSR1).
proxy_conns() {
  local before
  before=$(grep -c '^connections ' "$work/proxy.err" || true)
  kill -USR1 "$proxy_pid"
  for _ in $(seq 100); do
    [ "$(grep -c '^connections ' "$work/proxy.err" || true)" -gt "$before" ] && break
    sleep 0.02
  done
  grep '^connections ' "$work/proxy.err" | tail -n 1 | awk '{print $2}'
}

# The registry limit is curl doing exactly check-sig's requests for the same images, as many at
# once as check-sig runs records at once (its DEFAULT_JOBS).
curl_cfg() {
  "$SIGTRAIL_PYTHON" - "$work/signed.jsonl" "$1" <<'PY'
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
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The records and references of the images as seen through HOST (the registry or the proxy).
retarget() {
  jq -c --arg h "$1" '.registry = $h | .ref |= sub("^[^/]+"; $h)
    | if .image then .image |= sub("^[^/]+"; $h) else . end' "$2"
}
cat > "$work/policy.json" <<JSON
{"default":[{"type":"reject"}],"transports":{"docker":{
  "$SIGTRAIL_REGISTRY":[{"type":"sigstoreSigned","keyPath":"$work/key.pub","signedIdentity":{"type":"matchRepository"}}],
  "$proxy":[{"type":"sigstoreSigned","keyPath":"$work/key.pub","signedIdentity":{"type":"exactRepository","dockerRepository":"$SIGTRAIL_REGISTRY/$repo"}}]},
 "oci":{"":[{"type":"insecureAcceptAnything"}]}}}
JSON
mkdir -p "$work/registries.d"
cp "$SIGTRAIL_SKOPEO_REGISTRIES_D"/* "$work/registries.d/"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$proxy" > "$work/registries.d/proxy.yaml"
mkdir -p "$work/cosign-home"
# cosign 3.1.1 as the tests run it: its own HOME (no TUF cache, no docker config), the emulator's
# KMS through AWS_ENDPOINT_URL, no transparency log, plain HTTP to the loopback registry.
cosign_verify() {
  HOME=$work/cosign-home DOCKER_CONFIG=$work/cosign-home "$SIGTRAIL_COSIGN" verify --key "$key" \
    --insecure-ignore-tlog --allow-insecure-registry --allow-http-registry "$@" \
    > /dev/null 2> "$work/cosign.err" || { cat "$work/cosign.err" >&2; exit 1; }
}

declare -A rate_of runs_of conns_of checks limits kms_calls kms_total
lat=(0 "$RTT_MS")
declare -A host_of=([0]=$SIGTRAIL_REGISTRY [$RTT_MS]=$proxy)
for ms in "${lat[@]}"; do
  retarget "${host_of[$ms]}" "$work/images.jsonl" > "$work/images-$ms.jsonl"
  curl_cfg "${host_of[$ms]}" > "$work/curl-$ms.cfg"
  # By digest, as check-sig reads them.
  head -n "$S" "$work/images-$ms.jsonl" | jq -r '"\(.registry)/\(.repository)@\(.digest)"' > "$work/sample-$ms.txt"
done
# check-sig and the registry limit alternate, at one latency then the other, ROUNDS times, and
# the median of each is reported: the machine's load changes by the minute, and this keeps the
# ratios (check-sig to the limit, 20 ms to 0 ms) fair.
for round in $(seq "$R"); do
  for ms in "${lat[@]}"; do
    say "+$ms ms, round $round/$R: check-sig over all $N images (KMS calls counted by moto)"
    : > "$SIGTRAIL_MOTO_KMS_CALLS"
    c0=$(proxy_conns)
    t0=$(now)
    check-sig -q --key "$key" < "$work/images-$ms.jsonl" > "$work/verified.jsonl"
    t1=$(now)
    [ "$round" = 1 ] && conns_of[check,$ms]=$(( $(proxy_conns) - c0 ))
    verified=$(jq -s 'map(select(.verification.verified == true)) | length' "$work/verified.jsonl")
    [ "$verified" = "$N" ] || { echo "bench: check-sig verified $verified of $N at +$ms ms" >&2; exit 1; }
    checks[$ms]+=" $(rate "$N" "$t0" "$t1")"
    if [ "$round" = 1 ]; then
      kms_calls[$ms]=$(kms_log)
      kms_total[$ms]=$(wc -l < "$SIGTRAIL_MOTO_KMS_CALLS")
    fi
    say "+$ms ms, round $round/$R: registry limit, check-sig's 3 requests per image for all $N images, curl --parallel ($JOBS at once)"
    c0=$(proxy_conns)
    t0=$(now)
    curl --no-progress-meter --parallel --parallel-immediate --parallel-max "$JOBS" \
      -K "$work/curl-$ms.cfg" > "$work/codes.txt"
    t1=$(now)
    [ "$round" = 1 ] && conns_of[limit,$ms]=$(( $(proxy_conns) - c0 ))
    ok=$(grep -c '^200$' "$work/codes.txt" || true)
    [ "$ok" = "$((3 * N))" ] || { echo "bench: only $ok of $((3 * N)) registry requests answered 200 at +$ms ms" >&2; exit 1; }
    limits[$ms]+=" $(rate "$N" "$t0" "$t1")"
  done
done
for ms in "${lat[@]}"; do
  # shellcheck disable=SC2086 # the runs, split on purpose
  rate_of[check,$ms]=$(median ${checks[$ms]}); runs_of[check,$ms]=${checks[$ms]# }
  # shellcheck disable=SC2086
  rate_of[limit,$ms]=$(median ${limits[$ms]}); runs_of[limit,$ms]=${limits[$ms]# }
done

# peers LATENCY: the peers on the sample, through the registry or the proxy.
peers() {
  local ms=$1 c0 t0 t1 ref refs
  say "+$ms ms: cosign 3.1.1 loop, one cosign verify per image, over $S images"
  c0=$(proxy_conns)
  t0=$(now)
  while read -r ref; do cosign_verify "$ref"; done < "$work/sample-$ms.txt"
  t1=$(now)
  conns_of[cosign_loop,$ms]=$(( $(proxy_conns) - c0 ))
  rate_of[cosign_loop,$ms]=$(rate "$S" "$t0" "$t1")

  say "+$ms ms: cosign 3.1.1, one cosign verify given all $S images"
  c0=$(proxy_conns)
  t0=$(now)
  mapfile -t refs < "$work/sample-$ms.txt"
  cosign_verify "${refs[@]}"
  t1=$(now)
  conns_of[cosign_one,$ms]=$(( $(proxy_conns) - c0 ))
  rate_of[cosign_one,$ms]=$(rate "$S" "$t0" "$t1")

  say "+$ms ms: skopeo 1.18 loop over $S images"
  c0=$(proxy_conns)
  t0=$(now)
  while read -r ref; do
    rm -rf "$work/x"
    "$SIGTRAIL_SKOPEO" --registries.d "$work/registries.d" --policy "$work/policy.json" \
      copy -q --remove-signatures --src-tls-verify=false "docker://$ref" "oci:$work/x:t" > /dev/null
  done < "$work/sample-$ms.txt"
  t1=$(now)
  conns_of[skopeo,$ms]=$(( $(proxy_conns) - c0 ))
  rate_of[skopeo,$ms]=$(rate "$S" "$t0" "$t1")

  say "+$ms ms: sigstore-rs harness, sequential, one process per image, over $S images"
  c0=$(proxy_conns)
  t0=$(now)
  while read -r ref; do
    "$SIGTRAIL_SRS_VERIFY" "$ref" "$work/key.pub" --http > /dev/null 2> "$work/srs.err" \
      || { cat "$work/srs.err" >&2; exit 1; }
  done < "$work/sample-$ms.txt"
  t1=$(now)
  conns_of[srs,$ms]=$(( $(proxy_conns) - c0 ))
  rate_of[srs,$ms]=$(rate "$S" "$t0" "$t1")
}
for ms in "${lat[@]}"; do peers "$ms"; done

# goal NAME OK: "met" or "MISSED".
verdict() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo met; else echo MISSED; fi; }
row() { # row LABEL PEER [GOAL]: the peer's rate and check-sig's ratio to it at both latencies
  local label=$1 peer=$2 goal=${3:-} ms cells="" r verdicts=""
  for ms in 0 "$RTT_MS"; do
    r=$(ratio "${rate_of[check,$ms]}" "${rate_of[$peer,$ms]}")
    cells+=$(printf '  %7s %8s' "${rate_of[$peer,$ms]}" "$r")
    [ -z "$goal" ] || verdicts+="${verdicts:+, }$(verdict "${r%x} >= $goal")"
  done
  printf '  %-44s%s   %s\n' "$label" "$cells" "${goal:+(goal >= ${goal}x: $verdicts)}"
}
c0=${rate_of[check,0]} c1=${rate_of[check,$RTT_MS]} l0=${rate_of[limit,0]} l1=${rate_of[limit,$RTT_MS]}
hidden=$(python3 -c "print(f'{float(\"$c1\")/float(\"$c0\"):.2f}')")
frac0=$(python3 -c "print(f'{float(\"$c0\")/float(\"$l0\"):.2f}')")
frac1=$(python3 -c "print(f'{float(\"$c1\")/float(\"$l1\"):.2f}')")
cat <<REPORT

sigtrail bench, $(date -u +%Y-%m-%dT%H:%MZ): $N signed images on the local registry ($SIGTRAIL_REGISTRY),
$(nproc) cores shared with other work; every figure from this one run; peers on the first $S images;
+$RTT_MS ms: through delay-proxy ($proxy), $RTT_MS ms more per request, one more round trip per new connection
  push (bench-push.py, 1 connection)             $N images in ${push_secs} s
  signing (digest-of | payload-for | kms-sign | attach-sig)
                                                 $sign_rate images/s ($N in ${sign_secs} s; KMS: $sign_kms)

  images/s, and check-sig's ratio to each          +0 ms             +$RTT_MS ms
  check-sig --key awskms:// (--jobs $JOBS, default)      $(printf '%7s %8s  %7s %8s' "$c0" "" "$c1" "") (medians of $R runs: ${runs_of[check,0]} / ${runs_of[check,$RTT_MS]})
$(row "cosign 3.1.1 loop, 1 process/image" cosign_loop)
$(row "cosign 3.1.1, 1 process given all $S" cosign_one)
$(row "skopeo 1.18 loop ($S images)" skopeo 10)
$(row "sigstore-rs harness, sequential ($S)" srs 5)
$(row "registry limit (3 req/image, $JOBS at once)" limit)
                                                 (medians of $R runs: ${runs_of[limit,0]} / ${runs_of[limit,$RTT_MS]})
  check-sig as a fraction of the registry limit  +0 ms: $frac0  +$RTT_MS ms: $frac1   (goal >= 0.8 at both: $(verdict "$frac0 >= 0.8 and $frac1 >= 0.8"))
  check-sig at +$RTT_MS ms / at +0 ms                $hidden   (goal >= 0.90, the latency hidden: $(verdict "$hidden >= 0.9"))
  connections opened through the proxy at +$RTT_MS ms: check-sig ${conns_of[check,$RTT_MS]} ($N images), registry limit ${conns_of[limit,$RTT_MS]},
    cosign loop ${conns_of[cosign_loop,$RTT_MS]}, one cosign ${conns_of[cosign_one,$RTT_MS]}, skopeo ${conns_of[skopeo,$RTT_MS]}, sigstore-rs ${conns_of[srs,$RTT_MS]} ($S images each)
  KMS calls during one check-sig run             +0 ms: ${kms_total[0]} (${kms_calls[0]:-none}); +$RTT_MS ms: ${kms_total[$RTT_MS]} (${kms_calls[$RTT_MS]:-none})
                                                 (goal: 1 GetPublicKey, no Sign/Verify)
REPORT
[ "$ONLY" = verify ] || trail_bench
