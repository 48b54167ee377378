"""The instance's Secrets, made at apply time. Their values go to kubectl on stdin and to
nothing else: no file, no command line, no log (`render` writes them only when asked
with --include-secrets).

`values` gathers what each SecretSource holds (the I/O: the secret store through the
provisioner, env files, Compose secret files, the shell's variables); `objects` makes the
Secret objects of them (pure).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envplane.compose.dotenv import read_dotenv
from envplane.errors import UsageError
from envplane.kubernetes.convert import Manifests, SecretSource
from envplane.secret import Secret

Provided = Callable[[str], Mapping[str, Secret | str]]  # service -> its resource and spec-secret variables


def values(manifests: Manifests, provided: Provided, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Secret name -> its keys and values. For an env Secret, Compose's order holds:
    env files, then the service's own `environment` (the shell's values it names), then
    what envplane provides, which wins."""
    out: dict[str, dict[str, str]] = {}
    for source in manifests.secrets:
        out[source.name] = _env(source, provided, environ) if source.kind == "env" else _file(source, environ)
    return out


def _env(source: SecretSource, provided: Provided, environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path, required in source.env_files:
        if not Path(path).is_file():
            if required:
                raise UsageError(
                    f"env_file {path} of service {source.service} does not exist",
                    "create it, or mark it `required: false` in the Compose file",
                )
            continue
        found.update(read_dotenv(Path(path), environ))
    found.update({key: environ[key] for key in source.passthrough if key in environ})
    if source.provided:
        found.update(
            {k: v.reveal() if isinstance(v, Secret) else v for k, v in provided(source.service).items()}
        )
    for key, value in found.items():
        if "\0" in value:
            raise UsageError(
                f"the value of {key} for service {source.service} contains a NUL character, "
                "which no environment variable can hold",
                "store a value without it, e.g. base64-encoded",
            )
    return found


def _file(source: SecretSource, environ: Mapping[str, str]) -> dict[str, str]:
    if source.file is not None:
        path = Path(source.file)
        if not path.is_file():
            raise UsageError(
                f"the file {path} of Compose secret {source.name} does not exist",
                "create it; it is read when the instance is applied, never copied",
            )
        return {"value": path.read_text(encoding="utf-8")}
    assert source.environment is not None
    if source.environment not in environ:
        raise UsageError(
            f"variable {source.environment} of Compose secret {source.name} is not set",
            f"export {source.environment} in the shell that runs envplane",
        )
    return {"value": environ[source.environment]}


def objects(manifests: Manifests, found: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """The Secret objects; `found` from `values`."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": manifests.namespace, "labels": dict(manifests.labels)},
            "type": "Opaque",
            "data": {
                key: base64.b64encode(value.encode("utf-8")).decode("ascii")
                for key, value in sorted(data.items())
            },
        }
        for name, data in found.items()
    ]


def every_value(found: Mapping[str, Mapping[str, str]]) -> list[Secret]:
    """Each value as a Secret: what run() masks in anything it shows."""
    return [Secret(v) for data in found.values() for v in data.values() if v]
