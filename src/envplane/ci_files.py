"""GitHub Actions workflows for seed 002's table (issue 14, `envplane ci init github`): pure.

| file                    | trigger                      | what it runs                                   |
|-------------------------|------------------------------|------------------------------------------------|
| ci.yml                  | PR open/update + push to main | this run's own `ci` instance, the tests, purge |
| pr-test.yml             | PR opened/synchronize/closed | `remote preview up` / `remote preview down`     |
| staging-deploy.yml      | push to main                 | `remote release staging` (next patch version)  |
| production-deploy.yml   | a release tag `v*`           | `remote promote TAG --to production`           |

ci.yml runs on the GitHub runner itself. The other three act on the envplane server
(`envplane serve`) through its API, with the token in the `ENVPLANE_TOKEN` secret: the
runner holds no host key, no database password, nothing but that token, and the server's
gates and scopes decide. Values from an event (a PR's head sha, a tag name) reach the
shell as environment variables, never pasted into a script (GitHub's script injection).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from envplane.errors import UsageError

WORKFLOWS = ("ci.yml", "pr-test.yml", "staging-deploy.yml", "production-deploy.yml")
FOLDER = ".github/workflows"

# `${{ ... }}` in a value the user gave would be expanded by GitHub before the shell sees it.
_EXPRESSION = re.compile(r"\$\{\{")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Settings:
    """What the workflows need to know; every field checked by `check`."""

    app: str
    workdir: str  # the spec's folder, relative to the repository's root ("." at the root)
    spec_file: str  # the spec's file name in that folder (envplane.yaml)
    install: str  # what `pip install` installs on the runner
    python: str = "3.11"
    branch: str = "main"
    server: str | None = None  # the server's URL; None: the ENVPLANE_SERVER repository variable
    tests: tuple[str, ...] = ()  # shell lines run against this run's ci instance
    platform: bool = False  # the ci env runs on envplane's platform layer (no servers named)
    preview_env: str = "test"
    staging_env: str = "staging"
    production_env: str = "production"


def check(settings: Settings) -> None:
    """Refuse values that would break the YAML, the shell, or be expanded by GitHub."""
    fields = [("--install", settings.install), ("--python", settings.python), ("--branch", settings.branch),
              ("--server", settings.server or ""), ("the spec's folder", settings.workdir),
              ("the spec's file name", settings.spec_file), *(("--test", line) for line in settings.tests)]
    for name, value in fields:
        _plain(name, value)
    if not settings.install.strip():
        raise UsageError("--install is empty", "name what pip installs, e.g. envplane==0.1.0")
    if not re.fullmatch(r"3\.\d{1,2}", settings.python):
        raise UsageError(f"--python {settings.python!r} is not a Python version", "use e.g. 3.11 or 3.12")
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", settings.branch) or settings.branch.startswith("-"):
        raise UsageError(f"--branch {settings.branch!r} is not a branch name", "use e.g. main")
    if settings.server is not None and not re.fullmatch(r"https?://[^\s'\"\\]+", settings.server):
        raise UsageError(f"--server {settings.server!r} is not an http(s) URL",
                         "use the address `envplane serve` answers on, e.g. https://envplane.example.com")


def _plain(name: str, value: str) -> None:
    if _CONTROL.search(value) or "\n" in value:
        raise UsageError(f"{name} holds a line break or a control character",
                         "give one line; pass --test several times for several lines")
    if _EXPRESSION.search(value):
        raise UsageError(f"{name} holds `${{{{`, which GitHub would expand as an expression",
                         "write the value without `${{ }}`; read variables in the shell instead")


def render(settings: Settings) -> dict[str, str]:
    """file name -> workflow text."""
    check(settings)
    return {
        "ci.yml": _ci(settings),
        "pr-test.yml": _previews(settings),
        "staging-deploy.yml": _staging(settings),
        "production-deploy.yml": _production(settings),
    }


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(value)


def _sh(value: str) -> str:
    """A single-quoted shell word."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _header(settings: Settings, file: str, purpose: str) -> str:
    return (f"# {file}: {purpose}\n"
            f"# Written by `envplane ci init github` for {settings.app} (seed 002's workflow table).\n"
            "# Edit it as you like; `envplane ci init github --force` writes it again.\n")


def _spec_args(settings: Settings) -> str:
    return "" if settings.spec_file == "envplane.yaml" else f" -f {_sh(settings.spec_file)}"


def _defaults(settings: Settings) -> str:
    if settings.workdir == ".":
        return ""
    return f"    defaults:\n      run:\n        working-directory: {_q(settings.workdir)}\n"


def _install(settings: Settings) -> str:
    return ("      - uses: actions/setup-python@v6\n"
            "        with:\n"
            f"          python-version: {_q(settings.python)}\n"
            "      - name: Install envplane\n"
            f"        run: python -m pip install {_sh(settings.install)}\n")


def _server_env(settings: Settings) -> str:
    server = _q(settings.server) if settings.server else "${{ vars.ENVPLANE_SERVER }}"
    return (f"      ENVPLANE_SERVER: {server}\n"
            "      ENVPLANE_TOKEN: ${{ secrets.ENVPLANE_TOKEN }}\n")


def _ci(settings: Settings) -> str:
    spec = _spec_args(settings)
    steps = ["      - uses: actions/checkout@v5\n", _install(settings)]
    if settings.platform:
        steps.append("      - name: Start the ci env's PostgreSQL, Redis and S3 (envplane's platform layer)\n"
                     f"        run: envplane{spec} platform up ci\n")
    steps.append("      - name: Start this run's own ci instance and wait until it is healthy\n"
                 f'        run: envplane{spec} up ci --run "$ENVPLANE_RUN" --build\n')
    if settings.tests:
        body = "".join(f"          {line}\n" for line in settings.tests)
        steps.append(f"      - name: Tests\n        run: |\n{body}")
    else:
        steps.append("      # Add your tests here; they run against this run's ci instance\n"
                     f'      # (`envplane{spec} status ci --run "$ENVPLANE_RUN" --json` lists its ports).\n')
    steps.append("      - name: Remove this run's ci instance, its data and its resources\n"
                 "        if: always()\n"
                 f'        run: envplane{spec} down ci --run "$ENVPLANE_RUN" --purge --yes\n')
    if settings.platform:
        steps.append("      - name: Stop the platform layer\n"
                     "        if: always()\n"
                     f"        run: envplane{spec} platform down ci --purge --yes\n")
    return (_header(settings, "ci.yml", "tests on every pull request and push, in this run's own ci env")
            + "name: ci\n"
            "on:\n"
            "  pull_request:\n"
            "  push:\n"
            f"    branches: [{_q(settings.branch)}]\n"
            "permissions:\n"
            "  contents: read\n"
            "concurrency:\n"
            "  group: ci-${{ github.ref }}\n"
            "  cancel-in-progress: true\n"
            "jobs:\n"
            "  test:\n"
            "    runs-on: ubuntu-latest\n"
            "    timeout-minutes: 60\n"
            + _defaults(settings)
            + "    env:\n"
            "      # One instance per run and attempt: a re-run never meets a half-removed one.\n"
            "      ENVPLANE_RUN: ${{ github.run_id }}-${{ github.run_attempt }}\n"
            "    steps:\n"
            + "".join(steps))


def _previews(settings: Settings) -> str:
    app = _sh(settings.app)
    return (_header(settings, "pr-test.yml", "a preview per pull request: up on open and push, down on close")
            + "name: pr-test\n"
            "on:\n"
            "  pull_request:\n"
            "    types: [opened, synchronize, reopened, closed]\n"
            "permissions:\n"
            "  contents: read\n"
            "concurrency:\n"
            "  # One action per PR at a time, in order: a close waits for a running deploy.\n"
            "  group: pr-test-${{ github.event.pull_request.number }}\n"
            "  cancel-in-progress: false\n"
            "jobs:\n"
            "  preview:\n"
            "    # A fork's PR gets no secrets, and its code would run on the preview host: as\n"
            "    # the webhook's allow_forks: false, previews are for branches of this repository.\n"
            "    if: github.event.pull_request.head.repo.full_name == github.repository\n"
            "    runs-on: ubuntu-latest\n"
            "    timeout-minutes: 30\n"
            "    env:\n"
            + _server_env(settings)
            + "      PR: ${{ github.event.pull_request.number }}\n"
            "      HEAD_SHA: ${{ github.event.pull_request.head.sha }}\n"
            "    steps:\n"
            + _install(settings)
            + "      - name: Deploy the PR's head commit to its preview\n"
            "        if: github.event.action != 'closed'\n"
            f'        run: envplane remote preview up --app {app} --pr "$PR" --ref "$HEAD_SHA"\n'
            "      - name: Remove the PR's preview (containers, data, database, bucket, secrets)\n"
            "        if: github.event.action == 'closed'\n"
            f'        run: envplane remote preview down --app {app} --pr "$PR"\n')


def _staging(settings: Settings) -> str:
    app = _sh(settings.app)
    env = _sh(settings.staging_env)
    return (_header(settings, "staging-deploy.yml", f"each push to {settings.branch} is released to "
                    f"{settings.staging_env} (next patch version)")
            + "name: staging-deploy\n"
            "on:\n"
            "  push:\n"
            f"    branches: [{_q(settings.branch)}]\n"
            "permissions:\n"
            "  contents: read\n"
            "concurrency:\n"
            "  # Releases in push order; none is cancelled half-way.\n"
            f"  group: release-{settings.staging_env}\n"
            "  cancel-in-progress: false\n"
            "jobs:\n"
            "  release:\n"
            "    runs-on: ubuntu-latest\n"
            "    timeout-minutes: 60\n"
            f"    environment: {_q(settings.staging_env)}\n"
            "    env:\n"
            + _server_env(settings)
            + "      COMMIT: ${{ github.sha }}\n"
            "    steps:\n"
            + _install(settings)
            + f"      - name: Build {settings.staging_env}'s next version once and deploy it\n"
            f'        run: envplane remote release {env} --app {app} --ref "$COMMIT"\n')


def _production(settings: Settings) -> str:
    app = _sh(settings.app)
    env = _sh(settings.production_env)
    return (_header(settings, "production-deploy.yml", "a release tag (v1.2.3) promotes that version "
                    f"to {settings.production_env}, with approval")
            + "name: production-deploy\n"
            "on:\n"
            "  push:\n"
            "    tags: [\"v*\"]\n"
            "permissions:\n"
            "  contents: read\n"
            "concurrency:\n"
            f"  group: promote-{settings.production_env}\n"
            "  cancel-in-progress: false\n"
            "jobs:\n"
            "  promote:\n"
            "    runs-on: ubuntu-latest\n"
            "    timeout-minutes: 60\n"
            "    # GitHub asks this environment's required reviewers before the job starts, and\n"
            "    # gives it the environment's own ENVPLANE_TOKEN (deploy:production). The server\n"
            "    # runs every gate again, its approval by another person included.\n"
            f"    environment: {_q(settings.production_env)}\n"
            "    env:\n"
            + _server_env(settings)
            + "      VERSION: ${{ github.ref_name }}\n"
            "    steps:\n"
            + _install(settings)
            + "      - name: Run the gates and promote the tagged version (the exact images staging ran)\n"
            f'        run: envplane remote promote "$VERSION" --app {app} --to {env}\n')


def existing(root: Path) -> list[Path]:
    """The workflow files `write` would replace."""
    return [root / FOLDER / name for name in WORKFLOWS if (root / FOLDER / name).is_symlink()
            or (root / FOLDER / name).exists()]


def write(root: Path, files: dict[str, str], force: bool) -> list[Path]:
    """Write the workflows into `root/.github/workflows`; without `force`, refuse (and write
    none) when any of them is there already. Each file replaces the old one whole (a rename),
    so a link there is replaced, not followed."""
    there = existing(root)
    if there and not force:
        names = ", ".join(str(p.relative_to(root)) for p in there)
        raise UsageError(f"{names} exist{'s' if len(there) == 1 else ''} already: nothing was written",
                         "pass --force to replace them (your edits in them are lost)")
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = folder / name
        temp = folder / f".{name}.envplane-tmp"
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
        written.append(path)
    return written
