"""The spec's `hosts:` read into Engines and Kubernetes clusters, and its keys checked
against the envs. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from envplane.errors import Problem
from envplane.hosts.engine import LOCAL, Engine, parse
from envplane.spec.ladder import EnvConfig
from envplane.spec.models import HostSpec, Spec
from envplane.spec.source import Document


def engines_of(spec: Spec, root: Path) -> dict[str, Engine]:
    """`hosts:` key -> its Docker Engine (clusters left out); file paths made absolute
    (relative to envplane.yaml)."""
    return {name: _engine(name, entry, root) for name, entry in spec.hosts.items()
            if entry.engine is not None}


def entry_for(spec: Spec, env: EnvConfig) -> tuple[str, HostSpec] | None:
    """An env's `hosts:` entry: `hosts.<env>`, else `hosts.<its host group>`, else none."""
    for key in (env.name, env.host):
        if key in spec.hosts:
            return key, spec.hosts[key]
    return None


def _engine(name: str, entry: HostSpec, root: Path) -> Engine:
    tls = entry.tls
    return Engine(
        address=parse(entry.engine or "local"),
        name=name,
        identity=_path(entry.identity, root),
        known_hosts=_path(entry.known_hosts, root),
        tls=(str(_path(tls.ca, root)), str(_path(tls.cert, root)), str(_path(tls.key, root)))
        if tls else None,
        servers={str(k): v for k, v in entry.servers.items()},
        proxy_listen=entry.proxy,
    )


def _path(value: str | None, root: Path) -> str | None:
    """`~/…` stays for the user's home (expanded where it is used); others from the spec's folder."""
    if value is None or value.startswith("~"):
        return value
    return str(root / value)


def engine_for(spec: Spec, root: Path, env: EnvConfig) -> Engine:
    """The env's engine; the local one when hosts: names none for it, or names its cluster
    (runtime kubernetes reaches no Docker engine; the entry's `servers:` still count)."""
    found = entry_for(spec, env)
    return LOCAL if found is None else _engine(*found, root)


def with_clusters(spec: Spec, doc: Document, envs: Mapping[str, EnvConfig]
                  ) -> tuple[dict[str, EnvConfig], list[Problem]]:
    """Each env whose hosts: entry is a Kubernetes cluster gets its context and kubeconfig
    (its `kubernetes:` may name the same, never others: one would silently win). Envs on
    Docker under a cluster's entry are refused: they would land on the local engine."""
    out = dict(envs)
    problems: list[Problem] = []
    on_docker: dict[str, list[str]] = {}
    for name, env in envs.items():
        found = entry_for(spec, env)
        if found is None or found[1].kubernetes is None:
            continue
        key, cluster = found[0], found[1].kubernetes
        if env.runtime != "kubernetes":
            on_docker.setdefault(key, []).append(name)
            continue
        for field in ("context", "kubeconfig"):
            mine, theirs = getattr(env.kubernetes, field), getattr(cluster, field)
            if mine is not None and mine != theirs:
                problems.append(doc.problem(
                    ("hosts", key, "kubernetes", field),
                    f"env {name} names {field} {mine!r} in environments.{name}.kubernetes, hosts.{key} "
                    f"names {theirs!r}", f"name the cluster in one place: drop {field} from one of them"))
        out[name] = replace(env, kubernetes=env.kubernetes.model_copy(
            update={"context": cluster.context, "kubeconfig": cluster.kubeconfig}))
    for key, names in on_docker.items():
        problems.append(doc.problem(
            ("hosts", key, "kubernetes"),
            f"a Kubernetes cluster, but {', '.join(names)} {'runs' if len(names) == 1 else 'run'} on Docker "
            "(their runtime is not kubernetes)",
            f"give {'it' if len(names) == 1 else 'each'} `runtime: kubernetes`, or an entry of "
            f"{'its' if len(names) == 1 else 'their'} own in hosts: (e.g. `{names[0]}: local`)"))
    return out, problems


def key_problems(spec: Spec, doc: Document, envs: Mapping[str, EnvConfig]) -> list[Problem]:
    """Each `hosts:` key names an env or a host group of one: a typo would leave an env on
    the local engine without a word."""
    groups = sorted({env.host for env in envs.values()})
    return [
        doc.problem(("hosts", name), f"no env or host group {name!r}",
                    "host groups: " + ", ".join(groups) + "; envs: " + ", ".join(envs))
        for name in spec.hosts if name not in envs and name not in groups
    ]
