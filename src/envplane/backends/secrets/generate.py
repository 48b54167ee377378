"""Generated secrets: new passwords, and which ones an env instance needs.

Each shared resource of an instance (its database role, bucket, Redis user) gets one
path, so every service that uses it reads the same credentials.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from envplane.backends.secrets.base import SecretStore, full
from envplane.secret import Secret

# What each `uses:` entry of a service needs: (path under the instance's prefix, key).
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "postgres": (("postgres", "password"),),
    "s3": (("s3", "access_key_id"), ("s3", "secret_access_key")),
    "redis": (("redis", "password"),),
}


def new_password(length: int = 32) -> Secret:
    """length URL-safe characters (6 bits each) from the system's CSPRNG."""
    if length < 16:
        raise ValueError("a generated password has at least 16 characters")
    return Secret(secrets.token_urlsafe(length)[:length])


def needed(secrets_prefix: str, uses: Iterable[str]) -> list[tuple[str, str]]:
    """The (path, key) pairs an instance under secrets_prefix needs, for its services' uses."""
    kinds = set(uses)
    return [(full(f"{secrets_prefix}/{name}"), key)
            for kind, pairs in NEEDS.items() if kind in kinds for name, key in pairs]


def ensure(store: SecretStore, wanted: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Create the wanted secrets that are missing; reuse the others. Returns what was created."""
    created: list[tuple[str, str]] = []
    for path, key in wanted:
        if key not in store.read(path):
            store.write(path, {key: new_password()})
            created.append((path, key))
    return created
