#!/usr/bin/env bash
# Start a local Redis for envplane's integration tests (ACL users, key prefixes).
# Safe to run again: it starts nothing when a server already answers.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh

PORT="${ENVPLANE_TEST_REDIS_PORT:-6379}"

answers() { redis-cli -p "$PORT" ping | grep -q PONG; }

if ! have redis-server || ! have redis-cli; then
  log "installing redis-server (apt)"
  apt_install redis-server
fi

if ! answers >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:$PORT"
  # No persistence: tests create and delete their own users and keys.
  # Containers reach it as host.docker.internal, so it listens beyond loopback. The test
  # server's default user has no password: this is a throwaway server on a test machine.
  redis-server --daemonize yes --port "$PORT" --bind 0.0.0.0 --protected-mode no --save "" \
    --appendonly no >&2
  if ! wait_for 20 answers; then
    log "Redis did not answer on port $PORT"
    exit 1
  fi
fi
echo "export ENVPLANE_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
