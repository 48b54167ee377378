# Shared helpers for envplane's scripts. Source it; it defines functions only.

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

# wait_for SECONDS COMMAND...: retry COMMAND until it succeeds or SECONDS pass.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.5
  done
}

# apt-get update only once per machine (and only when something is missing at all):
# it is the slow part of an install on a fresh CI machine.
apt_install() {
  if [[ ! -f /var/lib/apt/lists/.envplane-updated ]]; then
    apt-get update -qq >&2 && touch /var/lib/apt/lists/.envplane-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# The repo's virtualenv, created and given the package (with the dev extras) when missing.
ensure_venv() {
  local root; root=$(repo_root)
  [[ -x $root/.venv/bin/python ]] || python3 -m venv "$root/.venv" >&2
  "$root/.venv/bin/python" -m pip install -q -e "$root[dev]" >&2
}
