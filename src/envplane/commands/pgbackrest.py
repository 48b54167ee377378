"""pgBackRest command lines for the platform's PostgreSQL (issue 13): data, never run.

The platform runs one cluster per env, so its archive has one stanza, `platform`. Every
command runs as the postgres user inside the platform's container (where PGDATA is), or
in a one-off container of the same image for a point-in-time restore.
"""

from __future__ import annotations

STANZA = "platform"
CONFIG = "/etc/pgbackrest/pgbackrest.conf"
CA_FILE = "/etc/pgbackrest/ca.pem"
CA_MARK = "#--ca--"  # the line between the settings and the CA certificate on stdin


def in_container(container: str, *args: str, stdin: bool = False) -> list[str]:
    """As postgres in the container; PGPASSWORD passes by name (its value comes from the docker
    CLI's environment, never argv): pgBackRest logs in to the cluster over its socket."""
    return ["docker", "exec", *(["-i"] if stdin else []), "--env", "PGPASSWORD", "--user", "postgres",
            container, *args]


def write_settings(container: str) -> list[str]:
    """Settings and CA from stdin (split at CA_MARK) into the archive's folder, 0600."""
    script = " && ".join([
        "{ command -v pgbackrest >/dev/null || { echo 'this image has no pgBackRest: run "
        "scripts/images.sh, then envplane platform up' >&2; exit 3; }; }",
        "mkdir -p /tmp/pgbackrest", "umask 077", "cat > /tmp/pgbackrest/in",
        f"sed '/^{CA_MARK}$/,$d' /tmp/pgbackrest/in > {CONFIG}.new",
        f"sed '1,/^{CA_MARK}$/d' /tmp/pgbackrest/in > {CA_FILE}",
        "rm /tmp/pgbackrest/in", f"mv {CONFIG}.new {CONFIG}"])
    return in_container(container, "sh", "-c", script, stdin=True)


def read_settings(container: str) -> list[str]:
    return in_container(container, "sh", "-c", f"cat {CONFIG} 2>/dev/null || true")


def stanza_create(container: str) -> list[str]:
    return in_container(container, "pgbackrest", f"--stanza={STANZA}", "stanza-create")


def check(container: str) -> list[str]:
    """Forces a WAL switch and waits until that segment is archived: archiving works."""
    return in_container(container, "pgbackrest", f"--stanza={STANZA}", "check")


def backup(container: str) -> list[str]:
    """A base backup (the first one is full, then incremental)."""
    return in_container(container, "pgbackrest", f"--stanza={STANZA}", "--type=incr", "backup")


def info(container: str) -> list[str]:
    return in_container(container, "pgbackrest", f"--stanza={STANZA}", "--output=json", "info")


# A throwaway cluster restored to the moment given ($2), only database $1 in it, read by
# pg_dump: no port (a socket in the container's /tmp, `trust` there), no archiving, so the
# copy never writes into the archive it came from. pgBackRest picks the backup before $2.
RESTORE_SCRIPT = f"""set -e
umask 077
mkdir -p /etc/pgbackrest /tmp/pgbackrest /tmp/restore
cat > /tmp/pgbackrest/in
sed '/^{CA_MARK}$/,$d' /tmp/pgbackrest/in > {CONFIG}
sed '1,/^{CA_MARK}$/d' /tmp/pgbackrest/in > {CA_FILE}
rm /tmp/pgbackrest/in
printf 'local all all trust\\n' > /tmp/hba.conf
chown -R postgres /etc/pgbackrest /tmp/pgbackrest /tmp/restore /tmp/hba.conf
su postgres -s /bin/sh -c "pgbackrest --stanza={STANZA} --pg1-path=/tmp/restore --type=time \\
  '--target=$2' --target-action=promote '--db-include=$1' --archive-mode=off restore" >&2
su postgres -s /bin/sh -c "exec postgres -D /tmp/restore -c listen_addresses= \\
  -c unix_socket_directories=/tmp -c hba_file=/tmp/hba.conf -c archive_mode=off" >&2 &
server=$!
tries=0
ask="psql -h /tmp -U postgres -d postgres -Atc 'select pg_is_in_recovery()'"
until [ "$(su postgres -s /bin/sh -c "$ask" 2>/dev/null)" = f ]; do
  kill -0 "$server" 2>/dev/null || {{ echo "PostgreSQL stopped while recovering to $2" >&2; exit 1; }}
  tries=$((tries + 1)); [ "$tries" -lt 3000 ] || {{ echo "recovery to $2 did not end" >&2; exit 1; }}
  sleep 0.2
done
su postgres -s /bin/sh -c "pg_dump -h /tmp -U postgres --format=custom --compress=0 --no-owner \\
  --no-privileges '$1'"
"""


def restore_to(image: str, database: str, moment: str) -> list[str]:
    """The one-off container: settings on stdin, the database as of `moment` on stdout."""
    return ["docker", "run", "--rm", "-i", "--add-host", "host.docker.internal:host-gateway",
            "--entrypoint", "sh", image, "-c", RESTORE_SCRIPT, "sh", database, moment]
