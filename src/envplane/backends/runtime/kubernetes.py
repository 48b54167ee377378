"""The kubernetes runtime: kubectl against one cluster (a kubeconfig context), one
namespace per instance. Every process runs through run.py; what kubectl prints is parsed
here by pure functions.

A namespace is the instance's only when its envplane labels say so: `up` will not take
over, and `down --purge` will not delete, a namespace that someone else made.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from envplane.commands import kubectl
from envplane.commands.kubectl import Cluster
from envplane.errors import BackendError
from envplane.run import run
from envplane.secret import Secret

OWNER_LABELS = ("envplane.app", "envplane.env", "envplane.instance")


@dataclass(frozen=True)
class PodFact:
    namespace: str
    name: str
    env: str
    instance: str
    service: str
    phase: str
    ready: str  # "1/1"
    restarts: int


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def check(self) -> None:
        result = run(kubectl.ready(self.cluster), check=False, what="kubectl get --raw=/readyz", timeout=60)
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            raise BackendError(
                f"the cluster of context {self.cluster.context} does not answer: {detail[0]}",
                "check `kubectl --context=NAME get nodes`, and environments.<env>.kubernetes "
                "(context, kubeconfig) in envplane.yaml",
            )

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """The namespace's labels, or None when there is no such namespace."""
        out = run(
            kubectl.get_namespace(self.cluster, namespace), what=f"kubectl get namespace {namespace}"
        ).stdout
        return namespace_labels(out)

    def claim(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Refuse a namespace that exists and is not this instance's (by its labels)."""
        found = self.namespace_labels(namespace)
        if found is not None and not owned(found, labels):
            raise BackendError(
                f"namespace {namespace} exists and is not {labels.get('envplane.app')} "
                f"{labels.get('envplane.instance')}'s (its envplane labels: "
                f"{ {k: found.get(k) for k in OWNER_LABELS} })",
                "envplane uses only namespaces it made for the instance; remove or rename the other one",
            )

    def apply(self, source: Path) -> None:
        run(kubectl.apply(self.cluster, str(source)), what=f"kubectl apply {source.name}", timeout=600)

    def apply_text(self, text: str, secrets: Iterable[Secret], what: str) -> None:
        """Apply objects given on stdin (Secrets: their values never reach a file or a command line)."""
        run(kubectl.apply(self.cluster, "-"), input=text, secrets=secrets, what=what, timeout=600)

    def listed(
        self, namespace: str, app: str, instance: str, kinds: Iterable[str] = kubectl.INSTANCE_KINDS
    ) -> list[str]:
        out = run(
            kubectl.listed(self.cluster, namespace, app, instance, kinds),
            what=f"kubectl get (namespace {namespace})",
        ).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def delete(self, namespace: str, names: list[str]) -> None:
        if names:
            run(
                kubectl.delete(self.cluster, namespace, names),
                what=f"kubectl delete in {namespace}",
                timeout=600,
            )

    def rollout(self, namespace: str, kind: str, name: str, timeout: float) -> None:
        result = run(
            kubectl.rollout_status(self.cluster, namespace, kind, name, timeout),
            check=False,
            what=f"kubectl rollout status {kind}/{name}",
            timeout=timeout + 30,
        )
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no answer"]
            raise BackendError(
                f"{kind} {name} in namespace {namespace} did not roll out within "
                f"{timeout:.0f} s: {detail[0]}",
                f"see `kubectl --context={self.cluster.context} --namespace={namespace} "
                f"describe pods`; raise --timeout if it is only slow",
            )

    def delete_instance(self, namespace: str, app: str, instance: str) -> None:
        run(
            kubectl.delete_instance(self.cluster, namespace, app, instance),
            what=f"kubectl delete (namespace {namespace})",
            timeout=600,
        )

    def delete_namespace(self, namespace: str, timeout: float = 300) -> None:
        run(
            kubectl.delete_namespace(self.cluster, namespace, timeout),
            what=f"kubectl delete namespace {namespace}",
            timeout=timeout + 30,
        )

    def pods(self, app: str, env: str | None = None) -> list[PodFact]:
        out = run(kubectl.pods(self.cluster, app, env), what="kubectl get pods").stdout
        return parse_pods(out)


def namespace_labels(output: str) -> dict[str, str] | None:
    """`kubectl get namespace --ignore-not-found -o json`: labels, or None when it prints nothing."""
    if not output.strip():
        return None
    labels = json.loads(output).get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def owned(found: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(found.get(key) == labels.get(key) for key in OWNER_LABELS)


def parse_pods(output: str) -> list[PodFact]:
    """`kubectl get pods -o json` -> one PodFact per pod."""
    facts = []
    for item in json.loads(output or "{}").get("items", []):
        meta = item.get("metadata", {})
        labels = meta.get("labels") or {}
        statuses = item.get("status", {}).get("containerStatuses") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        total = len(item.get("spec", {}).get("containers") or statuses)
        facts.append(
            PodFact(
                namespace=meta.get("namespace", ""),
                name=meta.get("name", ""),
                env=labels.get("envplane.env", ""),
                instance=labels.get("envplane.instance", ""),
                service=labels.get("envplane.service", ""),
                phase=item.get("status", {}).get("phase", "Unknown"),
                ready=f"{ready}/{total}",
                restarts=sum(int(s.get("restartCount", 0)) for s in statuses),
            )
        )
    return facts
