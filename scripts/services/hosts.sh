#!/usr/bin/env bash
# What envplane's remote-host tests need to make their own test hosts (scripts/hosts.sh):
# OpenSSH's server (each host runs its own sshd), Debian's docker-registry (the registry
# way of sending images), htpasswd (its credentials) and busybox-static. It starts no
# host: each test session makes a set of its own and removes it (tests/hosts_kit.py).
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh

missing=()
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
have docker-registry || missing+=(docker-registry)
have htpasswd || missing+=(apache2-utils)
have busybox || missing+=(busybox-static)
have nsenter || missing+=(util-linux)
have ip || missing+=(iproute2)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt)"
  # The packages would start a machine-wide sshd and registry: the test hosts run their own,
  # so nothing starts here (policy-rc.d says no while apt runs, when none says so already).
  placed=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && placed=1
  fi
  rc=0
  apt_install --no-install-recommends "${missing[@]}" || rc=$?
  ((placed)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || exit "$rc"
fi
echo "export ENVPLANE_TEST_HOSTS=1"
