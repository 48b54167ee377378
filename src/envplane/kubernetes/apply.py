"""Run an instance's plan on the kubernetes runtime: Applier.up and Applier.down hand
envs with `runtime: kubernetes` to these functions. Resource steps run as for compose
(through the Applier); the rest go to the cluster through KubernetesRuntime.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from envplane.backends.runtime.base import Leftovers
from envplane.backends.runtime.kubernetes import KubernetesRuntime
from envplane.kubernetes import render, secrets, yamlout
from envplane.kubernetes.convert import Manifests, identity
from envplane.kubernetes.plan import cluster, instance_manifests, manifests_dir
from envplane.plan import Plan, Step, instance_dir
from envplane.target import Target

if TYPE_CHECKING:
    from envplane.apply import Applier, Outcome, Removal

RESOURCE_STEPS = {"secrets", "database", "bucket", "s3key", "cache"}
_RESOURCE_NAMES = {
    "Deployment": "deployment.apps",
    "StatefulSet": "statefulset.apps",
    "Service": "service",
    "Ingress": "ingress.networking.k8s.io",
    "NetworkPolicy": "networkpolicy.networking.k8s.io",
    "Secret": "secret",
}


def runtime_for(applier: Applier, target: Target) -> KubernetesRuntime:
    return KubernetesRuntime(cluster(applier.project.root, target.env))


def up(applier: Applier, plan: Plan) -> Outcome:
    target = plan.target
    runtime = runtime_for(applier, target)
    runtime.check()
    found = instance_manifests(target)
    outcome = applier.run_steps(plan, lambda step: _run(applier, runtime, target, found, step))
    outcome.urls = target.public_urls()  # the Ingress serves the env's domain
    return outcome


def _run(applier: Applier, runtime: KubernetesRuntime, target: Target, found: Manifests, step: Step) -> str:
    root = applier.project.root
    folder = manifests_dir(root, target)
    match step.kind:
        case "isolation" | "record":
            return "ok"
        case kind if kind in RESOURCE_STEPS:
            return applier.run_step(step, target)
        case "render":
            render.write_dir(folder, render.manifest_files(found))
        case "namespace":
            runtime.claim(found.namespace, found.labels)
            runtime.apply(folder / "00-namespace.yaml")
        case "kube-secrets":
            provisioner = applier._provisioner(target)
            values = secrets.values(
                found, lambda name: provisioner.variables(target.service(name)), applier.project.environ
            )
            text = yamlout.dump_all(secrets.objects(found, values))
            runtime.apply_text(
                text, secrets.every_value(values), what=f"kubectl apply (Secrets of {target.id})"
            )
        case "apply":
            runtime.apply(folder)
        case "prune":
            keep = {_name(obj) for obj in found.objects} | {f"secret/{s.name}" for s in found.secrets}
            stale = [
                n
                for n in runtime.listed(
                    found.namespace, found.labels["envplane.app"], found.labels["envplane.instance"]
                )
                if n not in keep
            ]
            if not stale:
                return "skip"
            runtime.delete(found.namespace, stale)
        case "rollout":
            kind, name = step.resource.split("/", 1)
            runtime.rollout(found.namespace, kind, name, applier.health_timeout)
        case _:
            raise AssertionError(f"plan step {step.kind!r} has no executor on kubernetes")
    return "ok"


def _name(obj: dict[str, object]) -> str:
    """An object as `kubectl get -o name` prints it."""
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    return f"{_RESOURCE_NAMES.get(str(obj['kind']), str(obj['kind']).lower())}/{meta['name']}"


def down(applier: Applier, target: Target, purge: bool) -> Removal:
    """Remove the instance's objects, by its labels in its namespace; with purge the
    namespace itself, its volumes with it (only when its labels say it is the instance's),
    then its resources and secrets as on compose (what a purge could not drop is kept)."""
    from envplane.apply import Removal

    runtime = runtime_for(applier, target)
    runtime.check()
    ns, mine = identity(target)  # not the manifests: a Compose file changed since may no longer map
    app, instance = mine["envplane.app"], mine["envplane.instance"]
    labels = runtime.namespace_labels(ns)
    if labels is not None:
        runtime.claim(ns, mine)
        if purge:
            runtime.delete_namespace(ns)
        else:
            runtime.delete_instance(ns, app, instance)
    folder = instance_dir(applier.project.root, target)
    if folder.exists():
        shutil.rmtree(folder)
    kept: tuple[str, ...] = ()
    if purge and (target.database or target.bucket or target.redis_prefix):
        kept = tuple(applier._provisioner(target).purge())
    if labels is None:
        return Removal(Leftovers((), (), ()), kept)
    if purge:
        left = () if runtime.namespace_labels(ns) is None else (f"namespace/{ns}",)
        return Removal(Leftovers(left, (), ()), kept)
    # its volumes stay, on purpose
    return Removal(Leftovers(tuple(runtime.listed(ns, app, instance)), (), ()))
