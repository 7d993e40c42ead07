#!/usr/bin/env bash
# Builds the pinned actionlint (GitHub Actions workflow checker) from the Go module proxy, once.
#
# Prints the path of the binary on stdout (everything else goes to stderr), so callers can do:
# ACTIONLINT="$(tests/tools/build-actionlint.sh)". Cached outside the work tree like helm
# (tests/tools/build-helm.sh); ACTIONLINT_BINARY names an existing binary to use instead.
set -euo pipefail
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
log() { echo "actionlint: $*" >&2; }

version_of() { "$1" -version 2>/dev/null | head -1 || true; }

if [[ -n "${ACTIONLINT_BINARY:-}" ]]; then
  [[ -x "$ACTIONLINT_BINARY" ]] || { log "ACTIONLINT_BINARY=$ACTIONLINT_BINARY is not executable"; exit 1; }
  echo "$ACTIONLINT_BINARY"
  exit 0
fi

bin_dir="${ACTIONLINT_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/actionlint/${ACTIONLINT_VERSION}}"
binary="$bin_dir/actionlint"
if [[ -x "$binary" && "$(version_of "$binary")" == "${ACTIONLINT_VERSION}" ]]; then
  log "actionlint ${ACTIONLINT_VERSION} already built in ${bin_dir}"
  echo "$binary"
  exit 0
fi

command -v go >/dev/null || { log "Go is needed to build actionlint ${ACTIONLINT_VERSION} (or set ACTIONLINT_BINARY)"; exit 1; }
mkdir -p "$bin_dir"
log "building actionlint ${ACTIONLINT_VERSION} into ${bin_dir} (first build: under a minute; later runs are cached)"
start=$SECONDS
cd "$bin_dir"
GOBIN="$bin_dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
  -ldflags "-s -w -X github.com/rhysd/actionlint.version=${ACTIONLINT_VERSION}" \
  "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
[[ "$(version_of "$binary")" == "${ACTIONLINT_VERSION}" ]] || { log "built actionlint does not report ${ACTIONLINT_VERSION}: $(version_of "$binary")"; exit 1; }
log "built in $((SECONDS - start)) s"
echo "$binary"
