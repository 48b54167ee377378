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

apt_install() {
  if [[ ! -f /var/lib/apt/lists/.envplane-updated ]]; then
    apt-get update -qq >&2 && touch /var/lib/apt/lists/.envplane-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
