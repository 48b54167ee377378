#!/usr/bin/env bash
# hosts.sh - throwaway "test hosts" on one Linux machine: envplane's remote hosts in tests
# (tests/hosts_kit.py starts a set per test session; README: Hosts and engines).
# Taken from ../shared/recipes/test-hosts (verified there, NOTES.md); owned here now.
#
# Each host N is a set of namespaces of this machine:
#   network ns  ephostN   eth0 = 10.231.0.(10+N)/24 on a private bridge; NO default route,
#                         so nothing in it can send a packet anywhere but 10.231.0.0/24
#   mount ns    own /run (= /run/ephostN seen from the machine), /etc/docker, /etc/ssh,
#               /etc/hosts, /var/lib/docker, and private /root /home /tmp /var/tmp /srv /opt
#               (everything else, e.g. /usr and /etc, is the machine's, read-write)
#   UTS ns      hostname ephostN
#   cgroup      /ephostN/host (daemons) and /ephostN/<container> (containers)
# and runs its own sshd (key-only root login) and its own dockerd (+ its own containerd).
# Inside a host everything sits at the default paths (/var/run/docker.sock, /etc/docker/daemon.json,
# /var/lib/docker, /etc/ssh/sshd_config, /root/.ssh/authorized_keys),
# so `DOCKER_HOST=ssh://root@10.231.0.11 docker ...` (remote `docker system dial-stdio`),
# `ssh root@10.231.0.11 docker ps` and containers that mount /var/run/docker.sock all reach
# host 1's engine, with no environment tricks.
# The machine reaches the hosts through the veth `ephost0` (10.231.0.1/24); the bridge itself
# lives in a "switch" namespace (ephost-sw), so the machine's own firewall is never touched.
# Outside STATE, up creates only namespaces + links, cgroups /PREFIXn, /run/PREFIXn, /run/hosts.sh-*
# bookkeeping, /etc/ssh/ssh_config.d/PREFIX.conf and (registry) /etc/docker/certs.d/10.231.0.1:5000;
# down removes all of it.
# Tested on Debian 12 (docker.io 20.10, cgroup v1 hybrid, kernel without IPVS): see NOTES.md.
#
# Usage (root):
#   hosts.sh up [N]          create/repair hosts 1..N (default 3); idempotent
#   hosts.sh down            stop everything this script started, delete namespaces, links,
#                            cgroups, state and data; idempotent; verifies nothing is left
#   hosts.sh status          one line per host
#   hosts.sh env             shell exports for tests (EPHOST_HOSTS, EPHOST_KEY, PATH wrapper, ...)
#   hosts.sh ssh N [CMD...]  ssh to host N with the test key
#   hosts.sh exec N CMD...   run CMD inside host N's namespaces directly (no ssh)
#   hosts.sh stop-engine N [--kill]   stop host N's dockerd (SIGTERM, or SIGKILL: a crash)
#   hosts.sh start-engine N           start it again
#   hosts.sh registry-up     docker-registry (Debian package) on 10.231.0.1:5000 with a self-signed
#                            certificate, trusted by every host (its /etc/docker/certs.d) and by
#                            the machine's engine (/etc/docker/certs.d/10.231.0.1:5000/ca.crt,
#                            removed by down), so `docker push 10.231.0.1:5000/x` works from both
#   hosts.sh registry-down
#   hosts.sh mem             memory (cgroup) of each host's daemons and containers
#   hosts.sh image [REF]     import a ~2 MB busybox image (Debian busybox-static) into the
#                            machine's engine as REF (default ephost/busybox:1; not removed by down)
#
# Environment:
#   EPHOST_PREFIX   (ephost)        names: netns/hostname PREFIXn, PREFIX-sw, link PREFIX0, /run/PREFIXn
#   EPHOST_NET      (10.231.0)      first three octets of the /24; gateway .1, host N = .(10+N)
#   EPHOST_STATE    (/tmp/PREFIX)   keys, configs, logs, docker data roots (deleted by down)
#   EPHOST_PRIVATE_DIRS ("/root /home /tmp /var/tmp /srv /opt")  directories each host gets empty
#                                   and of its own (STATE/hN/fs/...); "" shares them with the machine
#   EPHOST_KEY      (STATE/id_ed25519)  client key; kept by down when outside STATE
#   EPHOST_SSH_GLOBAL (0)           1: also write /etc/ssh/ssh_config.d/PREFIX.conf so plain `ssh`
#                                   and `docker -H ssh://root@IP` work for every process;
#                                   0: only STATE/ssh_config and the STATE/bin/ssh wrapper
#   EPHOST_REGISTRY (0)             1: `up` also starts the registry
#   EPHOST_REGISTRY_PORT (5000)
#   EPHOST_REGISTRY_AUTH ("")       USER:PASSWORD: the registry asks for them (htpasswd, bcrypt)
#   EPHOST_REGISTRY_TLS (1)         0: plain HTTP; hosts still pull (insecure-registries), but the
#                                   machine's engine cannot push (it only trusts 127.0.0.0/8)
#   EPHOST_REGISTRY_TRUST_MACHINE (1)  0: do not write /etc/docker/certs.d/<registry>/ca.crt
#   EPHOST_SSH_MUX (0)              1: ssh ControlMaster: a `docker -H ssh://` call takes ~0.04 s
#                                   instead of ~0.25 s (masters are closed by down)
#   EPHOST_DOCKERD_WAIT (60)        seconds to wait for an engine to answer
#   EPHOST_STOP_WAIT (10)           seconds stop-engine (and a graceful down) wait after SIGTERM
#   EPHOST_GRACEFUL_DOWN (0)        1: down sends SIGTERM to dockerd first (slower: containers that
#                                   ignore SIGTERM cost 10 s); default SIGKILL, then a sweep
set -euo pipefail

P=${EPHOST_PREFIX:-ephost}
NET=${EPHOST_NET:-10.231.0}
STATE=${EPHOST_STATE:-/tmp/$P}
KEY=${EPHOST_KEY:-$STATE/id_ed25519}
SSH_GLOBAL=${EPHOST_SSH_GLOBAL:-0}
SSH_MUX=${EPHOST_SSH_MUX:-0}
REG_PORT=${EPHOST_REGISTRY_PORT:-5000}
PRIVATE_DIRS=${EPHOST_PRIVATE_DIRS-/root /home /tmp /var/tmp /srv /opt}
DOCKERD_WAIT=${EPHOST_DOCKERD_WAIT:-60}
STOP_WAIT=${EPHOST_STOP_WAIT:-10}
SW="$P-sw"            # switch namespace (bridge br0)
GWIF="${P}0"          # machine-side veth
GW="$NET.1"
SSH_DROPIN="/etc/ssh/ssh_config.d/$P.conf"
# machine-wide bookkeeping shared by every set (prefix) of hosts: what the last `down` removes
SETS=/run/hosts.sh-sets                       # one file per set that is up
CREATED_DIRS=/run/hosts.sh-created-dirs       # mount points hosts.sh had to create
CERTS_MARK=/run/hosts.sh-created-docker-certs.d
MARK="$STATE/.ephost-state"
SELF=$(readlink -f "$0")

CMD=""
die()  { echo "hosts.sh: error: $*" >&2; [ "$CMD" != up ] || echo "hosts.sh: (what is up stays up for inspection: $STATE/h*/*.log, /run/${P}N/sshd.log; 'hosts.sh down' removes it)" >&2; exit 1; }
warn() { echo "hosts.sh: warning: $*" >&2; }
log()  { echo "hosts.sh: $*" >&2; }
now()  { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2fs", b-a}'; }

ip_of()  { echo "$NET.$((10 + $1))"; }
name_of(){ echo "$P$1"; }
run_of() { echo "/run/$P$1"; }        # the host's /run, seen from the machine
dir_of() { echo "$STATE/h$1"; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
need_cmds() {
  local c missing=()
  for c in ip nsenter unshare ssh ssh-keygen dockerd docker iptables awk flock curl ps; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ -x /usr/sbin/sshd ] || missing+=("/usr/sbin/sshd (apt-get install openssh-server)")
  [ ${#missing[@]} = 0 ] || die "missing commands: ${missing[*]}"
}
check_names() {
  # ends with a letter, so that no set's host names (PREFIX + number) can match another set's
  [[ "$P" =~ ^[a-z][a-z0-9]{0,10}[a-z]$ ]] || die "EPHOST_PREFIX must match [a-z][a-z0-9]{0,10}[a-z] (2-12 chars, ending with a letter)"
  [[ "$NET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "EPHOST_NET must be three octets, e.g. 10.231.0"
  # down deletes STATE: it must be a directory of its own
  [[ "$STATE" =~ ^/[A-Za-z0-9._-]+/[A-Za-z0-9._/-]+$ ]] && [[ "$STATE" != *..* ]] || die "EPHOST_STATE must be an absolute path of at least two components, e.g. /tmp/ephost"
  case "${STATE%/}" in /var/lib|/var/tmp|/var/log|/var/cache|/usr/local|/usr/share|/usr/lib) die "EPHOST_STATE=$STATE is a system directory" ;; esac
  if [[ "${STATE%/}" =~ ^/home/[^/]+$ ]]; then die "EPHOST_STATE=$STATE is a home directory"; fi
  local x
  for x in $PRIVATE_DIRS; do
    case "$x" in /|/usr|/usr/*|/etc|/bin|/sbin|/lib|/lib32|/lib64|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*|/var|/var/lib|/var/run|/boot)
      die "EPHOST_PRIVATE_DIRS: $x cannot be private (an empty directory would replace it)" ;; esac
  done
}
# fd 9 holds the lock; every daemon is started with 9>&- so that it does not inherit it
lock() { mkdir -p "$STATE"; exec 9>"$STATE/.lock"; flock -w 120 9 || die "another hosts.sh holds $STATE/.lock (fuser -v $STATE/.lock)"; }

# ---------------------------------------------------------------- cgroups
cg_roots() {  # hierarchies used to track (and measure) everything a host runs
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup   # pure cgroup v2
  else local c; for c in memory pids; do [ -f "/sys/fs/cgroup/$c/cgroup.procs" ] && echo "/sys/fs/cgroup/$c"; done; fi
}
cg_procs() {  # every pid in host $1's cgroup subtree
  local r
  for r in $(cg_roots); do
    if [ -d "$r/$(name_of "$1")" ]; then find "$r/$(name_of "$1")" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -un
}
cg_mounts() {  # every cgroup (v1) / cgroup2 mount point: docker creates /PREFIXn/<id> in all of them
  awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5; break } }' /proc/self/mountinfo
}
cg_rmdir() {
  local r
  for r in $(cg_mounts); do
    if [ -d "$r/$(name_of "$1")" ]; then find "$r/$(name_of "$1")" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  return 0
}

# ---------------------------------------------------------------- processes
ns_ino() { stat -L -c %i "$1" 2>/dev/null; }        # inode of an nsfs file
pid_ns() { readlink "/proc/$1/ns/$2" 2>/dev/null | tr -dc 0-9; }
anchor_pid() {  # pid of host $1's anchor, only if it really sits in that host's netns
  local f pid; f="$(run_of "$1")/anchor.pid"
  [ -s "$f" ] || return 1
  pid=$(cat "$f"); [ -d "/proc/$pid" ] || return 1
  [ "$(pid_ns "$pid" net)" = "$(ns_ino "/run/netns/$(name_of "$1")")" ] || return 1
  echo "$pid"
}
host_pid() {  # host $1's daemon pid from its pid file ($2 = sshd.pid|docker.pid), validated by netns
  local f pid; f="$(run_of "$1")/$2"
  [ -s "$f" ] || return 1
  pid=$(cat "$f"); [ -d "/proc/$pid" ] || return 1
  [ "$(pid_ns "$pid" net)" = "$(ns_ino "/run/netns/$(name_of "$1")")" ] || return 1
  echo "$pid"
}
host_all_pids() {  # everything host $1 runs: its cgroup subtree + anything in its net/mnt ns, + descendants
  local i=$1 netino mntino a p seeds
  netino=$(ns_ino "/run/netns/$(name_of "$i")" || true)
  a=$(anchor_pid "$i" || true); mntino=""; [ -n "$a" ] && mntino=$(pid_ns "$a" mnt)
  seeds=$(cg_procs "$i")
  if [ -n "$netino$mntino" ]; then
    # one find over /proc/PID/ns instead of a readlink per process
    seeds="$seeds $(find /proc/[0-9]*/ns -maxdepth 1 \( -name net -lname "net:\[${netino:-none}\]" -o -name mnt -lname "mnt:\[${mntino:-none}\]" \) \
      -printf '%h\n' 2>/dev/null | sed -n 's#^/proc/\([0-9]*\)/ns$#\1#p' | tr '\n' ' ')"
  fi
  [ -n "${seeds// /}" ] || return 0
  # add descendants (container processes whose shim is gone get reparented, but stay in the cgroup)
  ps -e -o pid=,ppid= | awk -v s="$seeds" '
    BEGIN { n = split(s, a, /[ \n]+/); for (k = 1; k <= n; k++) if (a[k] != "") keep[a[k]] = 1 }
    { par[$1] = $2; pids[++c] = $1 }
    END { do { ch = 0; for (k = 1; k <= c; k++) { p = pids[k]; if (!(p in keep) && (par[p] in keep)) { keep[p] = 1; ch = 1 } } } while (ch)
          for (p in keep) print p }' | sort -un
}
wait_gone() {  # wait_gone PID SECONDS
  local pid=$1 t=$(( $2 * 10 ))
  while [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
  [ ! -d "/proc/$pid" ] || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]
}

# hexec N CMD...: run CMD in host N's namespaces and cgroup (HEXEC_EXEC=1: replace this process)
hexec() {
  local i=$1 a r cgs=""; shift
  a=$(anchor_pid "$i") || die "host $i is not up (no anchor process); run: hosts.sh up"
  for r in $(cg_roots); do cgs="$cgs $r/$(name_of "$i")/host/cgroup.procs"; done
  set -- nsenter -t "$a" -n -m -u -- /bin/sh -c \
    'for f in '"$cgs"'; do [ -f "$f" ] && echo $$ > "$f"; done; cd /; exec "$@"' sh "$@"
  if [ "${HEXEC_EXEC:-0}" = 1 ]; then exec "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- network
net_up() {
  if ! [ -e "/run/netns/$SW" ]; then
    # refuse to shadow a subnet the machine already uses
    if ip -4 -o addr show | awk '{print $2, $4}' | grep -v "^$GWIF " | grep " $NET\.">/dev/null ; then
      die "$NET.0/24 is already used on this machine: $(ip -4 -o addr show | grep " $NET\." | awk '{print $2, $4}' | head -3)"
    fi
    ip netns add "$SW"
  fi
  # no IPv6 anywhere on the test network (no link-local chatter, nothing to route)
  nsenter --net="/run/netns/$SW" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
  ip -n "$SW" link set lo up
  ip -n "$SW" link show br0 >/dev/null 2>&1 || ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  if ! ip link show "$GWIF" >/dev/null 2>&1; then
    ip -n "$SW" link del up0 2>/dev/null || true
    ip link add "$GWIF" type veth peer name up0 netns "$SW"
  fi
  ip -n "$SW" link set up0 master br0 up
  ip addr show dev "$GWIF" | grep " $GW/24 " >/dev/null || ip addr add "$GW/24" dev "$GWIF"
  # the machine never forwards what comes from the test network (even if a test adds a default
  # route inside a host), and speaks no IPv6 on it; both are settings of this one link
  echo 0 > "/proc/sys/net/ipv4/conf/$GWIF/forwarding"
  echo 1 > "/proc/sys/net/ipv6/conf/$GWIF/disable_ipv6" 2>/dev/null || true
  ip link set "$GWIF" up
}
host_net_up() {
  local i=$1 n; n=$(name_of "$1")
  [ -e "/run/netns/$n" ] || ip netns add "$n"
  ip -n "$n" link set lo up
  if ! ip -n "$n" link show eth0 >/dev/null 2>&1; then
    ip -n "$SW" link del "h$i" 2>/dev/null || true
    ip -n "$SW" link add "h$i" type veth peer name eth0 netns "$n"
  fi
  ip -n "$SW" link set "h$i" master br0 up
  ip -n "$n" addr show dev eth0 | grep " $(ip_of "$i")/24 " >/dev/null || ip -n "$n" addr add "$(ip_of "$i")/24" dev eth0
  nsenter --net="/run/netns/$n" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6' 2>/dev/null || true
  ip -n "$n" link set eth0 up
  # deliberately no default route: anything not in $NET.0/24 is "Network is unreachable"
}

# ---------------------------------------------------------------- per-host files
private_root() { case " $PRIVATE_DIRS " in *" /root "*) return 0 ;; *) return 1 ;; esac; }
host_files() {
  local i=$1 N=$2 d r n k x
  d=$(dir_of "$i"); r=$(run_of "$i"); n=$(name_of "$i")
  mkdir -p "$d/etc-docker" "$d/etc-ssh" "$d/docker" "$d/.cg" "$r"
  chmod 755 "$r"
  for x in $PRIVATE_DIRS; do
    [[ "$x" =~ ^/[A-Za-z0-9._/-]+$ ]] && [ "$x" != / ] || die "EPHOST_PRIVATE_DIRS: bad path '$x'"
    mkdir -p "$d/fs$x"
    case "$x" in /tmp|/var/tmp) chmod 1777 "$d/fs$x" ;; /root) chmod 700 "$d/fs$x" ;; esac
  done
  # sshd of the host: its own /etc/ssh (config, host key), root's own authorized_keys
  [ -f "$d/etc-ssh/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$n" -f "$d/etc-ssh/ssh_host_ed25519_key"
  for x in ssh_config moduli; do [ -f "$d/etc-ssh/$x" ] || cp "/etc/ssh/$x" "$d/etc-ssh/$x" 2>/dev/null || true; done
  local akf="AuthorizedKeysFile .ssh/authorized_keys" strict="StrictModes yes"
  if private_root; then
    mkdir -p -m 700 "$d/fs/root/.ssh"; cp "$KEY.pub" "$d/fs/root/.ssh/authorized_keys"; chmod 600 "$d/fs/root/.ssh/authorized_keys"
    # the docker CLI plugins of the machine's root (compose), for `ssh host docker compose ...`
    if [ -d /root/.docker/cli-plugins ]; then
      mkdir -p "$d/fs/root/.docker/cli-plugins"
      for x in /root/.docker/cli-plugins/docker-*; do
        [ -f "$x" ] && { ln -f "$x" "$d/fs/root/.docker/cli-plugins/" 2>/dev/null || cp "$x" "$d/fs/root/.docker/cli-plugins/"; }
      done
    fi
  else
    # the machine's /root: the key sits in STATE, under world-writable /tmp, which StrictModes rejects
    akf="AuthorizedKeysFile $STATE/authorized_keys"; strict="StrictModes no"
  fi
  cat > "$d/etc-ssh/sshd_config" <<EOF
# sshd of test host $n (hosts.sh); inside the host this is /etc/ssh/sshd_config
ListenAddress $(ip_of "$i"):22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
$akf
$strict
PasswordAuthentication no
KbdInteractiveAuthentication no
# root is often locked ('!' in /etc/shadow): with UsePAM no, sshd refuses such an account even
# for keys; with PAM the key is enough
UsePAM yes
UseDNS no
PrintMotd no
X11Forwarding no
# docker compose / parallel tests open many connections at once (default 10:30:100 drops them)
MaxStartups 200:30:400
MaxSessions 200
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  # dockerd of the host: default paths inside the host (/var/run/docker.sock, /var/lib/docker)
  if [ ! -f "$d/etc-docker/daemon.json" ]; then
    cat > "$d/etc-docker/daemon.json" <<EOF
{
  "cgroup-parent": "/$n",
  "insecure-registries": ["$GW:$REG_PORT"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
EOF
  fi
  registry_trust_host "$i"
  { echo "127.0.0.1 localhost"; echo "$GW $P-gw"; for k in $(seq 1 "$N"); do echo "$(ip_of "$k") $(name_of "$k")"; done; } > "$d/hosts.new"
  # rewrite in place: the file is bind-mounted into the host, a rename would detach it
  cmp -s "$d/hosts.new" "$d/hosts" 2>/dev/null || cat "$d/hosts.new" > "$d/hosts"; rm -f "$d/hosts.new"
}

mountpoint_dirs() {  # every directory the anchor mounts over; created (and recorded) when missing
  local x
  for x in /etc/docker /etc/ssh /var/lib/docker $PRIVATE_DIRS; do
    if [ ! -d "$x" ]; then mkdir -p "$x"; echo "$x" >> "$CREATED_DIRS"; fi
  done
}

anchor_up() {
  local i=$1 d r n a t
  d=$(dir_of "$i"); r=$(run_of "$i"); n=$(name_of "$i")
  anchor_pid "$i" >/dev/null && return 0
  rm -f "$r/anchor.pid"
  local cgs="" c
  for c in $(cg_roots); do mkdir -p "$c/$n/host"; cgs="$cgs $c/$n/host/cgroup.procs"; done
  # The anchor holds the host's mount + UTS namespaces. It is entered with nsenter --net (NOT
  # `ip netns exec`, which remounts /sys and loses /sys/fs/cgroup, so dockerd cannot start).
  local binds="" x
  for x in $PRIVATE_DIRS; do binds="$binds
mount -c --bind fs$x $x"; done
  cat > "$d/anchor.sh" <<EOF
set -e
for f in $cgs; do echo \$\$ > "\$f"; done
hostname $n
# drop this namespace's copies of mounts it must not pin: other network namespaces
# (/run/netns/*), the machine engine's mounts (/run/docker/netns/*, /var/lib/docker/...)
awk '{print \$5}' /proc/self/mountinfo | grep -E '^/run/|^/var/lib/docker(/|\$)' | sort -r |
  while read -r m; do umount -l "\$m" 2>/dev/null || true; done
# a sysfs of this network namespace, with the machine's cgroup hierarchies kept
mount --rbind /sys/fs/cgroup $d/.cg
umount -l /sys
mount -t sysfs sysfs /sys
mount --move $d/.cg /sys/fs/cgroup
# the host's own directories. Sources are relative to this directory and not canonicalized
# (mount -c), so they still resolve after /tmp (where STATE usually lives) is covered.
cd $d
mount -c --bind etc-docker /etc/docker
mount -c --bind etc-ssh /etc/ssh
mount -c --bind hosts /etc/hosts
mount -c --bind docker /var/lib/docker$binds
mount --bind $r /run
mkdir -p -m 0755 /run/sshd
cd /
echo \$\$ > /run/anchor.pid
exec sleep infinity
EOF
  mountpoint_dirs
  setsid nsenter --net="/run/netns/$n" -- unshare --mount --uts --propagation private -- /bin/sh "$d/anchor.sh" \
    </dev/null >"$d/anchor.log" 2>&1 9>&- &
  for t in $(seq 1 50); do anchor_pid "$i" >/dev/null && return 0; sleep 0.1; done
  die "host $i: anchor did not come up: $(tail -5 "$d/anchor.log")"
}

sshd_up() {
  local i=$1 d; d=$(dir_of "$i")
  host_pid "$i" sshd.pid >/dev/null && return 0
  rm -f "$(run_of "$i")/sshd.pid"
  hexec "$i" /usr/sbin/sshd -E /run/sshd.log 9>&- \
    || die "host $i: sshd failed: $(tail -5 "$(run_of "$i")/sshd.log")"
  # sshd daemonizes: the parent returns once it listens, the pid file follows a moment later
  local t; for t in $(seq 1 50); do host_pid "$i" sshd.pid >/dev/null && return 0; sleep 0.1; done
  die "host $i: sshd did not write its pid file: $(tail -5 "$(run_of "$i")/sshd.log")"
}

engine_ping() { curl -sf -m 2 --unix-socket "$(run_of "$1")/docker.sock" http://d/_ping >/dev/null 2>&1; }
dockerd_start() {
  local i=$1 d; d=$(dir_of "$i")
  host_pid "$i" docker.pid >/dev/null && return 0
  rm -f "$(run_of "$i")/docker.pid"
  echo "=== $(date -u +%FT%TZ) start" >> "$d/dockerd.log"
  # shellcheck disable=SC2016
  HEXEC_EXEC=1 setsid "$SELF" __hexec "$i" dockerd </dev/null >>"$d/dockerd.log" 2>&1 9>&- &
}
dockerd_wait() {
  local i=$1 t=$(( DOCKERD_WAIT * 10 ))
  while [ $t -gt 0 ]; do
    engine_ping "$i" && return 0
    sleep 0.1; t=$((t - 1))
  done
  die "host $i: dockerd did not answer on $(run_of "$i")/docker.sock within ${DOCKERD_WAIT}s; last log lines:
$(tail -15 "$(dir_of "$i")/dockerd.log")"
}

client_files() {  # known_hosts, ssh_config, wrapper, env for hosts 1..$1
  local N=$1 k
  : > "$STATE/known_hosts.new"
  for k in $(seq 1 "$N"); do echo "$(ip_of "$k") $(cut -d' ' -f1,2 "$(dir_of "$k")/etc-ssh/ssh_host_ed25519_key.pub")"; done >> "$STATE/known_hosts.new"
  # keep hosts beyond N that are still up
  for k in $(existing_hosts); do [ "$k" -gt "$N" ] && echo "$(ip_of "$k") $(cut -d' ' -f1,2 "$(dir_of "$k")/etc-ssh/ssh_host_ed25519_key.pub")"; done >> "$STATE/known_hosts.new" 2>/dev/null || true
  mv "$STATE/known_hosts.new" "$STATE/known_hosts"
  cat > "$STATE/ssh_config" <<EOF
# test hosts of hosts.sh ($STATE)
Host ${NET}.*
  User root
  IdentityFile $KEY
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  LogLevel ERROR
EOF
  if [ "$SSH_MUX" = 1 ]; then
    # ServerAlive*: a master whose host died (stop-engine is fine, a deleted host is not) gives up in ~6 s
    printf '  ControlMaster auto\n  ControlPath %s/cm-%%C\n  ControlPersist 120\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n' "$STATE" >> "$STATE/ssh_config"
  fi
  mkdir -p "$STATE/bin"
  printf '#!/bin/sh\n# ssh with the test-host config only (for PATH=%s/bin:$PATH)\nexec /usr/bin/ssh -F %s "$@"\n' "$STATE" "$STATE/ssh_config" > "$STATE/bin/ssh"
  chmod 755 "$STATE/bin/ssh"
  if [ "$SSH_GLOBAL" = 1 ]; then
    if [ -d /etc/ssh/ssh_config.d ] && grep -qs '^Include /etc/ssh/ssh_config.d/\*.conf' /etc/ssh/ssh_config; then
      { echo "# created by hosts.sh up ($STATE); removed by hosts.sh down"; cat "$STATE/ssh_config"; } > "$SSH_DROPIN"
    else
      warn "/etc/ssh/ssh_config does not include ssh_config.d/*.conf; use PATH=$STATE/bin:\$PATH"
    fi
  fi
  local hosts=""; for k in $(existing_hosts); do hosts="$hosts $(ip_of "$k")"; done
  cat > "$STATE/env" <<EOF
export EPHOST_HOSTS="${hosts# }"
export EPHOST_KEY="$KEY"
export EPHOST_SSH_CONFIG="$STATE/ssh_config"
export EPHOST_KNOWN_HOSTS="$STATE/known_hosts"
export EPHOST_GATEWAY="$GW"
export EPHOST_REGISTRY="$GW:$REG_PORT"
export EPHOST_REGISTRY_CA="$STATE/registry/cert.pem"   # when the registry runs with TLS
# the ssh wrapper makes 'docker -H ssh://root@IP' work without /etc/ssh/ssh_config.d:
export PATH="$STATE/bin:\$PATH"
EOF
}

existing_hosts() {  # host numbers that have any trace (netns, /run dir, state dir, cgroup)
  {
    ls /run/netns 2>/dev/null | sed -n "s/^$P\([0-9][0-9]*\)\$/\1/p" || true
    ls -d /run/"$P"[0-9]* 2>/dev/null | sed -n "s#^/run/$P\([0-9][0-9]*\)\$#\1#p" || true
    ls -d "$STATE"/h[0-9]* 2>/dev/null | sed -n "s#^$STATE/h\([0-9][0-9]*\)\$#\1#p" || true
    for r in $(cg_mounts); do ls -d "$r/$P"[0-9]* 2>/dev/null | sed -n "s#^$r/$P\([0-9][0-9]*\)\$#\1#p" || true; done
  } | sort -un
}

# ---------------------------------------------------------------- up / down
cmd_up() {
  local N=${1:-3} t0 t i
  [[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 50 ] || die "usage: hosts.sh up [N], 1 <= N <= 50"
  need_root; need_cmds; lock
  t0=$(now)
  touch "$MARK"
  mkdir -p "$SETS"; echo "$STATE" > "$SETS/$P"
  if [ ! -f "$KEY" ]; then mkdir -p "$(dirname "$KEY")"; ssh-keygen -q -t ed25519 -N '' -C "$P-test" -f "$KEY"; fi
  cp "$KEY.pub" "$STATE/authorized_keys"
  t=$(now); net_up; for i in $(seq 1 "$N"); do host_net_up "$i"; done; log "network: $(since "$t")"
  t=$(now); for i in $(seq 1 "$N"); do host_files "$i" "$N"; anchor_up "$i"; sshd_up "$i"; done; log "namespaces + sshd: $(since "$t")"
  t=$(now); for i in $(seq 1 "$N"); do dockerd_start "$i"; done
  for i in $(seq 1 "$N"); do dockerd_wait "$i"; done; log "dockerd x$N: $(since "$t")"
  client_files "$N"
  if [ "${EPHOST_REGISTRY:-0}" = 1 ]; then registry_up; fi
  t=$(now)
  local pids=() fail=0
  for i in $(seq 1 "$N"); do
    ( out=$(/usr/bin/ssh -F "$STATE/ssh_config" "root@$(ip_of "$i")" docker info --format '{{.Name}}' 2>&1 9>&-) \
        && [ "$out" = "$(name_of "$i")" ] || { echo "hosts.sh: error: host $i: ssh root@$(ip_of "$i") docker info gave: $out" >&2; exit 1; } ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  [ $fail = 0 ] || die "verification over ssh failed (see above)"
  log "ssh + docker check: $(since "$t")"
  log "up: $N host(s) ready in $(since "$t0"): $(for i in $(seq 1 "$N"); do printf '%s ' "$(ip_of "$i")"; done)"
  log "env: source $STATE/env   (key $KEY)"
}

host_down() {
  local i=$1 n d r p a
  n=$(name_of "$i"); d=$(dir_of "$i"); r=$(run_of "$i")
  # 1. dockerd + its containerd, by pid file. Default: SIGKILL, the host is thrown away anyway and
  #    everything dockerd would clean up (iptables, mounts, netns, vxlan) lives in the host's
  #    namespaces, which die with it. A graceful stop waits up to 10 s per container that ignores
  #    SIGTERM (sleep/httpd as PID 1). EPHOST_GRACEFUL_DOWN=1: SIGTERM, SIGKILL after STOP_WAIT.
  local sig=KILL; [ "${EPHOST_GRACEFUL_DOWN:-0}" = 1 ] && sig=TERM
  if p=$(host_pid "$i" docker.pid); then
    kill -"$sig" "$p" 2>/dev/null || true
    if [ "$sig" = TERM ]; then
      wait_gone "$p" "$STOP_WAIT" || { warn "host $i: dockerd $p ignored SIGTERM for ${STOP_WAIT}s, killing"; kill -KILL "$p" 2>/dev/null || true; }
    fi
  fi
  if p=$(host_pid "$i" docker/containerd/containerd.pid); then kill -"$sig" "$p" 2>/dev/null || true; fi
  # 2. ssh master connection (EPHOST_SSH_MUX=1), sshd, then the anchor
  if [ -f "$STATE/ssh_config" ] && ls "$STATE"/cm-* >/dev/null 2>&1; then
    /usr/bin/ssh -F "$STATE/ssh_config" -O exit "root@$(ip_of "$i")" >/dev/null 2>&1 || true
  fi
  if p=$(host_pid "$i" sshd.pid); then kill -TERM "$p" 2>/dev/null || true; fi
  if a=$(anchor_pid "$i"); then kill -TERM "$a" 2>/dev/null || true; fi
  # 3. sweep: anything left in the host's cgroup or namespaces (containers, shims, ssh sessions)
  local k left
  for k in $(seq 1 50); do
    left=$(host_all_pids "$i" | tr '\n' ' ')
    [ -n "${left// /}" ] || break
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.1
  done
  [ -z "${left// /}" ] || warn "host $i: processes still alive after SIGKILL: $left"
  cg_rmdir "$i"
  [ -e "/run/netns/$n" ] && { ip netns del "$n" 2>/dev/null || warn "host $i: ip netns del $n failed"; }
  ip -n "$SW" link del "h$i" 2>/dev/null || true
  # the host's mount namespace is gone, so its overlay mounts are gone with it
  rm -rf "$r" "$d" 2>/dev/null || { sleep 1; rm -rf "$r" "$d"; } || warn "host $i: could not remove $r or $d"
}

cmd_down() {
  need_root; check_names
  local t0 i pids=() hs
  t0=$(now)
  if [ -d "$STATE" ]; then lock; fi
  hs=$(existing_hosts)
  for i in $hs; do host_down "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || true; done
  registry_down
  rm -f "$SETS/$P"
  if rmdir "$SETS" 2>/dev/null || [ ! -d "$SETS" ]; then
    # the last set is gone: remove what hosts.sh created on the machine for all sets
    if [ -f "$CREATED_DIRS" ]; then
      # shellcheck disable=SC2046
      rmdir $(sort -ru "$CREATED_DIRS") 2>/dev/null || true; rm -f "$CREATED_DIRS"
    fi
    if [ -f "$CERTS_MARK" ] && rmdir /etc/docker/certs.d 2>/dev/null; then rm -f "$CERTS_MARK"; fi
  fi
  ip link del "$GWIF" 2>/dev/null || true
  [ -e "/run/netns/$SW" ] && ip netns del "$SW"
  if [ -f "$SSH_DROPIN" ] && grep -q "created by hosts.sh" "$SSH_DROPIN"; then rm -f "$SSH_DROPIN"; fi
  if [ -d "$STATE" ]; then
    if [ -f "$MARK" ] || [ -z "$(ls -A "$STATE" 2>/dev/null | grep -v '^\.lock$')" ]; then rm -rf "$STATE"
    else warn "$STATE has no $MARK marker; not deleting it"; fi
  fi
  # verify
  local left=""
  for i in $(existing_hosts); do left="$left host$i"; done
  [ -e "/run/netns/$SW" ] && left="$left netns:$SW"
  ip link show "$GWIF" >/dev/null 2>&1 && left="$left link:$GWIF"
  [ -f "$SSH_DROPIN" ] && left="$left $SSH_DROPIN"
  [ -n "$left" ] && die "down left things behind:$left"
  log "down: removed host(s) ${hs//$'\n'/ } in $(since "$t0")"
}

# ---------------------------------------------------------------- registry
REG="$GW:$REG_PORT"
REG_TLS=${EPHOST_REGISTRY_TLS:-1}
REG_TRUST_MACHINE=${EPHOST_REGISTRY_TRUST_MACHINE:-1}
MACHINE_CERTS="/etc/docker/certs.d/$REG"
registry_trust_host() {  # copy the registry CA into host $1's own /etc/docker/certs.d (read per pull, no restart)
  local c="$STATE/registry/cert.pem" t
  [ -f "$c" ] || return 0
  t="$(dir_of "$1")/etc-docker/certs.d/$REG"; mkdir -p "$t"; cp "$c" "$t/ca.crt"
}
registry_up() {
  command -v docker-registry >/dev/null || die "docker-registry missing (apt-get install docker-registry)"
  local d="$STATE/registry" p scheme=http curlca=() k
  mkdir -p "$d/data"
  ip link show "$GWIF" >/dev/null 2>&1 || die "network is not up; run hosts.sh up first"
  if [ "$REG_TLS" = 1 ]; then
    command -v openssl >/dev/null || die "openssl missing (needed for EPHOST_REGISTRY_TLS=1)"
    [ -f "$d/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=$P-registry" -addext "subjectAltName=IP:$GW" -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null \
      || die "openssl could not make the registry certificate"
    scheme=https; curlca=(--cacert "$d/cert.pem")
    for k in $(existing_hosts); do if [ -d "$(dir_of "$k")/etc-docker" ]; then registry_trust_host "$k"; fi; done
    if [ "$REG_TRUST_MACHINE" = 1 ]; then
      # lets the machine's own engine push to $REG without a restart or a daemon.json change
      # machine-wide marker (not in STATE): several sets may share certs.d; the last `down` removes it
      [ -d /etc/docker/certs.d ] || { mkdir -p /etc/docker/certs.d; touch "$CERTS_MARK"; }
      mkdir -p "$MACHINE_CERTS"; cp "$d/cert.pem" "$MACHINE_CERTS/ca.crt"
    fi
  fi
  if [ -s "$d/pid" ] && p=$(cat "$d/pid") && [ -d "/proc/$p" ] && grep -q docker-registry "/proc/$p/cmdline" 2>/dev/null; then return 0; fi
  {
    echo "version: 0.1"
    echo "log: {level: info}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $d/data}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: $REG"
    if [ "$REG_TLS" = 1 ]; then echo "  tls: {certificate: $d/cert.pem, key: $d/key.pem}"; fi
    if [ -n "${EPHOST_REGISTRY_AUTH:-}" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: $P-registry, path: $d/htpasswd}"
    fi
  } > "$d/config.yml"
  if [ -n "${EPHOST_REGISTRY_AUTH:-}" ]; then
    command -v htpasswd >/dev/null || die "htpasswd missing (apt-get install apache2-utils)"
    htpasswd -Bbn "${EPHOST_REGISTRY_AUTH%%:*}" "${EPHOST_REGISTRY_AUTH#*:}" > "$d/htpasswd" 2>/dev/null \
      || die "htpasswd could not write $d/htpasswd"
  fi
  setsid docker-registry serve "$d/config.yml" </dev/null >"$d/registry.log" 2>&1 9>&- &
  echo $! > "$d/pid"
  local t
  for t in $(seq 1 50); do
    curl -s -o /dev/null -m 1 "${curlca[@]}" "$scheme://$REG/v2/" 2>/dev/null && { log "registry: $scheme://$REG"; return 0; }
    sleep 0.1
  done
  die "registry did not answer on $scheme://$REG: $(tail -5 "$d/registry.log")"
}
registry_down() {
  local d="$STATE/registry" p
  if [ -s "$d/pid" ]; then
    p=$(cat "$d/pid")
    if [ -d "/proc/$p" ] && grep -q docker-registry "/proc/$p/cmdline" 2>/dev/null; then
      kill -TERM "$p"; wait_gone "$p" 5 || kill -KILL "$p" 2>/dev/null || true
    fi
    rm -f "$d/pid"
  fi
  if [ -f "$MACHINE_CERTS/ca.crt" ] && [ -f "$d/cert.pem" ] && cmp -s "$MACHINE_CERTS/ca.crt" "$d/cert.pem"; then
    rm -rf "$MACHINE_CERTS"
  fi
  return 0
}

# ---------------------------------------------------------------- misc commands
cmd_status() {
  local i p a s e sw
  for i in $(existing_hosts); do
    a=$(anchor_pid "$i" || echo -); s=$(host_pid "$i" sshd.pid || echo -); e=$(host_pid "$i" docker.pid || echo -)
    sw=-; engine_ping "$i" && sw=$(docker -H "unix://$(run_of "$i")/docker.sock" info --format '{{.Swarm.LocalNodeState}}/{{.Swarm.ControlAvailable}}' 2>/dev/null || echo '?')
    printf '%s %s anchor=%s sshd=%s dockerd=%s swarm=%s\n' "$(name_of "$i")" "$(ip_of "$i")" "$a" "$s" "$e" "$sw"
  done
}
cmd_mem() {
  local i r tot=0 b
  for i in $(existing_hosts); do
    r=/sys/fs/cgroup/memory/$(name_of "$i")
    if [ -f "$r/memory.usage_in_bytes" ]; then
      b=$(cat "$r/memory.usage_in_bytes"); local h; h=$(cat "$r/host/memory.usage_in_bytes" 2>/dev/null || echo 0)
      local rss; rss=$(awk '/^total_rss /{print $2}' "$r/memory.stat")
      printf '%s: cgroup %d MiB (daemons %d MiB), rss %d MiB\n' "$(name_of "$i")" $((b >> 20)) $((h >> 20)) $((rss >> 20))
      tot=$((tot + rss))
    elif [ -f "/sys/fs/cgroup/$(name_of "$i")/memory.current" ]; then
      printf '%s: %d MiB\n' "$(name_of "$i")" $(( $(cat "/sys/fs/cgroup/$(name_of "$i")/memory.current") >> 20 ))
    fi
  done
  [ $tot = 0 ] || printf 'total rss %d MiB\n' $((tot >> 20))
}
cmd_image() {
  local ref=${1:-$P/busybox:1} bb tmp
  bb=$(command -v busybox || true); [ -n "$bb" ] || die "busybox missing (apt-get install busybox-static)"
  if ldd "$bb" >/dev/null 2>&1; then die "$bb is dynamically linked; the image needs busybox-static"; fi
  tmp=$(mktemp -d); mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/tmp" "$tmp/www" "$tmp/root"
  cp "$bb" "$tmp/bin/busybox"
  local a; for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/etc/passwd"; echo 'root:x:0:' > "$tmp/etc/group"
  echo "hello from $ref" > "$tmp/www/index.html"; chmod 1777 "$tmp/tmp"
  tar -C "$tmp" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$ref" >/dev/null
  rm -rf "$tmp"; echo "$ref"
}
cmd_stop_engine() {
  local i=${1:?usage: stop-engine N [--kill]} p
  p=$(host_pid "$i" docker.pid) || { log "host $i: dockerd not running"; return 0; }
  if [ "${2:-}" = --kill ]; then
    # a crash: dockerd, containerd, shims and containers die at once
    local q; for q in $(cg_procs "$i"); do [ "$q" = "$(anchor_pid "$i")" ] || [ "$q" = "$(host_pid "$i" sshd.pid)" ] || kill -KILL "$q" 2>/dev/null || true; done
    # sshd session children die too; sshd and the anchor stay
  else
    kill -TERM "$p"; wait_gone "$p" "$STOP_WAIT" || { warn "dockerd ignored SIGTERM, killing"; kill -KILL "$p"; }
  fi
  log "host $i: dockerd stopped"
}
cmd_start_engine() {
  local i=${1:?usage: start-engine N}
  need_root; anchor_pid "$i" >/dev/null || die "host $i is not up"
  dockerd_start "$i"; dockerd_wait "$i"; log "host $i: dockerd ready"
}

main() {
  check_names
  local c=${1:-}; shift || true
  CMD=$c
  case "$c" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) [ -f "$STATE/env" ] || die "not up"; cat "$STATE/env" ;;
    ssh) local i=${1:?usage: ssh N [CMD]}; shift; exec /usr/bin/ssh -F "$STATE/ssh_config" "root@$(ip_of "$i")" "$@" ;;
    exec) local i=${1:?usage: exec N CMD}; shift; [ $# -gt 0 ] || die "usage: exec N CMD..."; HEXEC_EXEC=1 hexec "$i" "$@" ;;
    __hexec) local i=$1; shift; HEXEC_EXEC=1 hexec "$i" "$@" ;;
    stop-engine) need_root; cmd_stop_engine "$@" ;;
    start-engine) cmd_start_engine "$@" ;;
    registry-up) need_root; registry_up ;;
    registry-down) registry_down ;;
    mem) cmd_mem ;;
    image) cmd_image "$@" ;;
    ""|-h|--help|help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command '$c' (try: hosts.sh help)" ;;
  esac
}
main "$@"
