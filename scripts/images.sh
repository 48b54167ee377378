#!/usr/bin/env bash
# Build, without a registry, the base images the example's Dockerfiles name
# (busybox:stable, python:3.12-slim), only when they are missing. RECIPES.md says how.
#   bash scripts/images.sh [busybox] [python]     (both by default)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image_missing() { ! docker image inspect "$1" >/dev/null 2>&1; }

busybox_root() {
  local root=$1
  have busybox || apt_install busybox-static
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp "$(command -v busybox)" "$root/bin/busybox"
  local name
  for name in $("$root/bin/busybox" --list); do
    [[ $name == busybox ]] || ln -sf busybox "$root/bin/$name"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
}

build_busybox() {
  image_missing busybox:stable || return 0
  local root; root=$(mktemp -d)
  busybox_root "$root"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - busybox:stable >/dev/null
  rm -rf "$root"
  log "built busybox:stable"
}

# The host is Debian 12 like the image would be, so its python3.11 runs inside as it is.
build_python() {
  image_missing python:3.12-slim || return 0
  [[ -x /usr/bin/python3.11 ]] || apt_install python3.11
  local root; root=$(mktemp -d)
  busybox_root "$root"
  mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc/ssl"
  cp /usr/bin/python3.11 "$root/usr/bin/"
  ln -s python3.11 "$root/usr/bin/python3"
  ln -s python3.11 "$root/usr/bin/python"
  cp -a /usr/lib/python3.11 "$root/usr/lib/"
  rm -rf "$root/usr/lib/python3.11/test" "$root/usr/lib/python3.11/__pycache__"
  local lib
  for lib in $(ldd /usr/bin/python3.11 "$root"/usr/lib/python3.11/lib-dynload/*.so 2>/dev/null \
               | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    [[ -f $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  [[ -d /etc/ssl/certs ]] && cp -aL /etc/ssl/certs "$root/etc/ssl/" || true
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/bin:/bin' -c 'ENV LANG=C.UTF-8' - python:3.12-slim >/dev/null
  rm -rf "$root"
  log "built python:3.12-slim from the host's python3.11"
}

wanted=("$@")
((${#wanted[@]})) || wanted=(busybox python)
for name in "${wanted[@]}"; do
  case $name in
    busybox) build_busybox ;;
    python) build_python ;;
    *) log "unknown image $name"; exit 2 ;;
  esac
done
