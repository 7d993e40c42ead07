#!/usr/bin/env bash
# Builds the pinned helm binary from the Go module proxy, once.
#
# Prints the path of the helm binary on stdout (everything else goes to stderr),
# so callers can do: HELM="$(tests/tools/build-helm.sh)".
#
# - If HELM_BINARY names an executable, it is used as it is (a warning is printed
#   when it is not the pinned version: `make crds` output may then differ).
# - Otherwise helm goes to HELM_BIN_DIR (default: a per-user cache outside the work
#   tree, like the control-plane binaries), and the build is skipped when the
#   binary there already reports the pinned version.
#
# Why the Go module proxy: it is how this repository already gets kube-apiserver
# and etcd (tests/controlplane/build.sh), needs nothing but Go, and `go install`
# verifies the module against the checksum database. `go list -m -versions
# helm.sh/helm/v4` shows what the proxy offers.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v4.3.1}"
log() { echo "helm: $*" >&2; }

version_of() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }

if [[ -n "${HELM_BINARY:-}" ]]; then
  [[ -x "$HELM_BINARY" ]] || { log "HELM_BINARY=$HELM_BINARY is not executable"; exit 1; }
  found="$(version_of "$HELM_BINARY")"
  [[ "$found" == "$HELM_VERSION" ]] || log "warning: HELM_BINARY is $found, not the pinned $HELM_VERSION"
  echo "$HELM_BINARY"
  exit 0
fi

bin_dir="${HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/helm/${HELM_VERSION}}"
helm="$bin_dir/helm"
if [[ -x "$helm" && "$(version_of "$helm")" == "$HELM_VERSION" ]]; then
  log "helm ${HELM_VERSION} already built in ${bin_dir}"
  echo "$helm"
  exit 0
fi

command -v go >/dev/null || { log "Go is needed to build helm ${HELM_VERSION} (or set HELM_BINARY)"; exit 1; }
mkdir -p "$bin_dir"
pkg=helm.sh/helm/v4/internal/version
log "building helm ${HELM_VERSION} into ${bin_dir} (first build: ~1-3 minutes; later runs are cached)"
start=$SECONDS
# Outside any module, so the repository's own go.mod files play no part.
cd "$bin_dir"
GOBIN="$bin_dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
  -ldflags "-s -w -X ${pkg}.version=${HELM_VERSION} -X ${pkg}.gitTreeState=clean" \
  "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
[[ "$(version_of "$helm")" == "$HELM_VERSION" ]] || { log "built helm does not report ${HELM_VERSION}"; exit 1; }
log "built in $((SECONDS - start)) s"
echo "$helm"
