"""Secret stores: the embedded encrypted file (default), Vault / OpenBao KV v2, SOPS + age.

`open_secret_store` picks one; it reads only the environ it is given and contacts no server.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from envplane.backends.secrets.base import SecretStore
from envplane.errors import UsageError
from envplane.private import FOLDER

KINDS = ("file", "vault", "sops")
KIND_ENV = "ENVPLANE_SECRETS"


def open_secret_store(kind: str | None, root: Path, environ: Mapping[str, str], app: str) -> SecretStore:
    """The store of `kind` (from the spec), else of ENVPLANE_SECRETS, else the file store.

    root is the project folder: the file store lives in root/.envplane (its key outside the
    project, named after the app), SOPS files in root/secrets (to be committed) unless
    ENVPLANE_SOPS_DIR says otherwise.
    """
    chosen = kind or environ.get(KIND_ENV) or "file"
    if chosen == "file":
        from envplane.backends.secrets.file import FileSecretStore

        return FileSecretStore.open(root / FOLDER, environ, app)
    if chosen == "vault":
        from envplane.backends.secrets.vault import VaultConfig, VaultSecretStore

        return VaultSecretStore(VaultConfig.from_environ(environ))
    if chosen == "sops":
        from envplane.backends.secrets.sops import SopsConfig, SopsSecretStore

        folder = Path(environ.get("ENVPLANE_SOPS_DIR") or root / "secrets")
        return SopsSecretStore(SopsConfig.from_environ(folder, environ))
    raise UsageError(f"unknown secret store {chosen!r}", f"use one of: {', '.join(KINDS)}")


__all__ = ["KINDS", "SecretStore", "open_secret_store"]
