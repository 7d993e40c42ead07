#!/usr/bin/env bash
# checkov (PyPI) on the chart rendered with its default values: `make checkov`.
#
# checkov goes into a throwaway virtualenv outside the work tree (CHECKOV_VENV, default
# ~/.cache/incident-operator/checkov-venv); it is not a project dependency. The findings that
# remain, and why, are in charts/incident-operator/README.md ("checkov").
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
helm="${1:-$(bash "$repo/tests/tools/build-helm.sh")}"
venv="${CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/checkov-venv}"
if [[ ! -x "$venv/bin/checkov" ]]; then
  echo "checkov: installing into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet checkov
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$helm" template incident-operator "$repo/charts/incident-operator" --namespace incident-operator \
  ${CHECKOV_VALUES:+--values "$CHECKOV_VALUES"} > "$out/rendered.yaml"
"$venv/bin/checkov" --quiet --compact --framework kubernetes -f "$out/rendered.yaml" "${@:2}"
