#!/usr/bin/env bash
# THE demo command (README.md): set up .venv with envplane, then run examples/finance-report
# on the embedded defaults (env local: processes, SQLite, no Docker), and on Docker when an
# engine answers (env docker, then a preview env for PR 7, verified and torn down).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
ROOT=$PWD

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[dev]'
export PATH="$ROOT/.venv/bin:$PATH"
cd examples/finance-report

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
get() { say "curl $1"; curl -fsS "$1"; echo; }

run envplane envs
run envplane plan staging
say "envplane render test --pr 7 | head -25"
envplane render test --pr 7 | head -25

say "envplane up local   (processes, SQLite under .envplane/data/local; Ctrl-C would stop it)"
envplane up local --timeout 30 &
local_pid=$!
wait_for 30 curl -fsS http://127.0.0.1:3000/api/health || { log "local env did not come up"; kill -INT $local_pid; exit 1; }
get http://127.0.0.1:3000/api/health
say "curl -X POST http://127.0.0.1:3000/api/reports"
curl -fsS -X POST -d '{"title": "Q3 close", "amount": 1250.5}' http://127.0.0.1:3000/api/reports; echo
get http://127.0.0.1:8000/api/reports
kill -INT $local_pid
wait $local_pid || true

if ! docker info >/dev/null 2>&1; then
  printf '\nNo Docker engine answers here: the demo stops after the local env.\n'
  printf 'Start one (bash scripts/services/docker.sh) to see the docker and preview envs too.\n'
  exit 0
fi
bash "$ROOT/scripts/services/docker.sh" | tail -n 1 >/dev/null   # Compose v2 plugin if missing
bash "$ROOT/scripts/images.sh"
export DATA_PATH_PR="$PWD/.envplane/data"
run envplane up docker
get http://127.0.0.1:18000/api/health
run envplane proxy up
say "DATA_PATH=.envplane/data/pr-7 envplane preview up --pr 7"
DATA_PATH="$DATA_PATH_PR/pr-7" envplane preview up --pr 7
say "curl -H 'Host: report-pr-7.localhost' http://127.0.0.1:8088/api/health"
curl -fsS -H 'Host: report-pr-7.localhost' http://127.0.0.1:8088/api/health; echo
run envplane status
run envplane verify
say "envplane preview down --pr 7"
DATA_PATH="$DATA_PATH_PR/pr-7" envplane preview down --pr 7
run envplane down docker --purge
run envplane proxy down
run envplane audit log
run envplane audit verify
