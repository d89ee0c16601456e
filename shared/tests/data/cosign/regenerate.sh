#!/usr/bin/env bash
# Regenerates the golden signature manifests in this directory with real cosign (2.5.0 from
# Debian trixie): cosign signs an image on the local registry twice (the second time with
# annotations), and we keep the bytes it pushed. `cosign.rs`'s unit tests rebuild the same
# manifests and config blobs from the kept payloads and signatures and compare bytes.
#
# usage (from the repository root, environment up):
#   cargo xtask env up && . .sigtrail/env/env.sh
#   COSIGN=/path/to/cosign shared/tests/data/cosign/regenerate.sh
# Getting cosign without touching the system (trixie's package runs on bookworm's glibc):
#   APT_CONFIG=~/.cache/sigtrail/apt-trixie/apt.conf apt-get download cosign/trixie
#   dpkg-deb -x cosign_*.deb cosign-root && COSIGN=$PWD/cosign-root/usr/bin/cosign
set -euo pipefail
: "${COSIGN:?set COSIGN to a cosign 2.x binary}"
: "${SIGTRAIL_REGISTRY:?run with the local environment loaded (. .sigtrail/env/env.sh)}"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
R=$SIGTRAIL_REGISTRY
repo=golden-$$
digest=$(bash "$here/../../../../scripts/push-image.sh" "$R/$repo:v1" "cosign golden image")
cd "$work"
export COSIGN_PASSWORD=golden
"$COSIGN" generate-key-pair >/dev/null 2>&1
sigtag="sha256-${digest#sha256:}.sig"
get_manifest() { curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/$repo/manifests/$sigtag"; }
get_blob() { curl -sf "http://$R/v2/$repo/blobs/$1"; }
keep() { # keep N: manifest, config, and the last layer's payload and signature
  local m; m=$(get_manifest)
  printf '%s' "$m" > "$here/$1.manifest.json"
  get_blob "$(jq -r .config.digest <<<"$m")" > "$here/$1.config.json"
  get_blob "$(jq -r '.layers[-1].digest' <<<"$m")" > "$here/$1.payload.json"
  jq -j '.layers[-1].annotations["dev.cosignproject.cosign/signature"]' <<<"$m" > "$here/$1.signature.b64"
}
"$COSIGN" sign --key cosign.key --tlog-upload=false --allow-http-registry --yes "$R/$repo@$digest" 2>/dev/null
keep one
"$COSIGN" sign --key cosign.key --tlog-upload=false --allow-http-registry --yes \
  -a team=infra -a 'note=<a&b>' "$R/$repo@$digest" 2>/dev/null
keep two
echo "$digest" > "$here/image-digest.txt"
"$COSIGN" version 2>/dev/null | grep -E '^GitVersion' > "$here/cosign-version.txt"
echo "regenerated from $R/$repo@$digest"
