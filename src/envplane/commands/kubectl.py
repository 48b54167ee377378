"""kubectl command lines for one cluster and one instance's namespace: data, never run here.

Every command names its cluster (`--context`, and `--kubeconfig` when the spec gives
one), so none runs against whatever context happens to be current. Options and values
are one argument each (`--context=NAME`): a value can never be read as another option.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FIELD_MANAGER = "envplane"
# What `down` removes and what `up` prunes; PersistentVolumeClaims (the data) only go
# with the namespace, on `down --purge`.
INSTANCE_KINDS = (
    "deployments.apps",
    "statefulsets.apps",
    "services",
    "ingresses.networking.k8s.io",
    "networkpolicies.networking.k8s.io",
    "secrets",
)


@dataclass(frozen=True)
class Cluster:
    context: str
    kubeconfig: str | None = None  # absolute; None: kubectl's own ($KUBECONFIG, ~/.kube/config)

    def kubectl(self, *args: str) -> list[str]:
        config = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        return ["kubectl", *config, f"--context={self.context}", *args]


def selector(app: str, instance: str) -> str:
    return f"envplane.app={app},envplane.instance={instance}"


def ready(cluster: Cluster) -> list[str]:
    """The API server answers (and the context exists)."""
    return cluster.kubectl("get", "--raw=/readyz")


def get_namespace(cluster: Cluster, namespace: str) -> list[str]:
    return cluster.kubectl("get", "namespace", namespace, "--ignore-not-found", "--output=json")


def apply(cluster: Cluster, source: str) -> list[str]:
    """Server-side apply of a file, a folder or `-` (stdin) with envplane's field manager."""
    return cluster.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", f"--filename={source}"
    )


def listed(
    cluster: Cluster, namespace: str, app: str, instance: str, kinds: Iterable[str] = INSTANCE_KINDS
) -> list[str]:
    """The instance's objects as `kind.group/name` lines, found by its labels."""
    return cluster.kubectl(
        "get",
        ",".join(kinds),
        f"--namespace={namespace}",
        f"--selector={selector(app, instance)}",
        "--output=name",
    )


def delete(cluster: Cluster, namespace: str, names: Iterable[str]) -> list[str]:
    """Delete objects named `kind.group/name`, as `listed` prints them."""
    return cluster.kubectl("delete", f"--namespace={namespace}", "--ignore-not-found", "--wait=true", *names)


def delete_instance(cluster: Cluster, namespace: str, app: str, instance: str) -> list[str]:
    """Everything of the instance but its claims (and the namespace holding them)."""
    return cluster.kubectl(
        "delete",
        ",".join(INSTANCE_KINDS),
        f"--namespace={namespace}",
        f"--selector={selector(app, instance)}",
        "--ignore-not-found",
        "--wait=true",
    )


def delete_namespace(cluster: Cluster, namespace: str, timeout: float) -> list[str]:
    return cluster.kubectl(
        "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", f"--timeout={int(timeout)}s"
    )


def rollout_status(cluster: Cluster, namespace: str, kind: str, name: str, timeout: float) -> list[str]:
    return cluster.kubectl(
        "rollout",
        "status",
        f"{kind.lower()}/{name}",
        f"--namespace={namespace}",
        f"--timeout={int(timeout)}s",
    )


def pods(cluster: Cluster, app: str, env: str | None = None) -> list[str]:
    """The app's pods in every namespace (an env's instances each have their own)."""
    labels = f"envplane.app={app}" + (f",envplane.env={env}" if env else "")
    return cluster.kubectl("get", "pods", "--all-namespaces", f"--selector={labels}", "--output=json")


def logs(cluster: Cluster, namespace: str, service: str, follow: bool, tail: int = 200) -> list[str]:
    return cluster.kubectl(
        "logs",
        f"--namespace={namespace}",
        f"--selector=envplane.service={service}",
        f"--tail={tail}",
        "--prefix",
        *(["--follow"] if follow else []),
    )
