#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the pinned Go modules, once.
#
# Prints the directory holding the binaries on stdout (everything else goes to
# stderr), so callers can do: KUBEBUILDER_ASSETS="$(tests/controlplane/build.sh)".
#
# - If KUBEBUILDER_ASSETS already holds kube-apiserver and etcd (envtest's
#   convention), they are used as they are and nothing is built.
# - Otherwise the binaries go to CONTROLPLANE_BIN_DIR (default: a per-user cache
#   outside the work tree, so fresh clones on the same machine reuse them), and
#   the build is skipped when the binaries there already report the pinned
#   versions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="$(cat "$here/K8S_VERSION")"
ETCD_VERSION="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")"
log() { echo "controlplane: $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
  log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

bin_dir="${CONTROLPLANE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/controlplane/${K8S_VERSION}}"
mkdir -p "$bin_dir"

current() {
  [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/etcd" ]] || return 1
  "$bin_dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes ${K8S_VERSION}" || return 1
  "$bin_dir/etcd" --version 2>/dev/null | grep -qx "etcd Version: ${ETCD_VERSION#v}" || return 1
}

if current; then
  log "kube-apiserver ${K8S_VERSION} and etcd ${ETCD_VERSION} already built in ${bin_dir}"
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { log "Go >= 1.26 is needed to build the local control plane (or set KUBEBUILDER_ASSETS)"; exit 1; }
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w \
 -X ${pkg}.gitVersion=${K8S_VERSION} \
 -X ${pkg}.gitMajor=1 \
 -X ${pkg}.gitMinor=${minor} \
 -X ${pkg}.gitTreeState=clean \
 -X ${pkg}.gitCommit=$(printf 'module-%s' "${K8S_VERSION}") \
 -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

log "building kube-apiserver ${K8S_VERSION} and etcd ${ETCD_VERSION} into ${bin_dir}"
log "the first build downloads ~300 MiB of modules and compiles for about 3-10 minutes on 2 cores; later builds are cached"
start=$SECONDS
cd "$here"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin_dir/" \
  k8s.io/kubernetes/cmd/kube-apiserver ./cmd/etcd
current || { log "built binaries do not report the pinned versions"; exit 1; }
log "built in $((SECONDS - start)) s"
echo "$bin_dir"
