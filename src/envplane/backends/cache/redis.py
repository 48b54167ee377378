"""Redis: one ACL user per environment instance, limited to the instance's key prefix.

The admin connection (ENVPLANE_REDIS_URL) needs the ACL commands. Rules come from acl;
this module only connects, reads the user, writes it, and scans keys to purge them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from envplane.backends.cache import acl
from envplane.backends.database.change import Change, create, delete, noop, update
from envplane.errors import BackendError
from envplane.secret import Secret, mask

T = TypeVar("T")
BATCH = 500
# What an instance's URL keeps of the admin URL's query: how to verify the server. Never
# ssl_certfile/ssl_keyfile/ssl_password: the admin's client certificate is its credential.
TLS_PARAMETERS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_check_hostname",
                  "ssl_min_version", "ssl_ciphers")


class RedisUsers:
    def __init__(self, admin_url: Secret | str) -> None:
        self._admin = admin_url if isinstance(admin_url, Secret) else Secret(admin_url)
        self._client: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"RedisUsers({self.where()})"

    def where(self) -> str:
        parts = urlsplit(self._admin.reveal())
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"

    def observe(self, prefix: str) -> acl.CacheFacts:
        user = acl.user_name(prefix)
        reply = self._call(f"read ACL user {user}", lambda c: c.acl_getuser(user))
        return acl.parse_user(prefix, cast(Mapping[str, object] | None, reply))

    def ensure(self, prefix: str, password: Secret) -> list[Change]:
        facts = self.observe(prefix)
        hashed = acl.password_hash(password)
        what = f"Redis user {facts.user}"
        if facts.exists:
            differences = acl.differences(facts, hashed)
            if not differences:
                return [noop(what, f"Redis user {facts.user} exists, limited to keys {prefix}*")]
        self._set_user(facts.user, acl.acl_rules(prefix, hashed))
        if facts.exists:
            return [update(what, "; ".join(differences) + f": reset to keys {prefix}*")]
        return [create(what, f"missing; limited to keys {prefix}*")]

    def purge(self, prefix: str) -> list[Change]:
        user = acl.user_name(prefix)
        # Delete the user first: that also closes its connections, so no key comes back.
        removed = self._call(f"delete ACL user {user}", lambda c: c.acl_deluser(user))
        if removed:
            self._save_acl()
        what = f"Redis user {user}"
        changes = [delete(what, "user deleted") if removed else noop(what, f"{what} does not exist")]
        count = self._delete_keys(prefix)
        keys = f"Redis keys {prefix}*"
        changes.append(delete(keys, f"{count} keys deleted") if count else noop(keys, f"no {keys}"))
        return changes

    def url(self, prefix: str, password: Secret) -> Secret:
        """The instance's REDIS_URL: the admin URL's scheme (rediss:// for TLS), server,
        database and TLS parameters; the instance's user."""
        parts = urlsplit(self._admin.reveal())
        user = quote(acl.user_name(prefix), safe="")
        server = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
        tls = [(k, v) for k, v in parse_qsl(parts.query) if k in TLS_PARAMETERS]
        tail = f"?{urlencode(tls)}" if tls else ""
        secret = quote(password.reveal(), safe="")
        return Secret(f"{parts.scheme or 'redis'}://{user}:{secret}@{server}{tail}")

    # --- pieces -------------------------------------------------------------------

    def _set_user(self, user: str, rules: list[str]) -> None:
        self._call(f"write ACL user {user}",
                   lambda c: _raw(c).execute_command("ACL", "SETUSER", user, *rules))
        self._save_acl()

    def _save_acl(self) -> None:
        # Users live in memory unless the server has an ACL file; then it must be told to save.
        configured = cast(dict[str, str], self._call("read aclfile", lambda c: c.config_get("aclfile")))
        if configured.get("aclfile"):
            self._call("save the ACL file", lambda c: c.acl_save())

    def _delete_keys(self, prefix: str) -> int:
        pattern = acl.scan_pattern(prefix)

        def run(client: redis.Redis) -> int:
            count = 0
            batch: list[Any] = []
            for key in client.scan_iter(match=pattern, count=BATCH):  # SCAN, never KEYS
                batch.append(key)
                if len(batch) == BATCH:
                    count += client.unlink(*batch)
                    batch = []
            return count + (client.unlink(*batch) if batch else 0)

        return self._call(f"delete keys {prefix}*", run)

    # --- connection and errors ------------------------------------------------------

    def _call(self, what: str, action: Callable[[redis.Redis], T]) -> T:
        try:
            return action(self._connection())
        except AuthenticationError:
            raise BackendError(
                f"Redis at {self.where()} refused the admin credentials to {what}",
                "check the user and password in ENVPLANE_REDIS_URL",
            ) from None
        except RedisConnectionError as err:
            raise BackendError(
                f"cannot connect to Redis at {self.where()} to {what}: {self._masked(err)}",
                "is the server running and ENVPLANE_REDIS_URL right?",
            ) from None
        except ResponseError as err:
            raise BackendError(
                f"Redis at {self.where()} refused to {what}: {self._masked(err)}",
                "the admin user of ENVPLANE_REDIS_URL needs the ACL and CONFIG commands",
            ) from None
        except RedisError as err:
            raise BackendError(f"Redis at {self.where()} failed to {what}: {self._masked(err)}") from None

    def _connection(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._admin.reveal(), socket_connect_timeout=5, socket_timeout=30, decode_responses=True
            )
        return self._client

    def _masked(self, err: Exception) -> str:
        return mask(str(err), [self._admin])


def _raw(client: redis.Redis) -> Any:
    # redis-py leaves execute_command untyped; ACL SETUSER's rules are plain words.
    return client
