#!/usr/bin/env bash
# THE test command (README.md): set up .venv, install and start every service the tests
# need (Docker engine + Compose v2, PostgreSQL, and whatever scripts/services/ holds),
# build the local base images, then run ruff, mypy and the whole pytest suite.
#   bash scripts/test.sh [--no-services] [pytest arguments...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

services=1
args=()
for arg in "$@"; do
  case $arg in
    --no-services) services=0 ;;
    *) args+=("$arg") ;;
  esac
done

phase() { log "── $* ($((SECONDS))s)"; }

phase "python environment"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev]'

if ((services)); then
  for script in scripts/services/*.sh; do
    phase "service ${script##*/}"
    line=$(bash "$script" | tail -n 1)
    [[ $line == export\ * ]] || { log "$script did not end with an export line"; exit 1; }
    eval "$line"
  done
  phase "base images"
  bash scripts/images.sh
fi

phase "ruff"
.venv/bin/ruff check .
phase "mypy"
.venv/bin/mypy
phase "pytest"
# pytest's exit code 5 (no test ran) is non-zero, so it fails this script as it should.
.venv/bin/pytest -n 2 -p no:cacheprovider "${args[@]}"
phase "done"
