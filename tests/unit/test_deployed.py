"""#11: when `up` may skip Compose (deployed.py): the same digest and the very same containers."""

from __future__ import annotations

from pathlib import Path

from envplane.backends.runtime.facts import ContainerFact
from envplane.deployed import Deployed, changed, digest, dump, files_read, load, read_files, stamp_of

IMAGES = {"web": "sha256:aaa", "worker": "sha256:bbb"}


def _fact(cid: str, service: str, state: str = "running", image: str = "") -> ContainerFact:
    return ContainerFact(cid, f"app-{service}", state, None,
                         labels={"com.docker.compose.service": service}, image=image or IMAGES[service])


RUNNING = [_fact("c1", "web"), _fact("c2", "worker")]
NOW = digest("services: {}\n", {"web.env": b"A=1\n"}, IMAGES)
STAMP = Deployed(NOW, {"c1": "app-web", "c2": "app-worker"})


def test_the_same_file_files_and_images_on_the_same_running_containers_needs_no_compose() -> None:
    assert changed(STAMP, NOW, RUNNING, IMAGES) is None


def test_anything_else_goes_through_compose() -> None:
    cases = {
        "never stamped": (None, NOW, RUNNING, IMAGES),
        "another file": (STAMP, digest("services: {x: {}}\n", {"web.env": b"A=1\n"}, IMAGES), RUNNING, IMAGES),
        "another env file": (STAMP, digest("services: {}\n", {"web.env": b"A=2\n"}, IMAGES), RUNNING, IMAGES),
        "an env file gone": (STAMP, digest("services: {}\n", {"web.env": None}, IMAGES), RUNNING, IMAGES),
        "another image": (STAMP, digest("services: {}\n", {"web.env": b"A=1\n"}, {**IMAGES, "web": "sha256:c"}),
                          RUNNING, IMAGES),
        "a stopped container": (STAMP, NOW, [_fact("c1", "web", "exited"), RUNNING[1]], IMAGES),
        "a missing container": (STAMP, NOW, RUNNING[:1], IMAGES),
        "an extra container": (STAMP, NOW, [*RUNNING, _fact("c3", "web")], IMAGES),
        "a replaced container": (STAMP, NOW, [_fact("c9", "web"), RUNNING[1]], IMAGES),
        "a renamed container (half-replaced)": (
            STAMP, NOW, [ContainerFact("c1", "c1_app-web", "running", None, image=IMAGES["web"]), RUNNING[1]],
            IMAGES),
        "a container on another image": (STAMP, NOW, [_fact("c1", "web", image="sha256:zzz"), RUNNING[1]],
                                         IMAGES),
    }
    for what, args in cases.items():
        assert changed(*args) is not None, what


def test_the_digest_covers_every_file_compose_reads() -> None:
    data = {"services": {"web": {"env_file": ["a.env", {"path": "b.env", "required": False}]},
                         "worker": {"env_file": "c.env"}, "db": {}},
            "secrets": {"token": {"file": "/run/token"}, "ext": {"external": True}},
            "configs": {"conf": {"file": "conf.ini"}}}
    assert files_read(data) == ["a.env", "b.env", "c.env", "/run/token", "conf.ini"]
    assert files_read({}) == []


def test_files_are_read_from_the_compose_folder_and_a_missing_one_counts(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\n")
    assert read_files(["a.env", "gone.env"], tmp_path) == {"a.env": b"A=1\n", "gone.env": None}


def test_only_a_fully_running_instance_is_stamped_and_the_stamp_reads_back(tmp_path: Path) -> None:
    assert stamp_of(NOW, []) is None
    assert stamp_of(NOW, [RUNNING[0], _fact("c2", "worker", "restarting")]) is None
    stamp = stamp_of(NOW, RUNNING)
    assert stamp == STAMP
    path = tmp_path / "deployed.json"
    path.write_text(dump(STAMP))
    assert load(path) == STAMP
    for broken in ("", "{", "[]", '{"digest": "x"}'):
        path.write_text(broken)
        assert load(path) is None, broken
    assert load(tmp_path / "none.json") is None
