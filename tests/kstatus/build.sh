#!/usr/bin/env bash
# Builds the kstatus checker (main.go) once and prints the path of the binary on stdout.
#
# The binary goes to a per-user cache outside the work tree, keyed by a hash of go.mod, go.sum and
# main.go, so fresh clones on the same machine reuse it and the build is skipped while it is current.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "kstatus: $*" >&2; }
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
bin_dir="${KSTATUS_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/kstatus/${key}}"
if [[ -x "$bin_dir/kstatus" ]]; then
  log "already built in ${bin_dir}"
  echo "$bin_dir/kstatus"
  exit 0
fi
command -v go >/dev/null || { log "Go >= 1.26 is needed to build the kstatus checker"; exit 1; }
mkdir -p "$bin_dir"
log "building sigs.k8s.io/cli-utils' kstatus checker into ${bin_dir} (about 20 s the first time)"
cd "$here"
CGO_ENABLED=0 go build -trimpath -o "$bin_dir/kstatus.tmp" .
mv "$bin_dir/kstatus.tmp" "$bin_dir/kstatus"
echo "$bin_dir/kstatus"
