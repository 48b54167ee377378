"""README's tour, run exactly as written from a fresh clone's state (issue 10).

A fresh clone here is: a git repository holding the example as committed (no tags, no
`.envplane/`), the `.venv/` that `scripts/demo.sh` makes (this test's own environment),
the base images `scripts/images.sh` builds, and a new user: an empty HOME (so a fresh
~/.envplane and ~/.config), no ENVPLANE_* variables, no servers configured. Every command
of the tour's blocks runs in order in one "terminal" (tests/tour_kit.py says how the
README's comments are read); the clean-up block runs last whatever happened, and must
leave nothing of the tour behind. Run it under `flock /tmp/envplane-e2e.lock`: it uses the
example's own names and ports (8088 for the proxy, the platform's fixed ports).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tour_kit
from tests.support import docker_engine, need

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/finance-report"
APP = "finance-report"
ENVS = ("docker", "test", "staging", "production")
PORTS = (8088, 2019)  # the proxy the tour curls through, and its admin API
KEYS = ("/tmp/you", "/tmp/bob")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fresh_clone(where: Path) -> Path:
    """The repository as a new clone has it: the example's committed files, a git commit
    with no tags, and `.venv/` (git-ignored, as the demo leaves it)."""
    where.mkdir()
    tracked = subprocess.run(["git", "ls-files", "-z", EXAMPLE, ".gitignore"], cwd=ROOT, capture_output=True)
    names = [n for n in tracked.stdout.decode().split("\0") if n] if tracked.returncode == 0 else []
    if names:
        for name in names:
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, where / name)
    else:  # not a git checkout (a source tarball): the folder as it is, without its state
        shutil.copytree(ROOT / EXAMPLE, where / EXAMPLE, ignore=shutil.ignore_patterns(".envplane"))
    if not (where / ".gitignore").exists():
        (where / ".gitignore").write_text(".venv/\n.envplane/\n")
    identity = {"GIT_AUTHOR_NAME": "New User", "GIT_AUTHOR_EMAIL": "new@example.com",
                "GIT_COMMITTER_NAME": "New User", "GIT_COMMITTER_EMAIL": "new@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "a fresh clone"]):
        subprocess.run(["git", *args], cwd=where, check=True, capture_output=True, env={**os.environ, **identity})
    (where / ".venv").symlink_to(Path(sys.prefix))
    # The demo's .venv is a folder, which `.venv/` in .gitignore matches; this one is a link
    # to the test's own environment, which that pattern does not: it is excluded here.
    (where / ".git" / "info").mkdir(exist_ok=True)
    with (where / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    return where


def new_user(home: Path) -> dict[str, str]:
    """A shell's environment as a new user's terminal has it: nothing of envplane's."""
    home.mkdir()
    docker_config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")  # Compose v2 plugin
    env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "TERM": "dumb",
           "DOCKER_CONFIG": docker_config, "USER": "newuser",
           # this checkout's code, whatever .venv was installed from
           "PYTHONPATH": str(ROOT / "src")}
    for passed in ("DOCKER_HOST", "TMPDIR"):
        if passed in os.environ:
            env[passed] = os.environ[passed]
    return env


def in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def leftovers() -> list[str]:
    """Containers, volumes and networks of the tour's app, and of its envs' platforms (the
    ci and dr platforms are other tests')."""
    found = []
    filters = [[f"label=envplane.app={APP}"], *(["label=envplane.app=platform", f"label=envplane.env={e}"]
                                               for e in ENVS)]
    for kind in ("container", "volume", "network"):
        for labels in filters:
            listed = subprocess.run(["docker", kind, "ls", *(["-a"] if kind == "container" else []),
                                     *(a for label in labels for a in ("--filter", label)), "--format",
                                     "{{.Names}}" if kind == "container" else "{{.Name}}"],
                                    capture_output=True, text=True).stdout.split()
            found += [f"{kind} {n}" for n in listed]
    return found


def not_the_tours(ran: tour_kit.Ran, shell: tour_kit.Shell) -> bool:
    """Whether a failed `envplane verify` failed only on other apps' violations.

    verify proves the whole host, as it should; a user's fresh machine runs only the tour,
    but this one runs other tests at the same time, and their leftovers (a stopped
    container, a test's shared network) are violations too. The tour's promise is that none
    of the violations is the tour's: its app's instances and its envs' platforms."""
    if not ran.command.text.startswith("envplane verify") or ran.exit_code != 1:
        return False
    done = subprocess.run(["envplane", "verify", "--json"],
                          cwd=shell.cwd, env=shell.env, capture_output=True, text=True, timeout=300)
    violations = json.loads(done.stdout)["violations"]
    ours = re.compile(rf"\b{APP}\b|\bplatform/({'|'.join(ENVS)})\b|\bplatform-\w+-({'|'.join(ENVS)})\b")
    mine = [v for v in violations if ours.search(f"{v['subject']} {v['detail']}")]
    print(f"verify: {len(violations)} violation(s) on this machine, {len(mine)} of the tour's")
    return bool(violations) and not mine


@pytest.fixture()
def terminal(tmp_path: Path) -> Iterator[tour_kit.Shell]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    taken = [p for p in PORTS if in_use(p)]
    assert not taken, f"ports {taken} are in use: the tour's proxy needs them (another run of the tour?)"
    assert not [k for k in KEYS if Path(k).exists()], f"remove {KEYS}: the tour makes them"
    before = leftovers()
    assert not before, f"not a fresh state, the tour's names are taken: {before}"
    clone = fresh_clone(tmp_path / "clone")
    shell = tour_kit.Shell(clone, new_user(tmp_path / "home"))
    yield shell
    _safety_net(shell, clone)


def _safety_net(shell: tour_kit.Shell, clone: Path) -> None:
    """Whatever the tour and its clean-up left (when a step failed): removed, so the next run
    starts fresh. Tags the releases made are dropped; their layers stay cached."""
    envplane = [str(clone / ".venv" / "bin" / "envplane")]
    folder = clone / EXAMPLE
    run = {"cwd": folder, "env": shell.env, "capture_output": True, "timeout": 300}
    # A tour whose clean-up block ran leaves none of these (the test checks it): its 21 commands
    # would cost the suite a minute for nothing.
    if leftovers() or any(in_use(p) for p in PORTS):
        subprocess.run([*envplane, "preview", "down", "--pr", "7"], **run)  # type: ignore[call-overload]
        for env in ("production", "staging", "docker"):
            subprocess.run([*envplane, "down", env, "--purge", "--yes"], **run)  # type: ignore[call-overload]
            subprocess.run([*envplane, "down", env, "--purge"], **run)  # type: ignore[call-overload]
        for env in ENVS:
            subprocess.run([*envplane, "platform", "down", env, "--purge", "--yes"],  # type: ignore[call-overload]
                           **run)
            subprocess.run([*envplane, "platform", "down", env, "--purge"], **run)  # type: ignore[call-overload]
        subprocess.run([*envplane, "proxy", "down"], **run)  # type: ignore[call-overload]
    for key in KEYS:
        for path in (Path(key), Path(key + ".pub")):
            path.unlink(missing_ok=True)
    tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                           "--filter", f"reference={APP}-*"], capture_output=True, text=True).stdout.split()
    made = [t for t in tags if t.rsplit(":", 1)[1].startswith(("v1.0.", "sha-"))]
    if made:
        subprocess.run(["docker", "rmi", *made], capture_output=True)


def test_the_readme_tour_runs_as_written(terminal: tour_kit.Shell) -> None:
    blocks = tour_kit.bash_blocks(tour_kit.README.read_text(encoding="utf-8"))
    assert [b.teardown for b in blocks].count(True) == 1, "the tour ends with one clean-up block"

    def show(ran: tour_kit.Ran) -> None:
        print(f"{ran.seconds:6.1f} s  exit {ran.exit_code}  README.md:{ran.command.line}  "
              f"{ran.command.text.splitlines()[0][:90]}", flush=True)

    failure: AssertionError | None = None
    try:
        tour_kit.run_tour(terminal, blocks, show, lambda ran: not_the_tours(ran, terminal))
    except AssertionError as exc:
        failure = exc
    cleanup_problems = []
    for command in tour_kit.commands(next(b for b in blocks if b.teardown)):
        ran = terminal.run(command)
        show(ran)
        problem = tour_kit.check(ran)
        if problem:
            cleanup_problems.append(problem)
    total = sum(r.seconds for r in terminal.history)
    print(f"the tour and its clean-up took {total:.0f} s", flush=True)
    if failure is not None:
        raise failure
    assert not cleanup_problems, "\n".join(cleanup_problems)
    left = leftovers()
    assert not left, f"the clean-up block left {left}"
    assert not [k for k in KEYS if Path(k).exists()]
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=terminal.cwd, capture_output=True, text=True)
    assert clean.stdout == "", f"the clean-up left the checkout changed:\n{clean.stdout}"
