#!/usr/bin/env bash
# THE demo command (README.md): set up .venv with envplane, then show examples/finance-report
# on the ladder: its environments, the staging plan and Compose file, env local (processes,
# SQLite, no Docker), and, when a Docker engine answers, env docker and a PR preview behind
# the local proxy, verified and torn down. Steps whose command this envplane lacks are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
ROOT=$PWD

ensure_venv
export PATH="$ROOT/.venv/bin:$PATH"
cd examples/finance-report

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
get() { say "curl $1"; curl -fsS "$1"; echo; }
# Typer exits 2 for a command it does not know.
has() { envplane "$@" --help >/dev/null 2>&1; }
skip() { printf '\n(skipped: this envplane has no `envplane %s`)\n' "$*"; }

# The host port of SERVICE's container port TARGET in ENV, from the plan (no hard-coded ports).
port_of() {
  envplane plan "$1" --json | python3 -c '
import json, sys
service, target = sys.argv[1], int(sys.argv[2])
for s in json.load(sys.stdin)["target"]["services"]:
    for p in s["ports"] if s["name"] == service else []:
        if p["target"] == target or p.get("compose") == target:
            print(p["published"])
            raise SystemExit
raise SystemExit(f"no port {target} for {service}")' "$2" "$3"
}

demo_plan() {
  if has envs; then run envplane envs; else skip envs; fi
  if has plan; then run envplane plan staging; else skip plan; fi
  if has render; then
    say "envplane render staging -o - | head -40"
    envplane render staging -o - | head -40
  else
    skip render
  fi
}

demo_local() {
  has up || { skip up; return 0; }
  local backend frontend pid
  backend=$(port_of local backend 8000) frontend=$(port_of local frontend 8080)
  say "envplane up local &   (processes, SQLite under .envplane/data/local; Ctrl-C stops it)"
  envplane up local --timeout 30 &
  pid=$!
  if ! wait_for 30 curl -fsS "http://127.0.0.1:$frontend/api/health"; then
    log "env local did not come up"; kill -INT "$pid"; wait "$pid" || true; return 1
  fi
  get "http://127.0.0.1:$frontend/api/health"
  say "curl -X POST http://127.0.0.1:$frontend/api/reports -d '{\"title\": \"Q3 close\", \"amount\": 1250.5}'"
  curl -fsS -X POST -d '{"title": "Q3 close", "amount": 1250.5}' "http://127.0.0.1:$frontend/api/reports"; echo
  get "http://127.0.0.1:$backend/api/reports"
  kill -INT "$pid"
  wait "$pid" || true
}

PR_DATA=$PWD/.envplane/data/finance-report-pr-7   # a preview's default data path is a server's /data/test

# Runs on any exit once Docker is in use, so a failed step never leaves the demo's envs behind.
teardown_docker() {
  trap - EXIT
  if has preview && has proxy; then
    run envplane preview down --pr 7 || true   # at the data path recorded by its first up
    run envplane proxy down || true
  fi
  run envplane down docker --purge || true
}

# The example's containers get their own database, bucket and Redis user per instance:
# start (or reuse) a PostgreSQL, a SeaweedFS S3 server and a Redis on this host, and hand
# envplane their admin connections.
start_servers() {
  local line
  for name in postgres seaweedfs redis; do
    line=$(bash "$ROOT/scripts/services/$name.sh" | tail -n 1)
    eval "$line"
  done
  export ENVPLANE_POSTGRES_URL=$ENVPLANE_TEST_POSTGRES_URL ENVPLANE_REDIS_URL=$ENVPLANE_TEST_REDIS_URL
  export ENVPLANE_S3_ENDPOINT=$ENVPLANE_TEST_S3_ENDPOINT ENVPLANE_S3_ACCESS_KEY=$ENVPLANE_TEST_S3_ACCESS_KEY
  export ENVPLANE_S3_SECRET_KEY=$ENVPLANE_TEST_S3_SECRET_KEY
}

demo_docker() {
  bash "$ROOT/scripts/services/docker.sh" | tail -n 1 >/dev/null   # Compose v2 plugin if missing
  bash "$ROOT/scripts/images.sh"                                   # the base images, no registry
  start_servers
  trap teardown_docker EXIT
  run envplane up docker
  get "http://127.0.0.1:$(port_of docker backend 8000)/api/health"
  if has preview && has proxy; then
    run envplane proxy up
    say "DATA_PATH=\$PWD/.envplane/data/finance-report-pr-7 envplane preview up --pr 7"
    DATA_PATH=$PR_DATA envplane preview up --pr 7
    say "curl -H 'Host: report-pr-7.localhost' http://127.0.0.1:8088/api/health"
    curl -fsS -H 'Host: report-pr-7.localhost' http://127.0.0.1:8088/api/health; echo
  fi
  if has status; then run envplane status; fi
  # verify looks at the whole host: another app's leftovers are shown, not fatal to the demo.
  if has verify; then run envplane verify || printf '(verify found the violations above)\n'; fi
  teardown_docker
  if has audit; then
    run envplane audit log
    run envplane audit verify
  fi
}

# Releases: a copy of the example in its own git repository, so `release` has commits and
# tags to count from; staging and production keep their data in the copy. Two people, alice
# (who promotes) and bob (who approves), each get an SSH key; the spec's approvers file
# (git's allowed-signers format) lists both, and each signs with their own key.
demo_release() {
  has release || { skip release; return 0; }
  have ssh-keygen || apt_install openssh-client
  local work keys
  work=$(mktemp -d) keys=$work/keys
  cp -r . "$work/app" && rm -rf "$work/app/.envplane"
  # p95 of 1 s, not the 200 ms default: a busy 2-core demo machine measured 250-750 ms.
  printf 'environments:\n  staging: {data_path: %s}\n  production: {data_path: %s, drain_seconds: 1, gates: {p95_ms: 1000}}\n' \
    "$work/data/finance-report/staging" "$work/data/finance-report/production" >>"$work/app/envplane.yaml"
  mkdir -p "$keys"
  for person in alice bob; do
    ssh-keygen -q -t ed25519 -N '' -C "$person" -f "$keys/$person"
    printf '%s %s\n' "$person" "$(cut -d' ' -f1,2 "$keys/$person.pub")" >>"$work/app/approvers"
  done
  printf 'approvers: approvers\n' >>"$work/app/envplane.yaml"
  (cd "$work/app" && git init -q && git add -A &&
    git -c user.name=dev -c user.email=dev@example.com commit -qm "the app" && git tag v1.0.44)
  pushd "$work/app" >/dev/null
  trap 'teardown_release' EXIT
  run envplane proxy up
  run envplane release staging
  run cat approvers
  say "envplane promote v1.0.45 --to production --key \$keys/alice   (refused: nobody else approved)"
  envplane promote v1.0.45 --to production --key "$keys/alice" || true
  say "ENVPLANE_USER=bob envplane approve v1.0.45 --to production --key \$keys/alice   (a name proves nothing: alice's key makes it alice's)"
  ENVPLANE_USER=bob envplane approve v1.0.45 --to production --key "$keys/alice"
  say "envplane approve v1.0.45 --to production --key \$keys/bob   (bob signs with his own key)"
  envplane approve v1.0.45 --to production --key "$keys/bob"
  say "envplane promote v1.0.45 --to production --key \$keys/alice"
  envplane promote v1.0.45 --to production --key "$keys/alice"
  say "curl -H 'Host: report.example.com' http://127.0.0.1:8088/api/health"
  curl -fsS -H 'Host: report.example.com' http://127.0.0.1:8088/api/health; echo
  run envplane releases
  run envplane gates v1.0.45
  run envplane audit verify
  teardown_release
  popd >/dev/null
  rm -rf "$work"
}

teardown_release() {
  trap - EXIT
  run envplane down production --purge --yes || true
  run envplane down staging --purge --yes || true
  run envplane proxy down || true
}

demo_plan
# The example's state from a demo run by an envplane before keyed audit logs: key its log once
# (a no-op on a fresh checkout). With your own apps, run `envplane audit verify` first.
if has audit && envplane audit key --help >/dev/null 2>&1; then envplane audit key >/dev/null; fi
demo_local
if ! has up; then
  printf '\nThis envplane cannot run environments yet: the demo stops after the plan.\n'
elif ! docker info >/dev/null 2>&1; then
  printf '\nNo Docker engine answers here: the demo stops after the local env.\n'
  printf 'Start one (bash scripts/services/docker.sh) to see the docker and preview envs too.\n'
else
  demo_docker
  demo_release
fi
