"""Build a release's images once and find them again: tag, inspect, check.

`envplane release` builds every service that has `build:` under `sha-{commit}`, tags the
same image with the version, and records each image's ID (and registry digest when it
has one). Promotions deploy those exact images and refuse when a tag was moved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envplane.apply import write_atomic
from envplane.commands import compose as compose_cmd
from envplane.commands import docker as docker_cmd
from envplane.compose.render import build_section, to_yaml
from envplane.errors import BackendError
from envplane.hosts.connect import docker_env
from envplane.hosts.engine import LOCAL, Engine
from envplane.run import run
from envplane.target import Target

Images = dict[str, dict[str, Any]]  # service -> {"ref", "id", "digest", "built"}


def repository(image: str) -> str:
    """`registry:5000/team/app:v1` -> `registry:5000/team/app`; digests are dropped too."""
    image = image.split("@", 1)[0]
    head, sep, tail = image.rpartition(":")
    return head if sep and "/" not in tail else image


def build_file(target: Target, root: Path, tag: str) -> dict[str, Any]:
    """A Compose file that builds only the services with `build:`, tagged `tag`. Pure."""
    services: dict[str, Any] = {}
    for name, raw in target.compose.data.get("services", {}).items():
        if "build" in raw:
            repo = repository(str(raw.get("image") or f"{target.app}-{name}"))
            services[name] = {"build": build_section(raw["build"], root), "image": f"{repo}:{tag}"}
    return {"name": f"{target.app}-release", "services": services}


def build_and_tag(target: Target, root: Path, work: Path, commit_tag: str, version: str) -> Images:
    """Build the release's images, tag them with the version, record what they are."""
    spec = build_file(target, root, commit_tag)
    images: Images = {}
    if spec["services"]:
        file = work / "build.yaml"
        write_atomic(file, to_yaml(spec))
        run(compose_cmd.build(spec["name"], str(file)), what=f"build the images of {version}",
            timeout=1800)
    for name, raw in target.compose.data.get("services", {}).items():
        if name in spec["services"]:
            built = spec["services"][name]["image"]
            ref = f"{repository(built)}:{version}"
            run(docker_cmd.tag(built, ref), what=f"tag {built} as {version}")
            images[name] = {**inspect(ref), "ref": ref, "built": True}
        elif raw.get("image"):
            found = inspect(str(raw["image"]), missing_ok=True)
            images[name] = {**found, "ref": str(raw["image"]), "built": False}
    return images


def inspect(ref: str, missing_ok: bool = False, engine: Engine = LOCAL) -> dict[str, Any]:
    result = run(docker_cmd.image_id(ref), check=False, env=docker_env(engine), what=f"inspect image {ref}")
    if result.returncode != 0:
        if missing_ok:
            return {"id": None, "digest": None}
        raise BackendError(f"image {ref} is not on this engine", "release it again")
    image_id, _, digests = result.stdout.strip().partition("\t")
    found = json.loads(digests or "[]") or []
    return {"id": image_id, "digest": found[0] if found else None}


def check_unchanged(images: Mapping[str, Mapping[str, Any]], version: str, engine: Engine = LOCAL) -> None:
    """Refuse to deploy when an image of the release is gone or its tag now names another
    (on the engine the instance runs on)."""
    where = "this engine" if engine.local else engine.describe()
    for service, image in images.items():
        if not image.get("id"):
            continue  # a registry image not pulled at release time: Compose pulls it
        now = inspect(str(image["ref"]), missing_ok=True, engine=engine)["id"]
        if now is None:
            raise BackendError(f"image {image['ref']} of {service} ({version}) is not on {where}",
                               "envplane never rebuilds a release: load the image, or release again")
        if now != image["id"]:
            raise BackendError(
                f"image {image['ref']} of {service} is not the one {version} was built with "
                f"({now[:19]} now, {str(image['id'])[:19]} then)",
                "envplane never rebuilds a release: release a new version instead")
