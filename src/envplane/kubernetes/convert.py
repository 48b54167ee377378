"""An env instance as Kubernetes objects: Target in, Manifests out. Pure.

One namespace per instance (`{app}-{env}[-pr-N]`) holds:
- a Deployment per stateless service, a StatefulSet per stateful one (the one rule of
  release/stateful.py, carried by the Target);
- a Service per Compose service, named like it, so `db:5432` still resolves (headless
  when it has no known port, or runs as a StatefulSet), and one per network alias;
- a PersistentVolumeClaim per named volume, and `instance-data` for binds under the data
  path;
- NetworkPolicies: nothing from other namespaces gets in, pods on one Compose network
  reach each other, the ingress controller reaches the public services;
- an Ingress (networking.k8s.io/v1, Traefik's class as k3s ships it) for the env's domain.
Secrets are named, never filled: `{service}-env` holds a service's env-file variables
(resources, `secrets:` of the spec, `env_file:`, variables Compose takes from the shell),
`{name}-secret` a Compose secret; the runtime makes them from the secret store at apply
time (secrets.py), and `render` writes them only with --include-secrets.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envplane.errors import Problem, SpecError
from envplane.kubernetes import matrix
from envplane.kubernetes.names import (
    LABEL,
    LABEL_SERVICE,
    LABEL_VOLUME,
    dns_label,
    env_secret,
    label_value,
    namespace,
    network_label,
    secret_name,
)
from envplane.kubernetes.pod import Pod, PodBuilder
from envplane.spec.source import FieldPath
from envplane.target import Target

Obj = dict[str, Any]
INGRESS_NAME = "public"
STATEFUL_NAME_LIMIT = 52  # a StatefulSet's pods carry a label of its name plus a hash


@dataclass(frozen=True)
class SecretSource:
    """A Secret the runtime makes at apply time; nothing of its values is in the manifests.

    kind "env": a service's env-file variables — `provided` (from the provisioner and the
    secret store), each of `env_files` (read then), `passthrough` (the shell's values).
    kind "file": a Compose secret, from `file` or the variable `environment`.
    """

    name: str
    kind: Literal["env", "file"]
    service: str = ""
    provided: tuple[str, ...] = ()
    env_files: tuple[tuple[str, bool], ...] = ()
    passthrough: tuple[str, ...] = ()
    file: str | None = None
    environment: str | None = None


@dataclass(frozen=True)
class Manifests:
    namespace: str
    objects: tuple[Obj, ...]  # the Namespace first, then in the order they apply
    secrets: tuple[SecretSource, ...] = ()
    workloads: tuple[tuple[str, str], ...] = ()  # (kind, name): what a rollout waits for
    warnings: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # the instance's, on every object


def convert(target: Target, base_dir: Path) -> Manifests:
    """The instance's objects; SpecError naming each field that does not map (file:line).
    `base_dir`: where the Compose files' relative paths start."""
    problems: list[Problem] = []
    warnings: list[str] = list(target.warnings)
    model = target.compose
    services: Mapping[str, Any] = model.services

    def problem(service: str, path: FieldPath, message: str, hint: str) -> None:
        problems.append(model.problem(("services", service, *path), message, hint))

    matrix.refused_keys(services, problem)
    ns, labels = identity(target)
    settings = target.env.kubernetes
    pods: dict[str, Pod] = {}
    for service in target.services:
        name = service.name
        limit = STATEFUL_NAME_LIMIT if service.stateful else 63
        if not LABEL.match(name) or len(name) > limit:
            problem(
                name,
                (),
                f"service name {name} is not a Kubernetes Service name: other services reach it "
                f"by this name, so it must be {limit} characters of a-z, 0-9 and '-', starting with a letter",
                "rename the service in the Compose files",
            )
        pods[name] = PodBuilder(
            name=name,
            svc=services[name],
            data_path=target.data_path,
            base_dir=base_dir.as_posix(),
            provided=service.provided,
            envplane_env=service.env,
            health_path=service.health,
            public_port=service.public.port if service.public else None,
            top=model.data,
            problem=functools.partial(problem, name),
            warn=warnings.append,
        ).build()
    claims = _claims(pods, problems, model)
    aliases = _aliases(pods, problems, model)
    if problems:
        raise SpecError(problems)
    objects: list[Obj] = [_object("v1", "Namespace", ns, None, labels)]
    objects += [
        _claim(
            ns,
            labels,
            claim,
            volume,
            settings.volume_sizes.get(volume, settings.volume_size),
            settings.storage_class,
        )
        for claim, volume in claims.items()
    ]
    workloads: list[tuple[str, str]] = []
    secrets: list[SecretSource] = []
    for service in target.services:
        pod = pods[service.name]
        kind = "StatefulSet" if service.stateful else "Deployment"
        env_source = _env_secret(service.name, service.provided, pod)
        if env_source is not None:
            pod.spec["containers"][0]["envFrom"] = [{"secretRef": {"name": env_source.name}}]
            secrets.append(env_source)
        objects.append(_workload(ns, labels, service.name, kind, pod))
        objects += _services(
            ns,
            labels,
            service.name,
            pod,
            aliases.get(service.name, []),
            headless=service.stateful or not pod.ports,
        )
        workloads.append((kind, service.name))
    secrets += _compose_secrets(pods, model.data.get("secrets") or {}, base_dir)
    objects += _network_policies(ns, labels, target, pods)
    ingress = _ingress(ns, labels, target)
    if ingress is not None:
        objects.append(ingress)
    return Manifests(
        ns, tuple(objects), tuple(secrets), tuple(workloads), tuple(dict.fromkeys(warnings)), labels
    )


def identity(target: Target) -> tuple[str, dict[str, str]]:
    """The instance's namespace and the labels every object of it carries."""
    return namespace(target.app, target.instance), {k: label_value(v) for k, v in target.labels.items()}


def _object(api: str, kind: str, name: str, ns: str | None, labels: Mapping[str, str], **extra: Any) -> Obj:
    meta: Obj = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    meta["labels"] = dict(labels)
    return {"apiVersion": api, "kind": kind, "metadata": meta, **extra}


def _claims(pods: Mapping[str, Pod], problems: list[Problem], model: Any) -> dict[str, str]:
    """claim name -> Compose volume key (DATA_CLAIM for the data path), each once."""
    found: dict[str, str] = {}
    for _service, pod in pods.items():
        for claim, volume in pod.claims.items():
            other = found.setdefault(claim, volume)
            if other != volume:
                problems.append(
                    model.problem(
                        ("volumes", volume),
                        f"volumes {other} and {volume} both become the claim {claim}",
                        "rename one of them",
                    )
                )
    return found


def _aliases(pods: Mapping[str, Pod], problems: list[Problem], model: Any) -> dict[str, list[str]]:
    """service -> the other names it answers to (its network aliases, and the names `links`
    of other services give it): each is a Service of its own, so a name nothing else takes."""
    found: dict[str, list[str]] = {}
    owner: dict[str, str] = {name: name for name in pods}
    wanted = [(name, alias, "networks") for name, pod in pods.items() for alias in pod.aliases]
    wanted += [
        (target, alias, "links") for pod in pods.values() for target, alias in pod.links if target in pods
    ]
    for service, alias, key in wanted:
        if owner.setdefault(alias, service) != service or not LABEL.match(alias):
            problems.append(
                model.problem(
                    ("services", service, key),
                    f"alias {alias} of {service} cannot be a Service of its own: another service or alias "
                    "has that name, or it is not a DNS label",
                    "rename the alias",
                )
            )
        elif alias != service and alias not in found.get(service, []):
            found.setdefault(service, []).append(alias)
    return found


def _claim(
    ns: str, labels: Mapping[str, str], claim: str, volume: str, size: str, storage_class: str | None
) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return _object(
        "v1", "PersistentVolumeClaim", claim, ns, {**labels, LABEL_VOLUME: label_value(volume)}, spec=spec
    )


def _selector(labels: Mapping[str, str], service: str) -> dict[str, str]:
    return {
        "envplane.app": labels["envplane.app"],
        "envplane.instance": labels["envplane.instance"],
        LABEL_SERVICE: service,
    }


def _workload(ns: str, labels: Mapping[str, str], name: str, kind: str, pod: Pod) -> Obj:
    own = {**labels, LABEL_SERVICE: name}
    template_labels = {**own, **{network_label(n): "true" for n in pod.networks}}
    spec = dict(pod.spec)
    annotations = spec.pop("__annotations__", None)
    # Pods hold no API credential, and no `{SERVICE}_PORT=tcp://…` variables that Compose
    # would not set (they break apps that read e.g. DB_PORT as a number).
    spec = {**spec, "automountServiceAccountToken": False, "enableServiceLinks": False}
    template: Obj = {"metadata": {"labels": template_labels}, "spec": spec}
    if annotations:
        template["metadata"]["annotations"] = annotations
    body: Obj = {"replicas": pod.replicas, "selector": {"matchLabels": _selector(labels, name)}}
    if kind == "StatefulSet":
        body["serviceName"] = name
    else:
        # One new pod beside the old until it is ready: no gap with a single replica.
        body["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    body["template"] = template
    obj = _object("apps/v1", kind, name, ns, own, spec=body)
    if pod.annotations:
        obj["metadata"]["annotations"] = pod.annotations
    return obj


def _services(
    ns: str, labels: Mapping[str, str], name: str, pod: Pod, aliases: list[str], headless: bool
) -> list[Obj]:
    """The Service named after the Compose service, and one per alias. Without a known
    port it is headless: the name resolves to the pods and every port answers, as on a
    Compose network."""
    spec: Obj = {"selector": _selector(labels, name)}
    if headless:
        spec["clusterIP"] = "None"
    if pod.ports:
        spec["ports"] = [
            {"name": f"{proto.lower()}-{port}", "port": port, "targetPort": port, "protocol": proto}
            for port, proto in pod.ports
        ]
    own = {**labels, LABEL_SERVICE: name}
    return [_object("v1", "Service", alias, ns, own, spec=dict(spec)) for alias in (name, *aliases)]


def _env_secret(service: str, provided: tuple[str, ...], pod: Pod) -> SecretSource | None:
    if not (provided or pod.env_files or pod.passthrough):
        return None
    return SecretSource(
        env_secret(service), "env", service, provided, tuple(pod.env_files), tuple(pod.passthrough)
    )


def _compose_secrets(
    pods: Mapping[str, Pod], declared: Mapping[str, Any], base_dir: Path
) -> list[SecretSource]:
    found: list[SecretSource] = []
    for name in dict.fromkeys(s for pod in pods.values() for s in pod.secrets):
        top = declared[name]
        file = (
            posixpath.normpath(posixpath.join(base_dir.as_posix(), str(top["file"])))
            if top.get("file")
            else None
        )
        found.append(SecretSource(secret_name(name), "file", file=file, environment=top.get("environment")))
    return found


def _network_policies(
    ns: str, labels: Mapping[str, str], target: Target, pods: Mapping[str, Pod]
) -> list[Obj]:
    """Ingress is denied by default; pods on one Compose network reach each other (Compose's
    networks keep `redis` and `db` apart in nextcloud); the ingress controller reaches the
    public services on their public ports. Egress stays open (DNS, the resource servers)."""

    def policy(name: str, spec: Obj) -> Obj:
        return _object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            name,
            ns,
            labels,
            spec={**spec, "policyTypes": ["Ingress"]},
        )

    policies = [policy("default-deny-ingress", {"podSelector": {}})]
    for network in dict.fromkeys(n for pod in pods.values() for n in pod.networks):
        members = {"matchLabels": {network_label(network): "true"}}
        policies.append(
            policy(
                dns_label(f"network-{network}"),
                {"podSelector": members, "ingress": [{"from": [{"podSelector": members}]}]},
            )
        )
    public = [s for s in target.services if s.public is not None]
    if target.domain and public:
        controller = target.env.kubernetes.ingress_controller
        peer = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": controller.namespace}},
            "podSelector": {"matchLabels": dict(controller.labels)},
        }
        ports = [{"port": s.public.port, "protocol": "TCP"} for s in public if s.public is not None]
        policies.append(
            policy(
                "allow-ingress-controller",
                {
                    "podSelector": {
                        "matchExpressions": [
                            {"key": LABEL_SERVICE, "operator": "In", "values": [s.name for s in public]}
                        ]
                    },
                    "ingress": [{"from": [peer], "ports": ports}],
                },
            )
        )
    return policies


def _ingress(ns: str, labels: Mapping[str, str], target: Target) -> Obj | None:
    public = [s for s in target.services if s.public is not None]
    if not target.domain or not public:
        return None
    paths = [
        {
            "path": s.public.path,
            "pathType": "Prefix",
            "backend": {"service": {"name": s.name, "port": {"number": s.public.port}}},
        }
        for s in public
        if s.public is not None
    ]
    spec = {
        "ingressClassName": target.env.kubernetes.ingress_class,
        "rules": [{"host": target.domain, "http": {"paths": paths}}],
    }
    return _object("networking.k8s.io/v1", "Ingress", INGRESS_NAME, ns, labels, spec=spec)
