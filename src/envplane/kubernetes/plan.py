"""The steps of `up` on the kubernetes runtime. Pure: a Target in, Steps out.

Resources are provisioned as for compose (the pods reach the same servers); what differs
is how the instance reaches its engine: manifests instead of a Compose file, its Secrets
made from the secret store on kubectl's stdin instead of env files, a server-side apply,
and a rollout wait instead of container health checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envplane.commands import kubectl
from envplane.commands.kubectl import Cluster
from envplane.errors import UsageError
from envplane.kubernetes.convert import Manifests, convert
from envplane.plan import Step, instance_dir
from envplane.spec.ladder import EnvConfig
from envplane.target import Target


def manifests_dir(root: Path, target: Target) -> Path:
    return instance_dir(root, target) / "kubernetes"


def cluster(root: Path, env: EnvConfig) -> Cluster:
    """The cluster an env runs on: its kubeconfig context (relative kubeconfig paths start at
    envplane.yaml's folder)."""
    settings = env.kubernetes
    if settings.context is None:
        raise UsageError(
            f"env {env.name} names no Kubernetes cluster",  # plan refuses it earlier
            f"add `kubernetes: {{context: NAME}}` under environments.{env.name} or its hosts: entry",
        )
    config = str((root / Path(settings.kubeconfig).expanduser()).resolve()) if settings.kubeconfig else None
    return Cluster(settings.context, config)


def instance_manifests(target: Target) -> Manifests:
    return convert(target, target.compose.files[0].parent)


def steps(target: Target, root: Path, resources: Sequence[Step]) -> list[Step]:
    found = instance_manifests(target)
    ns = found.namespace
    folder = manifests_dir(root, target)
    where = cluster(root, target.env)
    out = [s for s in resources if s.kind != "envfile"]  # the env files' variables go to Secrets
    out += [
        Step(
            "render", "create", f"write the instance's manifests to {folder} (no secret values)", str(folder)
        ),
        Step(
            "namespace",
            "create",
            f"create namespace {ns} on context {where.context} (refused if it "
            "exists and is not this instance's)",
            ns,
        ),
    ]
    if found.secrets:
        names = ", ".join(s.name for s in found.secrets)
        out.append(
            Step(
                "kube-secrets",
                "create",
                f"make Secrets {names} from the secret store (on kubectl's stdin, never on disk)",
                ns,
            )
        )
    out += [
        Step(
            "apply",
            "run",
            f"server-side apply of the manifests to namespace {ns}",
            ns,
            command=tuple(kubectl.apply(where, str(folder))),
        ),
        Step(
            "prune", "run", "delete the instance's objects the manifests no longer have (never a volume)", ns
        ),
    ]
    out += [
        Step("rollout", "check", f"wait until {kind} {name} has rolled out", f"{kind}/{name}")
        for kind, name in found.workloads
    ]
    return out
