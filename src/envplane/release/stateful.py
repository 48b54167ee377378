"""Which services hold data, and so run once per instance instead of once per colour.

Pure: a Compose service, the spec's `stateful:` and the instance's data path in, a
verdict with its reason out. One rule in one place: the target carries the verdict of
each service, blue-green colours only the others (colours.py), `envplane plan` shows why.

A service is stateful when envplane.yaml says `stateful: true`, or, unless it says
`stateful: false`, when
- its image is a known data store (postgres, mysql, redis, ... below), or
- it mounts, writable, a named volume or a host folder under the instance's data path.
Two copies of such a service on one data folder (two PostgreSQL servers on one cluster)
corrupt it; read-only mounts do not count, two readers of one folder harm nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from envplane.compose.merge import ComposeModel
from envplane.errors import Problem
from envplane.spec.source import Document

# Images whose containers are data stores, by repository name without registry or tag
# (`docker.io/bitnami/postgresql:16` is `postgresql`); a few by their last two parts.
DATA_STORE_IMAGES = frozenset({
    # relational
    "postgres", "postgresql", "postgis", "timescaledb", "timescaledb-ha", "pgvector",
    "mysql", "mysql-server", "mariadb", "percona", "percona-server", "mssql/server", "azure-sql-edge",
    "cockroach", "yugabyte",
    # documents, key-value, caches that persist
    "mongo", "mongodb", "mongodb-community-server", "couchdb", "couchbase", "arangodb",
    "redis", "redis-stack", "redis-stack-server", "valkey", "keydb", "dragonfly", "etcd",
    # queues and logs
    "rabbitmq", "kafka", "zookeeper", "nats-streaming", "activemq", "artemis", "pulsar",
    # search, analytics, time series, graphs, vectors
    "elasticsearch", "opensearch", "solr", "meilisearch", "typesense", "clickhouse",
    "clickhouse-server", "influxdb", "questdb", "cassandra", "scylla", "neo4j",
    "qdrant", "weaviate", "milvus",
    # object stores
    "minio", "seaweedfs", "garage",
})


@dataclass(frozen=True)
class Verdict:
    stateful: bool
    reason: str


def image_name(image: str) -> str:
    """`Registry:5000/team/pg:16@sha256:...` -> `registry:5000/team/pg`: no tag, no digest."""
    repo = image.split("@", 1)[0]
    head, sep, tail = repo.rpartition(":")
    if sep and "/" not in tail:
        repo = head
    return repo.lower()


def is_data_store(image: str) -> bool:
    parts = image_name(image).split("/")
    return parts[-1] in DATA_STORE_IMAGES or "/".join(parts[-2:]) in DATA_STORE_IMAGES


def classify(service: Mapping[str, Any], declared: bool | None, data_path: str, base_dir: str) -> Verdict:
    """The verdict on one Compose service (as loaded: interpolated, merged)."""
    guess = _guess(service, data_path, base_dir)
    if declared is None:
        return guess
    said = f"stateful: {'true' if declared else 'false'} in envplane.yaml"
    if declared is False and guess.stateful:
        said += f" (guessed stateful: {guess.reason})"
    return Verdict(declared, said)


def _guess(service: Mapping[str, Any], data_path: str, base_dir: str) -> Verdict:
    image = service.get("image")
    if isinstance(image, str) and is_data_store(image):
        return Verdict(True, f"its image {image} is a data store")
    for kind, source, target in writable_mounts(service.get("volumes")):
        if kind == "volume":
            return Verdict(True, f"mounts the named volume {source} at {target}")
        if _under(source, data_path, base_dir):
            return Verdict(True, f"mounts {source}, under the data path, at {target}")
    return Verdict(False, "no data-store image, no writable named volume or bind under the data path")


def writable_mounts(volumes: Any) -> Iterator[tuple[str, str, str]]:
    """(kind, source, container path) of each writable mount with a source: kind is
    `volume` (named) or `bind`. Anonymous volumes and tmpfs live and die with a container."""
    for kind, source, target, read_only in mounts(volumes):
        if not read_only:
            yield kind, source, target


def named_volumes(service: Mapping[str, Any]) -> set[str]:
    """The named volumes a service mounts, read-only or not."""
    return {source for kind, source, _, _ in mounts(service.get("volumes")) if kind == "volume"}


def mounts(volumes: Any) -> Iterator[tuple[str, str, str, bool]]:
    """(kind, source, container path, read-only) of each named volume and bind mount."""
    for item in volumes if isinstance(volumes, list) else []:
        source: Any
        target: Any
        if isinstance(item, str):
            parts = item.split(":")
            if len(parts) < 2:
                continue  # anonymous: one per container
            source, target = parts[0], parts[1]
            read_only = "ro" in (parts[2].split(",") if len(parts) > 2 else [])
            kind = "bind" if source.startswith((".", "/", "~")) or "/" in source else "volume"
        elif isinstance(item, Mapping):
            kind, source, target = str(item.get("type", "volume")), item.get("source"), item.get("target")
            if kind not in ("volume", "bind") or not source:
                continue  # tmpfs, npipe, or an anonymous volume
            read_only = item.get("read_only") is True
        else:
            continue
        yield kind, str(source), str(target), read_only


def _under(source: str, data_path: str, base_dir: str) -> bool:
    if source.startswith("~"):
        return False
    path = PurePosixPath(posixpath.normpath(posixpath.join(base_dir, source)))
    return path.is_relative_to(PurePosixPath(data_path))


# Blue-green splits an instance in two kinds of project; these say what cannot be split.

def links_to(service: Mapping[str, Any]) -> dict[str, str]:
    """Other services this one needs by name -> the Compose key that names them."""
    found: dict[str, str] = {}
    depends = service.get("depends_on") or {}
    for name in depends if isinstance(depends, (Mapping, list)) else []:
        found[str(name)] = "depends_on"
    for link in service.get("links") or []:
        found[str(link).split(":", 1)[0]] = "links"
    for source in service.get("volumes_from") or []:
        name = str(source).split(":", 1)[0]
        if not name.startswith("container"):
            found[name] = "volumes_from"
    mode = service.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:"):
        found[mode.removeprefix("service:")] = "network_mode"
    return found


def blue_green_problems(stateful: Mapping[str, Verdict], public: Sequence[str], model: ComposeModel,
                        doc: Document, env: str) -> list[Problem]:
    """Why the services cannot be split into colours and a stateful project: a public
    stateful service (the proxy switches public services between colours), a stateful
    service that needs a coloured one, a coloured one sharing a stateful one's network
    stack or volumes (Compose would start a copy of it in the colour)."""
    problems = []
    for name in public:
        verdict = stateful.get(name)
        if verdict is not None and verdict.stateful:
            problems.append(doc.problem(
                ("services", name, "public"),
                f"service {name} is public and stateful ({verdict.reason}); blue-green switches "
                "public services between two copies",
                f"if two copies may share its data during a deploy, say `stateful: false` under "
                f"services.{name}; else keep its data in a service of its own, or set "
                f"environments.{env}.strategy: recreate"))
    services: Mapping[str, Any] = model.data.get("services", {})
    for name, service in services.items():
        mine = stateful.get(name)
        for other, key in links_to(service).items():
            theirs = stateful.get(other)
            if mine is None or theirs is None:
                continue
            if mine.stateful and not theirs.stateful:
                problems.append(model.problem(
                    ("services", name, key),
                    f"stateful service {name} needs {other}, which blue-green runs per colour",
                    f"say `stateful: true` under services.{other} in envplane.yaml, or drop the {key}"))
            elif not mine.stateful and theirs.stateful and key in ("volumes_from", "network_mode"):
                problems.append(model.problem(
                    ("services", name, key),
                    f"{name} shares the {key.replace('_', ' ')} of stateful service {other}, which "
                    "runs once per instance, outside the colours",
                    f"reach {other} over the network by its name, or say `stateful: false` under "
                    f"services.{other} in envplane.yaml"))
    return problems
