"""What `render --format kubernetes|helm`, `plan` and `up` call: the checks of an env on
Kubernetes, its manifests as files, the chart of every env.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envplane.errors import Problem, SpecError, UsageError
from envplane.kubernetes import yamlout
from envplane.kubernetes.convert import Manifests, convert
from envplane.kubernetes.helm import STAND_IN_PR, STAND_IN_RUN, EnvManifests, chart
from envplane.kubernetes.names import LABEL_SERVICE
from envplane.kubernetes.pod import DATA_CLAIM
from envplane.private import make_dirs, write_private
from envplane.spec.load import Project
from envplane.target import Target, resolve

# The files of one instance, in the order `kubectl apply -f DIR` takes them (by name).
_FILES = re.compile(r"^(00-namespace|10-secrets|20-volumes|30-.+|40-network-policies|50-ingress)\.yaml$")


def manifests(project: Project, target: Target) -> Manifests:
    """The instance's objects, every check done: SpecError names each field that does not
    map (file:line), and each setting of the env that names what is not there."""
    problems = settings_problems(project, target)
    try:
        found = convert(target, project.compose[0].file.parent)
    except SpecError as exc:
        raise SpecError([*exc.problems, *problems]) from None
    if problems:
        raise SpecError(problems)
    return found


def settings_problems(project: Project, target: Target) -> list[Problem]:
    env = target.env.name
    problems = []
    known = {*target.volumes, DATA_CLAIM}
    for volume in target.env.kubernetes.volume_sizes:
        if volume not in known:
            problems.append(
                project.doc.problem(
                    ("environments", env, "kubernetes", "volume_sizes", volume),
                    f"no volume {volume!r} in the Compose files",
                    "volumes: " + ", ".join(sorted(known)),
                )
            )
    if target.env.runtime != "kubernetes":
        return problems
    if target.env.kubernetes.context is None:
        problems.append(
            project.doc.problem(
                ("environments", env, "runtime"),
                f"env {env} runs on Kubernetes but names no cluster",
                f"add `kubernetes: {{context: NAME}}` under environments.{env} or its hosts: entry (a "
                "context of your kubeconfig); envplane never applies to whatever context is current",
            )
        )
    for hook in project.spec.hooks:
        problems.append(
            project.doc.problem(
                ("hooks", hook),
                f"the {hook} hook does not run on the kubernetes runtime yet",
                f"run it from the app's start-up, or keep env {env} on compose",
            )
        )
    return problems


def manifest_files(found: Manifests, secret_objects: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """file name -> YAML: one file per kind of thing, one per service."""
    groups: dict[str, list[dict[str, Any]]] = {}
    if secret_objects:
        groups["10-secrets.yaml"] = secret_objects
    for obj in found.objects:
        kind = obj["kind"]
        if kind == "Namespace":
            name = "00-namespace.yaml"
        elif kind == "PersistentVolumeClaim":
            name = "20-volumes.yaml"
        elif kind == "NetworkPolicy":
            name = "40-network-policies.yaml"
        elif kind == "Ingress":
            name = "50-ingress.yaml"
        else:
            name = f"30-{obj['metadata']['labels'][LABEL_SERVICE]}.yaml"
        groups.setdefault(name, []).append(obj)
    return {name: yamlout.dump_all(groups[name]) for name in sorted(groups)}


def stream(found: Manifests, secret_objects: list[dict[str, Any]] | None = None) -> str:
    """Every file of manifest_files as one YAML stream, in the same order."""
    return "".join(manifest_files(found, secret_objects).values())


def write_dir(folder: Path, files: Mapping[str, str]) -> list[Path]:
    """Write the files (0600); remove files of an earlier render that this one has not,
    so `kubectl apply -f DIR` applies nothing stale. Other files are left alone."""
    make_dirs(folder)
    for old in folder.iterdir():
        if _FILES.match(old.name) and old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        write_private(folder / name, text.encode("utf-8"))
        written.append(folder / name)
    return written


def chart_files(project: Project) -> dict[str, str]:
    """The chart of every env of the spec. Host ports play no part on Kubernetes, so each
    env is resolved with ports left to the engine (a stand-in PR number fits no block)."""
    free = replace(
        project,
        envs=MappingProxyType(
            {name: replace(env, port_mode="ephemeral") for name, env in project.envs.items()}
        ),
    )
    envs = []
    problems: list[Problem] = []
    for name, env in free.envs.items():
        per = {"per-pr": "pr", "per-run": "run"}.get(env.instances, "")
        try:
            target = resolve(
                free, name, STAND_IN_PR if per == "pr" else None, STAND_IN_RUN if per == "run" else None
            )
            envs.append(EnvManifests(name, manifests(free, target), per))
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise SpecError(list({p.render(): p for p in problems}.values()))
    return chart(project.app, envs)


def write_chart(folder: Path, files: Mapping[str, str]) -> None:
    """Write the chart; templates and values files of an earlier chart that this one has
    not (a service since removed) go, so Helm renders nothing stale."""
    for sub, pattern in (
        ("templates", re.compile(r".+\.(yaml|tpl)$")),
        ("", re.compile(r"^values-.+\.yaml$")),
    ):
        here = folder / sub
        if here.is_dir():
            for old in here.iterdir():
                name = f"{sub}/{old.name}" if sub else old.name
                if old.is_file() and pattern.match(old.name) and name not in files:
                    old.unlink()
    for name, text in files.items():
        write_private(folder / name, text.encode("utf-8"))


def stored_secrets(
    project: Project, target: Target, found: Manifests, environ: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The instance's Secrets from what the secret store holds (`render --include-secrets`).
    Render creates nothing: a password not generated yet is an error, not a new password."""
    from envplane.backends.secrets import open_secret_store
    from envplane.kubernetes import secrets
    from envplane.provision import Provisioner, Servers, store_kind

    store = open_secret_store(store_kind(target, environ), project.root, environ, target.app)
    for resource, needed in (("postgres", target.database), ("redis", target.redis_prefix)):
        if needed and not store.read(f"{target.secrets_prefix}/{resource}").get("password"):
            raise UsageError(
                f"{target.app} {target.id} has no {resource} password yet",
                f"run `envplane provision {target.env.name}` first (render never makes one)",
            )
    provisioner = Provisioner(target, Servers.for_target(target, environ), store, project.root)
    values = secrets.values(found, lambda name: provisioner.variables(target.service(name)), environ)
    return secrets.objects(found, values)
