"""The platform app: where it lives, its generated admin secrets, and the servers it offers.

It is an ordinary envplane app (spec in this package, copied to $ENVPLANE_HOME/platform so
its state and secrets live there); only `servers_of` is special: it tells provisioning
where an env's platform answers when the environment names no server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.base import SecretStore
from envplane.backends.secrets.generate import new_password
from envplane.secret import Secret
from envplane.spec.load import Project, load_project
from envplane.target import Target, resolve

SPEC_FILES = ("envplane.yaml", "compose.yaml")
HERE = Path(__file__).parent


def root(environ: Mapping[str, str]) -> Path:
    home = Path(environ.get("ENVPLANE_HOME") or Path.home() / ".envplane")
    return home / "platform"


def open_platform(environ: Mapping[str, str]) -> Project:
    """The platform project, its spec files refreshed from this envplane's copy."""
    folder = root(environ)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPEC_FILES:
        if not (folder / name).exists() or (folder / name).read_bytes() != (HERE / name).read_bytes():
            shutil.copyfile(HERE / name, folder / name)
    return load_project(folder / "envplane.yaml", environ)


def store(project: Project, environ: Mapping[str, str]) -> SecretStore:
    # The platform's own secrets always sit in its embedded store, under its own home.
    return open_secret_store("file", project.root, {**environ, "ENVPLANE_SECRETS": "file"})


def ensure_secrets(target: Target, secrets: SecretStore) -> list[str]:
    """Generate the admin passwords the platform's services need; keep existing ones."""
    made = []
    for service in target.services:
        stored = secrets.read(service.secret_path)
        missing = {key: new_password() for key in service.secrets if key not in stored}
        if missing:
            secrets.write(service.secret_path, missing)
            made += [f"{service.secret_path}:{key}" for key in missing]
    return made


def servers_of(env: str, environ: Mapping[str, str]) -> dict[str, Secret | str] | None:
    """Admin connections of the env's platform, if one was brought up here; else None."""
    folder = root(environ)
    if not (folder / ".envplane" / "state.db").exists() and not environ.get("ENVPLANE_STATE_URL"):
        return None
    project = open_platform(environ)
    if env not in project.envs or project.envs[env].instances != "one":
        return None
    target = resolve(project, env)
    secrets = store(project, environ)
    values = {s.name: secrets.read(s.secret_path) for s in target.services}
    if not all(values.values()):
        return None

    def port(service: str) -> int | None:
        return next((p.published for p in target.service(service).ports if p.published), None)

    pg, redis, s3 = port("postgres"), port("redis"), port("s3")
    out: dict[str, Secret | str] = {}
    if pg and "POSTGRES_PASSWORD" in values["postgres"]:
        password = values["postgres"]["POSTGRES_PASSWORD"].reveal()
        out["postgres"] = Secret(f"postgresql://postgres:{password}@127.0.0.1:{pg}/postgres")
    if redis and "REDIS_PASSWORD" in values["redis"]:
        out["redis"] = Secret(f"redis://default:{values['redis']['REDIS_PASSWORD'].reveal()}@127.0.0.1:{redis}/0")
    if s3 and "S3_ACCESS_KEY" in values["s3"]:
        out["s3_endpoint"] = f"http://127.0.0.1:{s3}"
        out["s3_access_key"] = values["s3"]["S3_ACCESS_KEY"].reveal()
        out["s3_secret_key"] = values["s3"]["S3_SECRET_KEY"]
    return out


def environ_for(project: Project) -> dict[str, str]:
    """The platform runs with its own secret store whatever the app around it uses."""
    return {**os.environ, "ENVPLANE_SECRETS": "file"}
