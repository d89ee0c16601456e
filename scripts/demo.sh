#!/usr/bin/env bash
# The demo behind `cargo xtask demo`: push sample images to the local registry, sign the releases
# with a KMS key in the AWS emulator through the tool pipeline, verify them (one image carries a
# signature copied from another and fails), sign one image in cosign v3's bundle format and
# verify both formats with check-sig and cosign 3.1.1, let the key "leak" and sign one more
# image after that, and end with the audit: which images are trusted.
#
#   digest-of IMAGES | payload-for -a git_sha=... | kms-sign --key awskms:///alias/sigtrail-demo | attach-sig
#   digest-of IMAGES | check-sig --key awskms:///alias/sigtrail-demo
#   ... | trail-for --cloudtrail lookup --compromised-at TIME --timeline timeline.html
#
# Runs inside the environment of `cargo xtask env up` (xtask sets it; by hand: source
# .sigtrail/env/env.sh, on a fresh environment). The records of every step and the timeline are
# kept in .sigtrail/demo/ (or $SIGTRAIL_DEMO_OUT). SIGTRAIL_DEMO_BIN=DIR runs tools already built
# in DIR instead of building them. Exits 0 when every step did what the demo says it does.
set -euo pipefail

: "${SIGTRAIL_REGISTRY:?run with cargo xtask demo, or source .sigtrail/env/env.sh first}"
root=$(cd "$(dirname "$0")/.." && pwd)
scripts=$root/scripts
alias=alias/sigtrail-demo
key=awskms:///$alias
account=123456789012
reg=$SIGTRAIL_REGISTRY
git_sha=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo 0000000000000000000000000000000000000000)
out=${SIGTRAIL_DEMO_OUT:-$root/.sigtrail/demo}
since=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ) # trail-for reads CloudTrail from here on
# Settings of the caller's shell that would send signatures elsewhere.
unset COSIGN_REPOSITORY SIGTRAIL_ECR_ALIASES

say() { printf '\n== %s\n' "$*"; }
cmd() { printf '   $ %s\n' "$*"; }
# Ends the demo when a step did not do what it should, with the tools' stderr.
die() {
  printf '\nDEMO FAILED: %s\n' "$*" >&2
  if [ -s "$out/stderr.log" ]; then
    echo "--- tools' stderr ($out/stderr.log):" >&2
    tail -n 30 "$out/stderr.log" >&2
  fi
  exit 1
}
short() { printf '%s' "${1:0:19}…"; }

if [ -n "${SIGTRAIL_DEMO_BIN:-}" ]; then
  bin=$SIGTRAIL_DEMO_BIN
else
  say "building the tools (cargo build --bins)"
  (cd "$root" && cargo build --quiet --bins)
  bin=${CARGO_TARGET_DIR:-$root/target}/debug
fi
for tool in digest-of payload-for kms-sign attach-sig check-sig trail-for; do
  [ -x "$bin/$tool" ] || die "$bin/$tool is not built"
done
export PATH="$bin:$PATH"
rm -rf "$out"
mkdir -p "$out"
: > "$out/pushed.jsonl"
: > "$out/stderr.log"
echo "   records and the timeline go to $out"

# push REPO TAG CONTENT [--index]: push-image.sh, then tell moto's ECR (DescribeImages). The
# stand-in CloudTrail record of the push names $pusher as the caller.
pusher=sigtrail-demo
push() {
  local ref=$reg/$1:$2 digest
  digest=$("$scripts/push-image.sh" "$ref" "$3" "${@:4}")
  "$SIGTRAIL_SKOPEO" inspect --raw --tls-verify=false "docker://$ref" \
    | "$SIGTRAIL_PYTHON" "$scripts/ecr-mirror.py" "$1" "$2" - "$digest" >/dev/null
  printf '   %-40s %s\n' "$1:$2" "$digest"
  jq -nc --arg r "$1" --arg t "$2" --arg d "$digest" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg u "$pusher" '{repository: $r, tag: $t, digest: $d, pushed_at: $at, user: $u}' >> "$out/pushed.jsonl"
}
digest_of_tag() { jq -r --arg r "$1" --arg t "$2" 'select(.repository == $r and .tag == $t) | .digest' "$out/pushed.jsonl"; }
sig_tag() { printf 'sha256-%s.sig' "${1#sha256:}"; }

# sign OUT IMAGES...: the signing pipeline, exactly as a release job runs it.
sign() {
  local file=$1
  shift
  cmd "digest-of ${*#"$reg/"} | payload-for -a git_sha=${git_sha:0:12}… | kms-sign --key $key | attach-sig"
  digest-of "$@" 2>>"$out/stderr.log" \
    | payload-for -a "git_sha=$git_sha" 2>>"$out/stderr.log" \
    | kms-sign --key "$key" 2>>"$out/stderr.log" \
    | attach-sig > "$file" 2>>"$out/stderr.log" || die "the signing pipeline failed"
  jq -r '"   signed   \(.repository):\(.tag)  \(.algorithm) (KMS request \(.kms.request_id[0:8])…)  -> \(.attached.tag[0:19])….sig, \(.attached.layers) signature(s)"' "$file"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$file.attached_at"
}

# verify OUT IMAGES...: check-sig on the images; prints one line per image; exit status of check-sig.
verify() {
  local file=$1 rc=0
  shift
  cmd "digest-of ... | check-sig --key $key"
  digest-of "$@" 2>>"$out/stderr.log" | check-sig --key "$key" > "$file" 2>>"$out/stderr.log" || rc=$?
  jq -r 'if .verification.verified then
      "   OK       \(.repository):\(.tag)  signature by key \(.verification.keys_verified[0][0:12])…"
    else
      "   FAILED   \(.repository):\(.tag)  \(.verification.failure // .error.kind): \(.verification.signatures[0].reason // .verification.reason // .error.message
        | gsub("sha256:(?<h>[0-9a-f]{12})[0-9a-f]{52}"; "sha256:\(.h)…"))"
    end' "$file"
  return $rc
}

say "1. pushing sample images to $reg (built without docker) and telling moto's ECR"
push sample-app-1 v1.0 "sample app 1, release 1.0"
push sample-app-1 v1.1 "sample app 1, release 1.1"
push sample-app-2 v1.0 "sample app 2, two platforms" --index
releases=("$reg/sample-app-1:v1.0" "$reg/sample-app-1:v1.1" "$reg/sample-app-2:v1.0")

say "2. creating the KMS key $alias (ECC_NIST_P256, SIGN_VERIFY) in moto"
arn=$("$SIGTRAIL_PYTHON" "$scripts/kms-create-key.py" ECC_NIST_P256 "$alias")
echo "   $arn"
cmd "kms-sign --public-key --key $key > kms.pub"
kms-sign --public-key --key "$key" > "$out/kms.pub" 2>>"$out/stderr.log" || die "kms-sign --public-key failed"
sed 's/^/   /' "$out/kms.pub"

say "3. release: signing the three images with the KMS key"
sign "$out/signed.jsonl" "${releases[@]}"
[ "$(jq -s 'map(select(.attached.added == true)) | length' "$out/signed.jsonl")" = 3 ] ||
  die "attach-sig did not attach three signatures"

say "4. someone rebuilds sample-app-1:v1.0 by hand and copies v1.0's signature onto it"
pusher=dev-laptop
push sample-app-1 v1.0-patched "sample app 1, release 1.0, patched by hand"
from=$(sig_tag "$(digest_of_tag sample-app-1 v1.0)")
to=$(sig_tag "$(digest_of_tag sample-app-1 v1.0-patched)")
cmd "curl GET $reg/v2/sample-app-1/manifests/${from:0:19}….sig | curl PUT .../manifests/${to:0:19}….sig"
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$reg/v2/sample-app-1/manifests/$from" > "$out/copied-sig-manifest.json" || die "cannot read $from"
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary @"$out/copied-sig-manifest.json" "http://$reg/v2/sample-app-1/manifests/$to" > /dev/null ||
  die "cannot push $to"
jq -nc --arg d "sha256:$(sha256sum < "$out/copied-sig-manifest.json" | cut -d' ' -f1)" --arg t "$to" \
  --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg u "$pusher" \
  '{repository: "sample-app-1", tag: $t, digest: $d, pushed_at: $at, user: $u}' > "$out/copied.jsonl"
pusher=sigtrail-demo
all=("${releases[@]}" "$reg/sample-app-1:v1.0-patched")

say "5. verify before deploy: check-sig (exit status 1: one image fails, as it should)"
rc=0
verify "$out/checked.jsonl" "${all[@]}" || rc=$?
[ $rc = 1 ] || die "check-sig exited with $rc, expected 1 (one image fails)"
[ "$(jq -sc 'map(.verification.verified)' "$out/checked.jsonl")" = '[true,true,true,false]' ] ||
  die "check-sig did not accept exactly the three signed releases"
[ "$(jq -r 'select(.tag == "v1.0-patched") | .verification.signatures[0].failed_check' "$out/checked.jsonl")" = manifest_digest ] ||
  die "the copied signature did not fail on its manifest digest"

say "6. independent check: sigstore-rs 0.15 verifies with the KMS public key"
for ref in "${all[@]}"; do
  verdict=$("$SIGTRAIL_SRS_VERIFY" "$ref" "$out/kms.pub" --http 2>/dev/null) && ok=yes || ok=no
  echo "   sigstore-rs: ${verdict//"$reg/"/}"
  case $ref:$ok in
    *:v1.0-patched:yes) die "sigstore-rs accepted the copied signature" ;;
    *:v1.0-patched:no) ;;
    *:no) die "sigstore-rs rejected $ref" ;;
  esac
done

say "7. cosign v3's default format: sample-app-3:v1.0 signed as a Sigstore bundle, both formats checked by check-sig and cosign 3.1.1"
push sample-app-3 v1.0 "sample app 3, release 1.0"
bundled=$reg/sample-app-3:v1.0
cmd "digest-of ${bundled#"$reg/"} | payload-for --format bundle -a git_sha=${git_sha:0:12}… | kms-sign --key $key | attach-sig"
digest-of "$bundled" 2>>"$out/stderr.log" \
  | payload-for --format bundle -a "git_sha=$git_sha" 2>>"$out/stderr.log" \
  | kms-sign --key "$key" 2>>"$out/stderr.log" \
  | attach-sig > "$out/signed-bundle.jsonl" 2>>"$out/stderr.log" || die "the bundle signing pipeline failed"
date -u +%Y-%m-%dT%H:%M:%SZ > "$out/signed-bundle.jsonl.attached_at"
jq -r '"   signed   \(.repository):\(.tag)  DSSE over an in-toto statement -> referrer \(.attached.manifest_digest[0:19])… (referrers: \(.attached.referrers))"' "$out/signed-bundle.jsonl"
all+=("$bundled")
legacy_ref=$(jq -r 'select(.tag == "v1.0" and .repository == "sample-app-1") | .ref' "$out/checked.jsonl")
bundle_ref=$(jq -r .ref "$out/signed-bundle.jsonl")
cmd "digest-of ... | check-sig --key $key   (finds the bundle without being asked: --bundles auto)"
digest-of "$legacy_ref" "$bundle_ref" 2>>"$out/stderr.log" | check-sig --key "$key" > "$out/checked-formats.jsonl" 2>>"$out/stderr.log" ||
  die "check-sig did not verify both formats"
jq -r '"   OK       \(.repository):\(.tag // .digest[0:19])  \(if .verification.bundles then "bundle" else ".sig" end)"' "$out/checked-formats.jsonl"
cosign_home="$out/cosign-home"
mkdir -p "$cosign_home"
for pair in "$legacy_ref:--new-bundle-format=false" "$bundle_ref:"; do
  ref=${pair%:*} flag=${pair##*:}
  cmd "cosign verify --key $key --insecure-ignore-tlog ${flag:+$flag }${ref#"$reg/"}"
  HOME=$cosign_home "$SIGTRAIL_COSIGN" verify --key "$key" --insecure-ignore-tlog --allow-insecure-registry \
    --allow-http-registry ${flag:+"$flag"} "$ref" > "$out/cosign-verify.json" 2>>"$out/stderr.log" ||
    die "cosign 3.1.1 did not verify $ref"
  jq -r '.[0] | "   cosign 3.1.1: verified \(.critical.type)"' "$out/cosign-verify.json"
done

sleep 1
compromised_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "8. the key leaks at $compromised_at; sample-app-1:v1.2 is signed with it after that"
push sample-app-1 v1.2 "sample app 1, release 1.2"
sign "$out/signed-late.jsonl" "$reg/sample-app-1:v1.2"
all+=("$reg/sample-app-1:v1.2")
verify "$out/checked-all.jsonl" "${all[@]}" || true
[ "$(jq -r 'select(.tag == "v1.2") | .verification.verified' "$out/checked-all.jsonl")" = true ] ||
  die "check-sig did not accept v1.2's (valid) signature"
echo "   (v1.2's signature is valid: only the audit trail can tell it was made after the leak)"

say "9. audit: trail-for joins CloudTrail and ECR (--compromised-at $compromised_at), newest image first"
# moto records no CloudTrail. For the LookupEvents stand-in of scripts/moto_server.py, write the
# events AWS would have recorded for this demo, from the tools' own output: an ECR PutImage per
# pushed tag, per signature manifest attach-sig pushed and for the copied one, and a KMS Sign per
# kms-sign request (its request id, time, key and algorithm). The caller is the release user
# sigtrail-demo, except for step 4's hand-made pushes, made as user dev-laptop (with its own
# access key), as they would be. Nothing else is invented.
put_image='{
    eventVersion: "1.08", eventTime: .pushed_at, eventSource: "ecr.amazonaws.com",
    eventName: "PutImage", awsRegion: "us-east-1", readOnly: false,
    eventID: ("demo-push-" + .repository + "-" + (.tag // .digest)), requestID: ("demo-push-" + .repository + "-" + (.tag // .digest)),
    userIdentity: {type: "IAMUser", accountId: $acct, userName: (.user // "sigtrail-demo"),
                   accessKeyId: (if (.user // "sigtrail-demo") == "sigtrail-demo" then "testing" else "AKIADEMO" + (.user | ascii_upcase | gsub("-"; "")) end),
                   arn: ("arn:aws:iam::" + $acct + ":user/" + (.user // "sigtrail-demo"))},
    requestParameters: ({repositoryName: .repository, imageTag: .tag, registryId: $acct,
                         imageManifest: .manifest} | with_entries(select(.value != null))),
    responseElements: {image: {repositoryName: .repository, registryId: $acct,
                               imageId: ({imageDigest: .digest, imageTag: .tag} | with_entries(select(.value != null)))}},
    resources: [{accountId: $acct, ARN: ("arn:aws:ecr:us-east-1:" + $acct + ":repository/" + .repository)}],
    eventType: "AwsApiCall", recipientAccountId: $acct
  }'
kms_sign='select(.kms) | {
    eventVersion: "1.08", eventTime: (.kms.time | sub("\\.[0-9]+Z$"; "Z")),
    eventSource: "kms.amazonaws.com", eventName: "Sign", awsRegion: "us-east-1", readOnly: true,
    eventID: ("demo-sign-" + .kms.request_id), requestID: .kms.request_id,
    userIdentity: {type: "IAMUser", accountId: $acct, accessKeyId: "testing", userName: "sigtrail-demo",
                   arn: ("arn:aws:iam::" + $acct + ":user/sigtrail-demo")},
    requestParameters: {keyId: $alias, messageType: "DIGEST", signingAlgorithm: .algorithm},
    responseElements: null,
    resources: [{accountId: $acct, type: "AWS::KMS::Key", ARN: .kms.key_arn}],
    eventType: "AwsApiCall", managementEvent: true, recipientAccountId: $acct
  }'
{
  jq -c --arg acct "$account" "$put_image" "$out/pushed.jsonl" "$out/copied.jsonl"
  for f in signed signed-late; do
    jq -c --arg at "$(cat "$out/$f.jsonl.attached_at")" 'select(.attached) | {repository, tag: .attached.tag,
        digest: .attached.manifest_digest, pushed_at: $at}' "$out/$f.jsonl" \
      | jq -c --arg acct "$account" "$put_image"
    jq -c --arg acct "$account" --arg alias "$alias" "$kms_sign" "$out/$f.jsonl"
  done
  # The bundle referrer: pushed by digest, no tag; CloudTrail logs the manifest, whose subject
  # is the signed image (on ECR, which has the referrers API, there is no fallback index push).
  referrer=$(jq -r .attached.manifest_digest "$out/signed-bundle.jsonl")
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$reg/v2/sample-app-3/manifests/$referrer" > "$out/referrer-manifest.json" || die "cannot read $referrer"
  jq -nc --arg d "$referrer" --arg at "$(cat "$out/signed-bundle.jsonl.attached_at")" \
    --rawfile m "$out/referrer-manifest.json" \
    '{repository: "sample-app-3", digest: $d, manifest: $m, pushed_at: $at}' \
    | jq -c --arg acct "$account" "$put_image"
  jq -c --arg acct "$account" --arg alias "$alias" "$kms_sign" "$out/signed-bundle.jsonl"
} > "$out/events.jsonl"
jq -s '{Records: .}' "$out/events.jsonl" > "$SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE"
echo "   (moto has no CloudTrail: wrote $(jq '.Records | length' "$SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE") stand-in records of the demo's own calls for LookupEvents)"
# Newest image first, one at a time so the timeline's pictures come in that order too. No
# --git-dir: the demo's images are not built from this checkout's HEAD, whose commit time would
# stretch the timeline's axis over days.
cmd "... | check-sig --key $key | trail-for --cloudtrail lookup --key $key --compromised-at $compromised_at --timeline timeline.html"
rc=0
tac "$out/checked-all.jsonl" | trail-for --jobs 1 --cloudtrail lookup --key "$key" --compromised-at "$compromised_at" \
  --since "$since" --account "$account" --region us-east-1 \
  --timeline "$out/timeline.html" > "$out/trail.jsonl" 2>>"$out/stderr.log" || rc=$?
[ $rc -le 1 ] || die "trail-for exited with $rc"
jq -r '"   \(.trail.verdict // "error" | ascii_upcase | . + "         " | .[0:11]) \(.repository):\(.tag)  "
  + "\((.trail.reasons // [.error.message]) | join("; "))"' "$out/trail.jsonl"
verdicts=$(jq -sc 'map({key: "\(.repository):\(.tag)", value: .trail.verdict}) | from_entries' "$out/trail.jsonl")
for image in sample-app-1:v1.0 sample-app-1:v1.1 sample-app-2:v1.0 sample-app-3:v1.0; do
  [ "$(jq -r --arg i "$image" '.[$i]' <<< "$verdicts")" = trusted ] || die "$image is not trusted"
done
[ "$(jq -r '.["sample-app-1:v1.2"]' <<< "$verdicts")" = untrusted ] ||
  die "sample-app-1:v1.2, signed after the compromise, is not untrusted"
[ "$(jq -r '.["sample-app-1:v1.0-patched"]' <<< "$verdicts")" != trusted ] ||
  die "sample-app-1:v1.0-patched is trusted"
[ $rc = 1 ] || die "trail-for exited with $rc, expected 1 (some images are not trusted)"
# The ambiguous case: the demo's CloudTrail names no request id in its pushes, and the batch's
# Sign calls all come before its pushes, so each push could be any of them. The verdict holds
# for every candidate: all before the leak for v1.1, one after it for v1.2.
echo "   ambiguity: CloudTrail's Sign names no digest; the verdict is the worst case over every candidate Sign:"
jq -r 'select(.tag == "v1.1" or .tag == "v1.2") | .trail.signatures[]? | select(.signed_at == null)
  | "     \(.verdict): signed between \(.signed_after) and \(.signed_before) (\(.evidence.candidates) candidate Signs, compromise: \(.compromise))"' \
  "$out/trail.jsonl"
[ "$(jq -r 'select(.tag == "v1.1") | .trail.signatures[0].evidence.candidates' "$out/trail.jsonl")" -gt 1 ] ||
  die "the demo's ambiguous case is gone: v1.1's signature has one candidate Sign"

say "10. the attack on the trail bucket: someone with the key and write access to the trail's bucket"
# The same events as log files in the bucket layout, sealed with the hourly digest chain
# CloudTrail writes when log file validation is on (moto writes none: cloudtrail-seal stands in,
# with its own RSA key for CloudTrail's). Then the attack: the log file holding v1.2's real Sign
# is deleted, and a forged one holds the same Sign backdated to before the leak.
[ -x "$bin/cloudtrail-seal" ] || die "$bin/cloudtrail-seal is not built (cargo build --bins)"
trail_dir="$out/trail"
"$bin/cloudtrail-seal" "$out/events.jsonl" "$trail_dir" "$out/cloudtrail-keys.json" > "$out/trail-files.tsv"
late_rid=$(jq -r 'select(.kms) | .kms.request_id' "$out/signed-late.jsonl" | head -n 1)
real_file=$(awk -F '\t' -v id="demo-sign-$late_rid" '$2 == id {print $1}' "$out/trail-files.tsv")
[ -n "$real_file" ] || die "no log file holds v1.2's Sign"
forged_epoch=$(( $(date -u -d "$compromised_at" +%s) - 30 ))
forged_time=$(date -u -d "@$forged_epoch" +%Y-%m-%dT%H:%M:%SZ)
forged_name="${account}_CloudTrail_us-east-1_$(date -u -d "@$((forged_epoch + 60))" +%Y%m%dT%H%MZ)_forged0000000000.json.gz"
forged_file="$(dirname "$real_file")/$forged_name"
rm "$trail_dir/$real_file"
jq -c --arg t "$forged_time" --arg rid "$late_rid" 'select(.eventID == ("demo-sign-" + $rid))
    | .eventTime = $t | .eventID = "forged-" + $rid | {Records: [.]}' "$out/events.jsonl" \
  | gzip -c > "$trail_dir/$forged_file"
echo "   deleted $(basename "$real_file") (v1.2's Sign at $(jq -r 'select(.kms) | .kms.time' "$out/signed-late.jsonl" | head -n 1))"
echo "   forged  $forged_name (the same Sign, at $forged_time: before the leak)"
audit_late() {
  jq -c 'select(.tag == "v1.2")' "$out/checked-all.jsonl" \
    | trail-for --cloudtrail "$trail_dir" --cloudtrail-public-keys "$out/cloudtrail-keys.json" --key "$key" \
        --compromised-at "$compromised_at" --since "$since" --account "$account" --region us-east-1 "$@" \
        2>>"$out/stderr.log" || true
}
cmd "... | trail-for --cloudtrail $trail_dir --integrity off ...   (believing every log file)"
audit_late --integrity off > "$out/trail-forged-unchecked.jsonl"
jq -r '"   \(.trail.verdict | ascii_upcase) sample-app-1:v1.2"' "$out/trail-forged-unchecked.jsonl"
[ "$(jq -r .trail.verdict "$out/trail-forged-unchecked.jsonl")" = trusted ] ||
  die "the forgery did not fool trail-for without validation: the demo shows nothing"
cmd "... | trail-for --cloudtrail $trail_dir ...   (the default: every log file checked against the digest chain)"
audit_late > "$out/trail-forged.jsonl"
jq -r '"   \(.trail.verdict | ascii_upcase) sample-app-1:v1.2: \(.trail.reasons[0])"' "$out/trail-forged.jsonl"
[ "$(jq -r .trail.verdict "$out/trail-forged.jsonl")" = untrusted ] || die "the forged trail made v1.2 trusted"
jq -e --arg f "$forged_name" '.trail.integrity.tampering | map(select(contains($f))) | length > 0' \
  "$out/trail-forged.jsonl" > /dev/null || die "the forged file is not named"
cmd "trail-for --key-usage --key $key --cloudtrail $trail_dir --state monitor.json   (the hourly monitor)"
rc=0
trail-for --key-usage --key "$key" --since "$since" --cloudtrail "$trail_dir" \
  --cloudtrail-public-keys "$out/cloudtrail-keys.json" --state "$out/monitor.json" \
  > "$out/monitor.jsonl" 2>>"$out/stderr.log" || rc=$?
[ $rc = 1 ] || die "the monitor exited with $rc, expected 1 (the trail was tampered with)"
jq -r 'select(.trail.tampering) | .trail.tampering[] | "   FLAGGED: " + .' "$out/monitor.jsonl"

say "demo done"
echo "   trusted: sample-app-1:v1.0, sample-app-1:v1.1, sample-app-2:v1.0 (signed by the release before the leak),"
echo "            sample-app-3:v1.0 (a cosign v3 bundle, verified by check-sig and cosign 3.1.1 like the .sig ones)"
echo "   not trusted: sample-app-1:v1.2 (signed after the leak), sample-app-1:v1.0-patched (copied signature)"
echo "   the trail bucket: a forged log file and a deleted one are named, v1.2 stays untrusted, the monitor flags it"
echo "   timeline: $out/timeline.html; records of every step: $out/*.jsonl"
