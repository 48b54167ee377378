#!/usr/bin/env bash
# THE test command (README.md): set up .venv, install and start every service the tests
# need (each scripts/services/*.sh: Docker engine + Compose v2, PostgreSQL, ...), build the
# local base images, then run ruff, mypy and the whole pytest suite (2 workers).
#   bash scripts/test.sh [--no-services] [pytest arguments...]
# --no-services skips the service scripts for a quick run on a dev machine; tests that need
# a missing service then skip, except with CI=true, where a missing service is a failure.
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
if ((!services)) && [[ ${CI:-} == true ]]; then
  log "--no-services with CI=true: CI installs every service, nothing may skip"
  exit 2
fi

timings=()
phase_name="" phase_start=$SECONDS
phase() {
  [[ -n $phase_name ]] && timings+=("$(printf '%-24s %4d s' "$phase_name" $((SECONDS - phase_start)))")
  phase_name=$1 phase_start=$SECONDS
  [[ $1 == done ]] || log "── $1"
}
summary() {
  phase done
  log "timings:"
  printf '  %s\n' "${timings[@]}" "$(printf '%-24s %4d s' total "$SECONDS")" >&2
}
trap summary EXIT

phase "venv + install"
ensure_venv
# Signed approvals sign and verify with OpenSSH's ssh-keygen, as git does (a tool, not a service).
have ssh-keygen || apt_install openssh-client

if ((services)); then
  for script in scripts/services/*.sh; do
    phase "service ${script##*/}"
    line=$(bash "$script" | tail -n 1)
    [[ $line == export\ * ]] || { log "$script did not end with an export line"; exit 1; }
    eval "$line"
  done
fi
if docker info >/dev/null 2>&1; then
  phase "base images"
  bash scripts/images.sh
fi

# All three checks run, so one report shows every kind of failure; any one fails the run.
failed=()
phase "ruff"
.venv/bin/ruff check . || failed+=(ruff)
phase "mypy"
.venv/bin/mypy || failed+=(mypy)
phase "pytest"
rc=0
.venv/bin/pytest -n 2 -p no:cacheprovider "${args[@]}" || rc=$?
if ((rc == 5)); then
  log "pytest collected no tests: that is a failure too"
fi
((rc == 0)) || failed+=("pytest (exit $rc)")

if ((${#failed[@]})); then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all green"
