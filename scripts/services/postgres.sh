#!/usr/bin/env bash
# Start a local PostgreSQL for envplane's integration tests. Safe to run again.
# The last line printed is an `export` that the test runner sources.
set -euo pipefail

PG_USER="${ENVPLANE_TEST_PG_USER:-envplane}"
PG_PASSWORD="${ENVPLANE_TEST_PG_PASSWORD:-envplane}"
PG_DB="${ENVPLANE_TEST_PG_DB:-envplane_test}"
PG_PORT="${ENVPLANE_TEST_PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_if_missing() {
  if command -v pg_ctlcluster >/dev/null 2>&1; then return; fi
  log "installing PostgreSQL (apt)"
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

cluster_version() {
  pg_lsclusters --no-header | awk '$2 == "main" {print $1; exit}'
}

start_cluster() {
  local version
  version="$(cluster_version)"
  if [ -z "$version" ]; then
    log "no 'main' cluster found"; exit 1
  fi
  if ! pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q online; then
    log "starting cluster $version/main"
    as_root pg_ctlcluster "$version" main start >&2
  fi
  for _ in $(seq 1 30); do
    if as_root su postgres -c "pg_isready -q -p $PG_PORT"; then return; fi
    sleep 1
  done
  log "PostgreSQL did not become ready on port $PG_PORT"; exit 1
}

psql_admin() {
  as_root su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -qtA $*"
}

create_role_and_db() {
  # CREATEDB/CREATEROLE: provisioning tests create a database and role per env instance.
  if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'\"")" != "1" ]; then
    log "creating role $PG_USER"
    psql_admin "-c \"CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB CREATEROLE\""
  else
    psql_admin "-c \"ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB CREATEROLE\""
  fi
  # Purging an instance ends its database's sessions (DROP DATABASE ... WITH (FORCE)).
  psql_admin "-c \"GRANT pg_signal_backend TO $PG_USER\""
  if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = '$PG_DB'\"")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin "-c \"CREATE DATABASE $PG_DB OWNER $PG_USER\""
  fi
}

# Containers reach this server as host.docker.internal (the Docker bridge's gateway):
# listen beyond loopback and let Docker's address pools in, with passwords (scram).
open_to_containers() {
  local version conf_dir hba changed=0 reload=0
  version="$(cluster_version)"
  conf_dir="/etc/postgresql/$version/main"
  hba="$conf_dir/pg_hba.conf"
  if ! grep -q "^listen_addresses = '\*'" "$conf_dir/conf.d/envplane.conf" 2>/dev/null; then
    mkdir -p "$conf_dir/conf.d"
    echo "listen_addresses = '*'" >"$conf_dir/conf.d/envplane.conf"
    changed=1
  fi
  # Docker's own default pools, the pool scripts/services/docker.sh gives dockerd
  # (10.200/16), and the test hosts' containers (scripts/hosts.sh: 10.231.N.0/24).
  # A pg_hba line needs only a reload, which drops no connection.
  local net
  for net in 172.16.0.0/12 192.168.0.0/16 10.200.0.0/16 10.231.0.0/16; do
    if ! grep -q "^host all all $net " "$hba"; then
      echo "host all all $net scram-sha-256 # envplane containers $net" >>"$hba"
      reload=1
    fi
  done
  if ((changed)); then
    log "opening PostgreSQL to containers (listen on all addresses, scram from Docker networks)"
    as_root pg_ctlcluster "$version" main restart >&2
  elif ((reload)); then
    as_root pg_ctlcluster "$version" main reload >&2
  fi
}

install_if_missing
start_cluster
open_to_containers
start_cluster
create_role_and_db
echo "export ENVPLANE_TEST_POSTGRES_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
