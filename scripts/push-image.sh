#!/usr/bin/env bash
# Build a small deterministic image (scripts/make-oci.py) and push it to a registry with skopeo,
# for tests and the demo. Prints the pushed digest on stdout: the sha256 of the manifest bytes
# `skopeo inspect --raw` reads back, checked against the digest of the local layout.
#
# usage: push-image.sh REGISTRY/REPO:TAG [CONTENT] [--creds USER:PASS] [--index]
#   CONTENT  text of the image's one file (default "hello from sample-app"); the digest follows it
#   --index  push a two-platform OCI image index instead of a single image
# needs SIGTRAIL_SKOPEO and SIGTRAIL_PYTHON (from `cargo xtask env up`, .sigtrail/env/env.sh)
set -euo pipefail

usage() { echo "usage: push-image.sh REGISTRY/REPO:TAG [CONTENT] [--creds USER:PASS] [--index]" >&2; exit 2; }
ref= content= creds= index=
while [ $# -gt 0 ]; do
  case $1 in
    --creds) [ $# -ge 2 ] || usage; creds=$2; shift 2 ;;
    --index) index=--index; shift ;;
    -h|--help) usage ;;
    -*) echo "push-image.sh: unknown option $1" >&2; usage ;;
    *) if [ -z "$ref" ]; then ref=$1; elif [ -z "$content" ]; then content=$1; else usage; fi; shift ;;
  esac
done
[ -n "$ref" ] || usage
case ${ref##*/} in *:*) ;; *) echo "push-image.sh: $ref has no tag" >&2; exit 2 ;; esac
: "${SIGTRAIL_SKOPEO:?run under cargo xtask test, or source .sigtrail/env/env.sh}"
: "${SIGTRAIL_PYTHON:?run under cargo xtask test, or source .sigtrail/env/env.sh}"
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '{"default":[{"type":"insecureAcceptAnything"}]}' > "$work/policy.json"
tag=${ref##*:}
local_digest=$("$SIGTRAIL_PYTHON" "$here/make-oci.py" "$work/oci" "$tag" ${content:+"$content"} $index)

dest=(--dest-tls-verify=false)
src=(--tls-verify=false)
if [ -n "$creds" ]; then dest+=(--dest-creds "$creds"); src+=(--creds "$creds"); fi
# --all: an index is pushed whole (without it skopeo copies only this machine's platform);
# --preserve-digests: fail rather than let skopeo rewrite a manifest.
"$SIGTRAIL_SKOPEO" --policy "$work/policy.json" copy -q --all --preserve-digests "${dest[@]}" \
  "oci:$work/oci:$tag" "docker://$ref" >&2
pushed="sha256:$("$SIGTRAIL_SKOPEO" inspect --raw "${src[@]}" "docker://$ref" | sha256sum | cut -d' ' -f1)"
if [ "$pushed" != "$local_digest" ]; then
  echo "push-image.sh: registry has $pushed for $ref, the layout had $local_digest" >&2
  exit 1
fi
echo "$pushed"
