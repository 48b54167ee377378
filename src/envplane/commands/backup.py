"""Command lines of backups and restores (issue 13): pg_dump/pg_restore, tar, zstd, age.

Data, never run (envplane.run.Pipeline runs them). Connection strings carry no password:
PostgreSQL tools get it as PGPASSWORD in their environment, never in argv (ps shows argv).
"""

from __future__ import annotations

from collections.abc import Sequence

# tar keeps what a data folder needs back exactly: numeric owners (a restore host may have
# other user names), modes, links, sparse files, extended attributes and ACLs.
_TAR_KEEP = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"]


def pg_dump(conninfo: str) -> list[str]:
    """The instance's database as a custom-format archive on stdout. -Z0: pg_dump's own
    zlib is the slow part (RECIPES.md), zstd compresses next in the pipe. No owners and no
    grants: whoever restores (the target instance's own role) owns what it restores."""
    return ["pg_dump", "--format=custom", "--compress=0", "--no-owner", "--no-privileges",
            f"--dbname={conninfo}"]


def pg_restore(conninfo: str) -> list[str]:
    """Restore stdin into an empty database in one transaction: a broken stream leaves
    nothing half-restored."""
    return ["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
            f"--dbname={conninfo}"]


def tar_create(folder: str) -> list[str]:
    return ["tar", "--create", "--file=-", *_TAR_KEEP, "--sparse", f"--directory={folder}", "."]


def tar_extract(folder: str) -> list[str]:
    return ["tar", "--extract", "--file=-", *_TAR_KEEP, "--same-owner", "--same-permissions",
            f"--directory={folder}"]


def zstd_compress(level: int = 3, threads: int = 2) -> list[str]:
    return ["zstd", "--quiet", f"-{level}", f"-T{threads}", "--stdout"]


def zstd_decompress() -> list[str]:
    return ["zstd", "--quiet", "--decompress", "--stdout"]


def age_encrypt(recipients: Sequence[str]) -> list[str]:
    """Encrypt stdin to every recipient (public keys: nothing secret in argv)."""
    args = ["age", "--encrypt"]
    for recipient in recipients:
        args += ["--recipient", recipient]
    return args


def age_decrypt(identity_file: str) -> list[str]:
    return ["age", "--decrypt", "--identity", identity_file]


def age_keygen() -> list[str]:
    """A new identity on stdout (the caller writes it to a 0600 key file)."""
    return ["age-keygen"]


def age_recipient_of(identity_file: str) -> list[str]:
    """The public key (recipient) of an identity file."""
    return ["age-keygen", "-y", identity_file]


VERSION_COMMANDS = {
    "pg_dump": ["pg_dump", "--version"],
    "tar": ["tar", "--version"],
    "zstd": ["zstd", "--version"],
    "age": ["age", "--version"],
}
