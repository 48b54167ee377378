"""Render one env instance's Compose file from its Target. Pure: data in, data out.

What changes against the user's Compose files, and nothing else (unknown keys pass):
- `name:` is the instance's project, containers get the instance's names;
- published ports move to the env's block (ports.py);
- networks and volumes get instance names and envplane labels; with `volumes: bind`
  a named volume stores its data under the env's data path;
- every container gets the envplane labels, the ladder variables, and Traefik labels
  when it is public; a container that shares something with other instances on purpose
  (the spec's `shared:`, or the app's own files) says so in `envplane.shared`;
- relative paths become absolute, so the file works wherever it is written;
- `$` is escaped again, because the values were interpolated already.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML

from envplane.isolation import shared_label
from envplane.ports import PortPlan
from envplane.target import LABEL_SERVICE, ServiceTarget, Target, local_alias


def render(target: Target, project_dir: Path, env_files: Mapping[str, str] | None = None,
           env_files_exist: bool = True) -> dict[str, Any]:
    """`env_files` maps a service to the env file holding its resource variables: the
    rendered file names the file, never a value in it. `up` writes them before it renders
    (required); `envplane render` shows the file before they exist (optional)."""
    data = copy.deepcopy(target.compose.data)
    services: dict[str, Any] = data.get("services", {})
    for service in target.services:
        svc = _service(target, service, services[service.name], project_dir)
        if env_files and service.name in env_files:
            entry: Any = env_files[service.name]
            if not env_files_exist:
                entry = {"path": entry, "required": False}
            svc["env_file"] = [*_as_list(svc.get("env_file")), entry]
            # `environment:` beats an env file in Compose: drop what envplane provides, so
            # the instance's own DATABASE_URL wins over the file's local default.
            svc["environment"] = {k: v for k, v in svc["environment"].items() if k not in service.provided}
            # Resource servers on this host are reached as host.docker.internal.
            svc["extra_hosts"] = [*_as_list(svc.get("extra_hosts")), "host.docker.internal:host-gateway"]
        services[service.name] = svc
    out: dict[str, Any] = {"name": target.project}
    out.update({k: v for k, v in data.items() if k not in ("name", "version")})
    out["services"] = services
    out["networks"] = _networks(target, data.get("networks") or {})
    if target.volumes or data.get("volumes"):
        out["volumes"] = _volumes(target, data.get("volumes") or {})
    for kind in ("secrets", "configs"):
        if data.get(kind):
            out[kind] = {k: _rebase_file(v, project_dir) for k, v in data[kind].items()}
    escaped: dict[str, Any] = _escape(out)
    return escaped


def to_yaml(data: Mapping[str, Any]) -> str:
    yaml = YAML(typ="rt")  # keeps the order of keys, unlike the safe dumper
    yaml.default_flow_style = False
    yaml.width = 4096  # a Traefik rule on one line reads better than a folded one
    buffer = io.StringIO()
    yaml.dump(dict(data), buffer)
    return buffer.getvalue()


def _service(target: Target, service: ServiceTarget, raw: dict[str, Any], root: Path) -> dict[str, Any]:
    svc = dict(raw)
    svc.pop("profiles", None)  # the profile was selected when the target was resolved
    if service.container_name:
        svc["container_name"] = service.container_name
    if "ports" in svc:
        svc["ports"] = [_port(p) for p in service.ports]
    svc["environment"] = {**_mapping(svc.get("environment")), **service.env}
    svc["labels"] = {
        **_mapping(svc.get("labels")),
        **target.labels,
        LABEL_SERVICE: service.name,
        **shared_label(target, service),
        **_traefik(target, service),
    }
    if "build" in svc:
        svc["build"] = build_section(svc["build"], root)
    if "volumes" in svc:
        svc["volumes"] = [_mount(v, root) for v in svc["volumes"]]
    if "env_file" in svc:
        svc["env_file"] = _env_files(svc["env_file"], root)
    return svc


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}:{v}" for k, v in value.items()]
    return list(value) if isinstance(value, list) else [value]


def _port(plan: PortPlan) -> dict[str, Any]:
    port: dict[str, Any] = {"target": plan.target, "protocol": plan.protocol}
    if plan.published is not None:
        port["published"] = str(plan.published)
    if plan.host_ip:
        port["host_ip"] = plan.host_ip
    return port


def _traefik(target: Target, service: ServiceTarget) -> dict[str, str]:
    if service.public is None or target.domain is None or target.env.runtime == "process" \
            or target.env.routing == "none":
        return {}
    router = f"{target.project}-{service.name}"
    rule = f"Host(`{target.domain}`)"
    if target.env.routing == "traefik":  # Traefik is the router: the printed .localhost URL answers
        rule = f"({rule} || Host(`{local_alias(target.domain)}`))"
    if service.public.path != "/":
        rule += f" && PathPrefix(`{service.public.path}`)"
    return {
        "traefik.enable": "true",
        f"traefik.http.routers.{router}.rule": rule,
        f"traefik.http.routers.{router}.service": router,
        f"traefik.http.services.{router}.loadbalancer.server.port": str(service.public.port),
    }


def _networks(target: Target, declared: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in {"default": None, **declared}.items():
        value = dict(value or {})
        if value.get("external"):
            out[key] = value
            continue
        value["name"] = target.networks[key]
        value["labels"] = {**_mapping(value.get("labels")), **target.labels}
        out[key] = value
    return out


def _volumes(target: Target, declared: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in declared.items():
        value = dict(value or {})
        if value.get("external"):
            out[key] = value
            continue
        value["name"] = target.volumes[key]
        value["labels"] = {**_mapping(value.get("labels")), **target.labels}
        path = target.volume_paths.get(key)
        if path is not None and not value.get("driver"):
            # Still a named, labelled volume, but its data lives under DATA_PATH
            # where backups and `down --purge` find it (seed 000 §4.3).
            value["driver"] = "local"
            value["driver_opts"] = {"type": "none", "o": "bind", "device": path}
        out[key] = value
    return out


def _mapping(value: Any) -> dict[str, str]:
    """Compose's list form (`- KEY=value`) or mapping form, as a mapping of strings."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else _scalar(v) for k, v in value.items()}
    out = {}
    for item in value:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else ""
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_section(build: Any, root: Path) -> Any:
    """A service's `build:` with its context made absolute."""
    if isinstance(build, str):
        return {"context": _abs(build, root)}
    build = dict(build)
    if "context" in build and "://" not in str(build["context"]):
        build["context"] = _abs(build["context"], root)
    else:
        build.setdefault("context", str(root))
    return build


def _mount(volume: Any, root: Path) -> Any:
    if isinstance(volume, str):
        source, sep, rest = volume.partition(":")
        if sep and _is_relative_path(source):
            return f"{_abs(source, root)}:{rest}"
        return volume
    volume = dict(volume)
    if volume.get("type") == "bind" and _is_relative_path(str(volume.get("source", ""))):
        volume["source"] = _abs(volume["source"], root)
    return volume


def _env_files(value: Any, root: Path) -> Any:
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append(_abs(item, root))
        else:
            out.append({**item, "path": _abs(item["path"], root)})
    return out


def _rebase_file(value: Any, root: Path) -> Any:
    if isinstance(value, Mapping) and isinstance(value.get("file"), str):
        return {**value, "file": _abs(value["file"], root)}
    return value


def _is_relative_path(source: str) -> bool:
    return source.startswith(".") or (
        "/" in source and not source.startswith(("/", "~", "$"))
    )


def _abs(path: str, root: Path) -> str:
    if path.startswith(("/", "~")):
        return path
    return str(PurePosixPath(root.as_posix()) / path) if path not in (".", "./") else root.as_posix()


def _escape(value: Any) -> Any:
    """Values are interpolated already; `$` must survive Compose's second pass."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value
