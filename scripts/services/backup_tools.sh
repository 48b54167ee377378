#!/usr/bin/env bash
# The tools backups and restores run (issue 13): pg_dump/pg_restore (PostgreSQL 15 client),
# zstd, age, GNU tar, and pgBackRest for point-in-time recovery. Safe to run again.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

missing=()
have pg_dump || missing+=(postgresql-client-15)
have zstd || missing+=(zstd)
have age || missing+=(age)
have pgbackrest || missing+=(pgbackrest)
have openssl || missing+=(openssl)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
log "$(pg_dump --version), $(zstd --version | head -1), age $(age --version), $(pgbackrest version)"
echo "export ENVPLANE_TEST_BACKUP_TOOLS=1"
