"""Vault / OpenBao KV v2 through hvac: token or AppRole auth, one mount (`secret` by default)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import hvac  # type: ignore[import-untyped]
import hvac.exceptions  # type: ignore[import-untyped]
import requests

from envplane.backends.secrets.base import check_keys, full, relative, under
from envplane.errors import BackendError, UsageError
from envplane.secret import Secret, mask

DEFAULT_ADDR = "http://127.0.0.1:8200"  # the vault and bao CLIs' own default
CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class VaultConfig:
    addr: str
    mount: str = "secret"
    token: Secret | None = None
    role_id: Secret | None = None
    secret_id: Secret | None = None
    timeout: float = 10.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> VaultConfig:
        def secret(name: str) -> Secret | None:
            return Secret(environ[name]) if environ.get(name) else None

        config = cls(
            addr=environ.get("VAULT_ADDR") or DEFAULT_ADDR,
            mount=environ.get("ENVPLANE_VAULT_MOUNT") or "secret",
            token=secret("VAULT_TOKEN"),
            role_id=secret("VAULT_ROLE_ID"),
            secret_id=secret("VAULT_SECRET_ID"),
        )
        if config.token is None and not (config.role_id and config.secret_id):
            raise UsageError("no Vault credentials",
                             "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole")
        return config


class VaultSecretStore:
    """KV v2 paths `{mount}/data/{app}/{env}/{service}`; logs in on first use."""

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._client: Any = None

    def __repr__(self) -> str:
        return f"VaultSecretStore(addr={self.config.addr!r}, mount={self.config.mount!r})"

    def read(self, path: str) -> dict[str, Secret]:
        return self._read(relative(path))[0]

    def write(self, path: str, values: Mapping[str, Secret]) -> None:
        check_keys(path, values)
        rel = relative(path)
        # Check-and-set on the version read, so a concurrent writer's keys are never lost.
        for _ in range(CAS_ATTEMPTS):
            current, version = self._read(rel)
            merged = {k: v.reveal() for k, v in {**current, **values}.items()}
            try:
                with self._errors("write", rel, values.values()):
                    self._kv().create_or_update_secret(
                        path=rel, secret=merged, cas=version, mount_point=self.config.mount)
                return
            except _CasMismatch:
                continue
        raise BackendError(f"{full(rel)} kept changing while envplane wrote it", "try again")

    def remove(self, path: str, keys: Iterable[str]) -> list[str]:
        rel, doomed = relative(path), set(keys)
        for _ in range(CAS_ATTEMPTS):
            current, version = self._read(rel)
            gone = sorted(doomed & current.keys())
            if not gone:
                return []
            rest = {k: v.reveal() for k, v in current.items() if k not in doomed}
            try:
                with self._errors("write", rel, current.values()):
                    answer = self._kv().create_or_update_secret(
                        path=rel, secret=rest, cas=version, mount_point=self.config.mount)
            except _CasMismatch:
                continue
            # The versions before hold the removed values: destroy them, as a removal should.
            # Later versions (a writer after ours) are left alone, so nothing current is lost.
            self._destroy_before(rel, int(answer["data"]["version"]))
            return gone
        raise BackendError(f"{full(rel)} kept changing while envplane wrote it", "try again")

    def _destroy_before(self, rel: str, version: int) -> None:
        with self._errors("destroy old versions of", rel):
            answer = self._kv().read_secret_metadata(path=rel, mount_point=self.config.mount)
            versions = cast(dict[str, dict[str, Any]], answer["data"]["versions"])
            older = sorted(int(v) for v, meta in versions.items()
                           if int(v) < version and not meta["destroyed"])
            if older:
                self._kv().destroy_secret_versions(path=rel, versions=older, mount_point=self.config.mount)

    def delete(self, path: str) -> None:
        rel = relative(path)
        with self._errors("delete", rel):
            # Metadata and every version: a destroyed env instance leaves nothing to undelete.
            self._kv().delete_metadata_and_all_versions(path=rel, mount_point=self.config.mount)

    def list(self, prefix: str) -> list[str]:
        start = relative(prefix)
        found = list(self._walk(start))
        if self._exists(start):
            found.append(start)
        return sorted(full(rel) for rel in found if under(rel, start))

    def delete_tree(self, prefix: str) -> int:
        paths = self.list(prefix)
        for path in paths:
            self.delete(path)
        return len(paths)

    def _read(self, rel: str) -> tuple[dict[str, Secret], int]:
        """The keys at rel and their version (0 when absent, as check-and-set wants)."""
        with self._errors("read", rel):
            try:
                answer = self._kv().read_secret_version(
                    path=rel, mount_point=self.config.mount, raise_on_deleted_version=False)
            except hvac.exceptions.InvalidPath:
                return {}, 0
        data = cast(dict[str, Any], answer["data"])
        version = int(data["metadata"]["version"])
        values = cast(dict[str, str] | None, data["data"]) or {}
        return {key: Secret(str(value)) for key, value in values.items()}, version

    def _exists(self, rel: str) -> bool:
        with self._errors("read", rel):
            try:
                self._kv().read_secret_metadata(path=rel, mount_point=self.config.mount)
            except hvac.exceptions.InvalidPath:
                return False
        return True

    def _walk(self, rel: str) -> Iterator[str]:
        with self._errors("list", rel):
            try:
                answer = self._kv().list_secrets(path=rel, mount_point=self.config.mount)
            except hvac.exceptions.InvalidPath:
                return
        for key in cast(list[str], answer["data"]["keys"]):
            child = f"{rel}/{key.rstrip('/')}"
            if key.endswith("/"):
                yield from self._walk(child)
            else:
                yield child

    def _kv(self) -> Any:
        if self._client is None:
            self._client = self._login()
        return self._client.secrets.kv.v2

    def _login(self) -> Any:
        config = self.config
        client = hvac.Client(url=config.addr, timeout=config.timeout)
        if config.token is not None:
            client.token = config.token.reveal()
            return client
        assert config.role_id is not None and config.secret_id is not None
        with self._errors("log in with AppRole for", ""):
            try:
                client.auth.approle.login(role_id=config.role_id.reveal(),
                                          secret_id=config.secret_id.reveal())
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
                raise BackendError("Vault refused the AppRole login",
                                   "check VAULT_ROLE_ID and VAULT_SECRET_ID") from None
        return client

    @contextlib.contextmanager
    def _errors(self, action: str, rel: str, hidden: Iterable[Secret] = ()) -> Iterator[None]:
        """Turn hvac and requests failures into BackendErrors that name the path, never a value."""
        where = full(rel) if rel else self.config.addr
        try:
            yield
        except hvac.exceptions.Forbidden:
            raise self._denied(action, where) from None
        except hvac.exceptions.Unauthorized:
            raise _bad_token() from None
        except hvac.exceptions.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                raise _CasMismatch() from None
            raise BackendError(f"Vault could not {action} {where}: {_reason(exc, hidden)}") from None
        except hvac.exceptions.VaultError as exc:
            raise BackendError(f"Vault could not {action} {where}: {_reason(exc, hidden)}") from None
        except requests.exceptions.RequestException:
            raise BackendError(
                f"cannot reach Vault at {self.config.addr}",
                "start it (scripts/services/openbao.sh starts a dev OpenBao) or set VAULT_ADDR",
            ) from None

    def _denied(self, action: str, where: str) -> BackendError:
        # Vault answers 403 both for a policy that forbids the path and for a token it does
        # not know; asking about the token itself tells the two apart.
        if self._client is None:
            return _bad_token()
        try:
            self._client.auth.token.lookup_self()
        except hvac.exceptions.VaultError:
            return _bad_token()
        except requests.exceptions.RequestException:
            pass
        return BackendError(f"permission denied: cannot {action} {where}",
                            f"the token's policy does not allow {where}")


class _CasMismatch(Exception):
    """Another writer changed the path between our read and our write."""


def _bad_token() -> BackendError:
    return BackendError("Vault does not accept the token (unknown or expired)",
                        "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole")


def _reason(exc: Exception, hidden: Iterable[Secret]) -> str:
    # Vault's messages name paths and fields, not values; mask them anyway, to be sure.
    return mask(str(exc), hidden)[:500] or type(exc).__name__
