"""Images to hosts: the same image IDs on another engine, never rebuilt.

Without a registry (`send`): `docker save` on the engine that has the image, then a
`docker load` on the target fed over the same SSH connection — with only the layers the
target lacks. The target's images tell which layer chains it holds (`RootFS.Layers`);
the engine's loader reads a layer's file only when it lacks that chain, so the saved
archive goes out without the files of layers already there. If that load fails, the whole
archive is sent (the fallback), and the report says what it cost.

Through a registry (`through_registry`): pushed once (a tag in the registry), pulled on the
target by digest, tagged there with the release's reference; the digest is recorded.

Both check that the image ID on the target is the one the release recorded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from envplane.errors import BackendError
from envplane.hosts.connect import docker_env
from envplane.hosts.engine import LOCAL, Engine
from envplane.run import Pipeline, Stage, run
from envplane.secret import Secret

CHUNK = 1 << 20


@dataclass(frozen=True)
class Sent:
    """What reaching the target cost for one image."""

    ref: str
    image_id: str
    how: str  # "there" (nothing sent), "layers", "whole", "registry"
    bytes_sent: int = 0  # the archive's bytes that went out (registry: not measured, 0)
    size: int = 0  # the whole archive (`docker save`) of the image
    layers_sent: int = 0
    layers: int = 0
    digest: str | None = None  # registry: repository@sha256:…

    def describe(self) -> str:
        if self.how == "there":
            return f"{self.ref}: already there"
        if self.how == "registry":
            return f"{self.ref}: pulled by digest {self.digest}"
        return (f"{self.ref}: {human(self.bytes_sent)} sent of {human(self.size)} "
                f"({self.layers_sent} of {self.layers} layers; {self.how})")


def human(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


# Pure ------------------------------------------------------------------------------

def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each layer prefix (the engine's key of a layer and all below it)."""
    chains: list[str] = []
    for diff in diff_ids:
        if not chains:
            chains.append(diff)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest())
    return chains


def present_chains(layer_lists: Iterable[Sequence[str]]) -> frozenset[str]:
    """Every chain an engine holds, from its images' RootFS.Layers."""
    return frozenset(chain for layers in layer_lists for chain in chain_ids(layers))


def thin_plan(manifest: Sequence[Mapping[str, Any]], diff_ids: Mapping[str, Sequence[str]],
              present: frozenset[str]) -> tuple[set[str], int]:
    """(archive files of layers to leave out, layers in all): a layer's file is left out
    when the target holds its chain for every image of the archive that names the file.
    `diff_ids`: config file name -> its rootfs.diff_ids."""
    needed: set[str] = set()
    named: set[str] = set()
    for entry in manifest:
        layers = list(entry.get("Layers") or [])
        for path, chain in zip(layers, chain_ids(diff_ids[entry["Config"]]), strict=True):
            named.add(path)
            if chain not in present:
                needed.add(path)
    return named - needed, len(named)


# Engines ---------------------------------------------------------------------------

def image_id(engine: Engine, ref: str) -> str | None:
    found = run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=False,
                env=docker_env(engine), what=f"inspect image {ref}")
    return found.stdout.strip() or None if found.returncode == 0 else None


def engine_chains(engine: Engine) -> frozenset[str]:
    env = docker_env(engine)
    ids = run(["docker", "image", "ls", "--all", "--quiet", "--no-trunc"], env=env,
              what=f"list the images of {engine.describe()}").stdout.split()
    if not ids:
        return frozenset()
    listed = run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", *dict.fromkeys(ids)],
                 check=False, env=env, what=f"inspect the images of {engine.describe()}").stdout
    return present_chains(json.loads(line) or [] for line in listed.splitlines() if line.strip())


def tag(engine: Engine, source: str, ref: str) -> None:
    if source != ref:
        run(["docker", "tag", source, ref], env=docker_env(engine), what=f"tag {ref} on {engine.describe()}")


def ensure_image(engine: Engine, ref: str) -> None:
    """A helper image on the engine: there, else sent from the local engine, else pulled."""
    if engine.local or image_id(engine, ref):
        return
    found = image_id(LOCAL, ref)
    if found:
        send(ref, found, LOCAL, engine)
        return
    run(["docker", "pull", ref], env=docker_env(engine), timeout=600,
        what=f"pull {ref} on {engine.describe()}")


def send(ref: str, expected: str, source: Engine, target: Engine) -> Sent:
    """The image `ref` (ID `expected`) from `source` to `target` without a registry."""
    if image_id(target, expected) == expected:
        tag(target, expected, ref)
        return Sent(ref, expected, "there")
    if image_id(source, ref) != expected:
        raise BackendError(f"image {ref} on {source.describe()} is not {expected[:19]}",
                           "envplane never rebuilds a release: release again")
    with _saved(source, ref) as archive:
        size = archive.stat().st_size
        manifest, diff_ids = _read_archive(archive)
        skip, layers = thin_plan(manifest, diff_ids, engine_chains(target))
        try:
            sent = _load(target, archive, skip)
            how = "layers"
        except BackendError:
            # The target lost a layer since we looked, or its loader wants every file: all of it.
            skip, sent, how = set(), _load(target, archive, set()), "whole"
    if image_id(target, ref) != expected:
        raise BackendError(f"{ref} on {target.describe()} is not {expected[:19]} after loading it")
    return Sent(ref, expected, how, sent, size, layers - len(skip), layers)


@contextlib.contextmanager
def _saved(engine: Engine, ref: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="envplane-image-"))
    try:
        archive = folder / "image.tar"
        run(["docker", "save", "--output", str(archive), ref], env=docker_env(engine), timeout=1800,
            what=f"save {ref} from {engine.describe()}")
        yield archive
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_archive(archive: Path) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    with tarfile.open(archive) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        diff_ids = {entry["Config"]: list(json.loads(_member(tar, entry["Config"]))["rootfs"]["diff_ids"])
                    for entry in manifest}
    return manifest, diff_ids


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    if handle is None:
        raise BackendError(f"the saved image has no {name}")
    return handle.read()


class _Counted:
    """A write-only stream that counts what goes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.count = out, 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.count += len(data)
        return len(data)


def _load(target: Engine, archive: Path, skip: set[str]) -> int:
    """`docker load` on the target, fed the archive without the `skip` files; bytes sent."""
    stage = Stage(("docker", "load", "--quiet"), docker_env(target))
    with Pipeline([stage], feed=True, drain=False, what=f"load an image on {target.describe()}") as load:
        assert load.stdin is not None
        counted = _Counted(load.stdin)
        try:
            with tarfile.open(archive) as source, tarfile.open(fileobj=counted, mode="w|") as out:  # type: ignore[call-overload]
                for member in source:
                    if member.name in skip:
                        continue
                    out.addfile(member, source.extractfile(member) if member.isfile() else None)
        except BrokenPipeError:
            pass  # the loader stopped early; finish() says why
        load.finish(timeout=1800)
    return counted.count


# Registry --------------------------------------------------------------------------

def registry_ref(registry: str, ref: str) -> str:
    """`finance-report-backend:v1.0.45` -> `REGISTRY/finance-report-backend:v1.0.45`."""
    name = ref.split("@", 1)[0]
    head, _, first = name.partition("/")
    if "/" in name and ("." in head or ":" in head or head == "localhost"):
        name = first  # the ref names another registry: keep its path only
    return f"{registry}/{name}"


@contextlib.contextmanager
def docker_config(registry: str, username: Secret | None, password: Secret | None) -> Iterator[str | None]:
    """A private DOCKER_CONFIG holding the registry's credentials for one transfer (never
    the user's ~/.docker/config.json), removed after; None when there are none."""
    if username is None or password is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="envplane-registry-")
    try:
        token = base64.b64encode(f"{username.reveal()}:{password.reveal()}".encode()).decode()
        path = Path(folder) / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"auths": {registry: {"auth": token}}}, handle)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def through_registry(ref: str, expected: str, source: Engine, target: Engine, registry: str,
                     username: Secret | None = None, password: Secret | None = None,
                     digest: str | None = None) -> Sent:
    """Push `ref` to the registry once (unless `digest`, a recorded push, is given), pull it
    on the target by digest, tag it there as `ref`. The pushed digest is in the result."""
    if image_id(target, expected) == expected:
        tag(target, expected, ref)
        return Sent(ref, expected, "there", digest=digest)
    hidden = [s for s in (username, password) if s is not None]
    with docker_config(registry, username, password) as config:
        def env(engine: Engine) -> dict[str, str] | None:
            base = docker_env(engine) or (dict(os.environ) if config else None)
            return {**base, "DOCKER_CONFIG": config} if base is not None and config else base

        remote = registry_ref(registry, ref)
        if digest is None:
            if image_id(source, ref) != expected:
                raise BackendError(f"image {ref} on {source.describe()} is not {expected[:19]}",
                                   "envplane never rebuilds a release: release again")
            run(["docker", "tag", ref, remote], env=env(source), what=f"tag {ref} for {registry}")
            run(["docker", "push", remote], env=env(source), secrets=hidden, timeout=1800,
                what=f"push {remote}")
            digest = _digest_of(source, remote, registry)
        run(["docker", "pull", digest], env=env(target), secrets=hidden, timeout=1800,
            what=f"pull {digest} on {target.describe()}")
    tag(target, digest, ref)
    if image_id(target, ref) != expected:
        raise BackendError(f"{digest} pulled on {target.describe()} is not {expected[:19]}",
                           "the registry holds another image under that digest's repository")
    return Sent(ref, expected, "registry", digest=digest)


def _digest_of(engine: Engine, remote: str, registry: str) -> str:
    listed = run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", remote],
                 env=docker_env(engine), what=f"read the digest of {remote}").stdout
    repository = remote.rsplit(":", 1)[0]
    for item in json.loads(listed or "[]") or []:
        if str(item).startswith(repository + "@"):
            return str(item)
    raise BackendError(f"{registry} gave {remote} no digest", "check the registry's answer to the push")
