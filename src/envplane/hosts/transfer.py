"""Which images an instance's host needs, and sending them there (hosts/images.py does it).

`up` on a remote host sends the images of the instance that this machine's engine holds
and the host lacks (built here, or loaded here); a release sends its recorded image IDs,
through the spec's registry when it names one, else over SSH by missing layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from envplane.hosts import images
from envplane.hosts.engine import LOCAL
from envplane.provision import store_kind
from envplane.secret import Secret
from envplane.spec.load import Project
from envplane.target import Target

REGISTRY_SERVICE = "registry"  # secrets set ENV REGISTRY_USERNAME --service registry


def instance_images(target: Target) -> list[str]:
    """The image references of the instance's services (interpolated, as Compose reads them)."""
    found = [str(svc["image"]) for svc in target.compose.data.get("services", {}).values()
             if isinstance(svc, Mapping) and svc.get("image")]
    return list(dict.fromkeys(found))


def unbuilt(target: Target) -> list[str]:
    """Images of services with `build:` that neither this machine's engine nor the host has."""
    return [str(svc["image"]) for svc in target.compose.data.get("services", {}).values()
            if isinstance(svc, Mapping) and svc.get("build") and svc.get("image")
            and images.image_id(LOCAL, str(svc["image"])) is None
            and images.image_id(target.engine, str(svc["image"])) is None]


def images_to_host(project: Project, target: Target) -> list[images.Sent]:
    sent = []
    for ref in instance_images(target):
        found = images.image_id(LOCAL, ref)
        if found is not None and images.image_id(target.engine, ref) != found:
            sent.append(images.send(ref, found, LOCAL, target.engine))
    return sent


def registry_credentials(project: Project, target: Target) -> tuple[Secret | None, Secret | None]:
    """REGISTRY_USERNAME and REGISTRY_PASSWORD of the env, from the secret store (service
    `registry`: `envplane secrets set ENV REGISTRY_PASSWORD --service registry`)."""
    from envplane.backends.secrets import open_secret_store

    store = open_secret_store(store_kind(target, project.environ), project.root, project.environ,
                              project.app)
    found = store.read(f"{target.secrets_prefix}/{REGISTRY_SERVICE}")
    return found.get("REGISTRY_USERNAME"), found.get("REGISTRY_PASSWORD")


def release_to_host(project: Project, target: Target, recorded: Mapping[str, Mapping[str, Any]],
                    on_pushed: Callable[[str, str], None]) -> list[images.Sent]:
    """Make the release's image IDs run on the target's host; `on_pushed(service, digest)`
    records a first push. Never builds."""
    registry = project.spec.registry
    username, password = registry_credentials(project, target) if registry else (None, None)
    sent = []
    for service, image in recorded.items():
        if not image.get("id"):
            continue  # an image the release did not hold: Compose pulls it on the host
        ref, expected = str(image["ref"]), str(image["id"])
        if registry is None:
            sent.append(images.send(ref, expected, LOCAL, target.engine))
            continue
        pushed = image.get("pushed")
        done = images.through_registry(ref, expected, LOCAL, target.engine, registry.address,
                                       username, password, digest=str(pushed) if pushed else None)
        if done.digest and not pushed and done.how == "registry":
            on_pushed(service, done.digest)
        sent.append(done)
    return sent
