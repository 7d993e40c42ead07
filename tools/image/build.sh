#!/usr/bin/env bash
# Builds the operator image from ./Containerfile on a machine without a container registry.
#
#   tools/image/build.sh            # what `make image` runs
#
# 1. The base: a minimal Debian bookworm root filesystem with Python, made by
#    `mmdebstrap --variant=minbase`, imported into buildah's storage as
#    localhost/incident-operator-base:<key>. The tarball is cached outside the work tree
#    (~/.cache/incident-operator/image/), keyed by the suite and the package list, so fresh
#    clones on the same machine reuse it.
# 2. The image: `buildah bud --isolation chroot` of the same Containerfile everyone else builds
#    with docker/podman, with --build-arg BASE=<that local base>. Skipped when an image built
#    from the same inputs (Containerfile, pyproject.toml, README.md, operator/, the base key, the
#    revision) is already in storage.
#
# Prints the image reference on stdout (progress goes to stderr), so callers can do
# IMAGE="$(tools/image/build.sh)". Tags: <IMAGE_REPOSITORY>:<version> (the chart's appVersion, also
# the default image.tag) and <IMAGE_REPOSITORY>:<key>.
#
# Needs: mmdebstrap, buildah (Debian packages; `make apt-deps` installs them) and root or a
# working user namespace for buildah. pip inside the build reaches PyPI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
log() { echo "image: $*" >&2; }

SUITE="${IMAGE_BASE_SUITE:-bookworm}"
MIRROR="${IMAGE_BASE_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip (the Containerfile makes a venv); passwd brings useradd/groupadd.
BASE_PACKAGES="${IMAGE_BASE_PACKAGES:-python3,python3-venv,ca-certificates,tzdata,passwd}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-ghcr.io/buttercream/incident-operator}"
cache="${IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/image}"
mkdir -p "$cache"

for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null || { log "$tool is needed (apt-get install mmdebstrap buildah, or: make apt-deps)"; exit 1; }
done

version="$(awk -F'"' '/^version *=/{print $2; exit}' "$repo/pyproject.toml")"
app_version="$(awk -F'"' '/^appVersion:/{print $2; exit}' "$repo/charts/incident-operator/Chart.yaml")"
[[ "$version" == "$app_version" ]] || { log "pyproject.toml version $version != chart appVersion $app_version"; exit 1; }
revision="${IMAGE_REVISION:-$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
if [[ -z "${IMAGE_REVISION:-}" ]] && [[ -n "$(git -C "$repo" status --porcelain -- Containerfile pyproject.toml README.md operator 2>/dev/null)" ]]; then
  revision="${revision}-dirty"
fi

# -- 1. the base ---------------------------------------------------------------------------------------
base_key="$(printf '%s\n' "$SUITE" "$MIRROR" "$BASE_PACKAGES" "minbase-v1" | sha256sum | cut -c1-16)"
base_tar="$cache/base-${SUITE}-${base_key}.tar"
base_image="localhost/incident-operator-base:${SUITE}-${base_key}"
if [[ ! -s "$base_tar" ]]; then
  log "base: mmdebstrap --variant=minbase $SUITE with $BASE_PACKAGES (first build: about a minute; cached in $cache)"
  start=$SECONDS
  mmdebstrap --quiet --variant=minbase --format=tar --include="$BASE_PACKAGES" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$base_tar.partial" "$MIRROR"
  mv "$base_tar.partial" "$base_tar"
  log "base: rootfs built in $((SECONDS - start)) s ($(du -h "$base_tar" | cut -f1))"
else
  log "base: rootfs $base_tar is current"
fi
if ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  log "base: importing the rootfs as $base_image"
  container="$(buildah from scratch)"
  trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
  buildah add --quiet "$container" "$base_tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /usr/bin/python3 \
    --label org.opencontainers.image.description="Debian $SUITE minbase with Python (mmdebstrap)" "$container"
  buildah commit --quiet --rm "$container" "$base_image" >/dev/null
  trap - EXIT
else
  log "base: image $base_image is current"
fi

# -- 2. the image --------------------------------------------------------------------------------------
inputs_key="$( { printf '%s\n' "$base_key" "$revision" "$IMAGE_REPOSITORY"
                 cd "$repo" && find Containerfile .containerignore pyproject.toml README.md operator -type f \
                   ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
                   | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)"
image="${IMAGE_REPOSITORY}:${version}"
keyed="${IMAGE_REPOSITORY}:build-${inputs_key}"
if buildah inspect --type image "$keyed" >/dev/null 2>&1; then
  log "app: $keyed is current (inputs unchanged)"
  buildah tag "$keyed" "$image" >/dev/null
else
  log "app: buildah bud --isolation chroot (version $version, revision $revision; pip reaches PyPI)"
  # The host's CA bundle is mounted (never committed) over the base's for the RUN steps, so pip
  # trusts what the host trusts (e.g. a TLS-inspecting egress proxy). IMAGE_HOST_CA= turns it off.
  host_ca="${IMAGE_HOST_CA-/etc/ssl/certs/ca-certificates.crt}"
  mounts=()
  [[ -n "$host_ca" && -s "$host_ca" ]] && mounts=(--volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro")
  start=$SECONDS
  buildah bud --quiet --isolation chroot --layers "${mounts[@]}" \
    --build-arg BASE="$base_image" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    -f "$repo/Containerfile" -t "$image" -t "$keyed" "$repo" >&2
  log "app: built in $((SECONDS - start)) s"
  # buildah's layer cache ignores a changed build arg in LABEL/ENV steps that no RUN uses
  # (https://github.com/containers/buildah/issues/5501, open): a new revision can come back with
  # the previous revision's label and INCIDENT_OPERATOR_REVISION. Stamp the final image when so.
  stamped="$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.revision"}}' "$image")"
  if [[ "$stamped" != "$revision" ]]; then
    log "app: layer cache kept revision $stamped; stamping $revision (buildah#5501)"
    container="$(buildah from "$image")"
    trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
    buildah config --label org.opencontainers.image.revision="$revision" \
      --env INCIDENT_OPERATOR_REVISION="$revision" "$container"
    buildah commit --quiet --rm "$container" "$image" >/dev/null
    trap - EXIT
    buildah tag "$image" "$keyed" >/dev/null
  fi
fi
log "image: $image ($(buildah images --format '{{.Size}}' "$image" | head -1))"
echo "$image"
