"""Cold start (#11.2): `envplane --help` and `envplane version` load the command line and
nothing of the machinery behind it — no spec models, Compose merge, YAML, backends, state
store, Kubernetes, DR or host code. Each case runs a new interpreter, as a user's shell does,
and reads what that interpreter imported. (Typer itself imports pydantic's core: that is
Typer's, not envplane's, and not held here.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envplane import __version__

ROOT = Path(__file__).resolve().parents[2]

HEAVY = (
    "envplane.actions", "envplane.target", "envplane.plan", "envplane.apply", "envplane.lifecycle",
    "envplane.provision", "envplane.isolation", "envplane.spec", "envplane.compose",
    "envplane.backends.runtime.compose", "envplane.backends.routing", "envplane.backends.secrets",
    "envplane.backends.database", "envplane.backends.objects", "envplane.backends.cache",
    "envplane.kubernetes", "envplane.dr", "envplane.hosts.config", "envplane.hosts.connect",
    "envplane.hosts.remote", "envplane.state", "envplane.release", "envplane.preview",
    "envplane.webhook", "ruamel", "sqlalchemy", "alembic", "boto3", "botocore", "hvac", "psycopg",
    "redis", "cryptography", "yaml",
)

# Runs the console entry point with ARGS and prints, last, every module it imported.
PROBE = """
import json, sys
from envplane.cli import run
sys.argv = ["envplane", *json.loads(sys.argv[1])]
try:
    run()
except SystemExit:
    pass
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def _imported(*args: str, cwd: Path = ROOT) -> tuple[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "ENVPLANE_STATE_URL"}
    env.update(PYTHONPATH=str(ROOT / "src"), COLUMNS="100")
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)
    shown, _, modules = done.stdout.rpartition("\nMODULES ")
    assert modules, done.stderr
    return shown, json.loads(modules)


@pytest.mark.parametrize("args", [("--help",), ("version",), ("--version",), ("preview", "up", "--help"),
                                  ("proxy", "up", "--help")], ids=" ".join)
def test_help_and_version_load_nothing_heavy(args: tuple[str, ...]) -> None:
    shown, modules = _imported(*args)
    assert shown.strip()  # it did answer
    assert [m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)] == []


@pytest.mark.parametrize("args", [("version",), ("--version",)], ids=" ".join)
def test_version_loads_no_command_line(args: tuple[str, ...]) -> None:
    """The version is the one answer that needs no command line: the entry point prints it
    before Typer, rich and pydantic load (~0.5 s of CPU, #11)."""
    shown, modules = _imported(*args)
    assert shown.strip() == __version__
    assert [m for m in modules if m.split(".")[0] in ("typer", "click", "rich", "pydantic")] == []


def test_a_command_that_needs_the_spec_still_loads_it() -> None:
    """The probe sees imports: `envs` on the example loads the spec models (the probe is not blind)."""
    _, modules = _imported("envs", "--json", cwd=ROOT / "examples" / "finance-report")
    assert "envplane.spec.models" in modules and "ruamel.yaml" in modules


def test_plan_reads_the_state_store_only_when_there_is_one(tmp_path: Path) -> None:
    """Before any `up` there is no store: `plan` has no instances to read and loads no SQLAlchemy.
    Once a store exists it reads it (the isolation check needs the PR and CI instances), with
    the standard library's sqlite3 (#11)."""
    app = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", app, ignore=shutil.ignore_patterns(".envplane"))
    shown, modules = _imported("plan", "staging", "--json", cwd=app)
    assert json.loads(shown)["target"]["app"] == "finance-report"
    assert "sqlalchemy" not in modules and not (app / ".envplane").exists()

    from envplane.state.db import open_store

    open_store(app).close()
    shown, modules = _imported("plan", "staging", "--json", cwd=app)
    assert json.loads(shown)["target"]["app"] == "finance-report"
    assert "envplane.state.records" in modules and "sqlalchemy" not in modules  # read by the stdlib


def test_proxy_help_shows_the_admin_address_caddy_uses() -> None:
    """proxy_commands spells the default admin address out so that --help needs no Caddy code."""
    from envplane.backends.routing.caddy import DEFAULT_ADMIN
    from envplane.cli.proxy_commands import DEFAULT_ADMIN_ADDRESS

    assert f"http://{DEFAULT_ADMIN_ADDRESS}" == DEFAULT_ADMIN


def test_status_loads_nothing_that_changes_instances(tmp_path: Path) -> None:
    """`status` reads the engine and the state store (#11 scale: at 50 previews it must stay
    under a second); it loads neither the machinery of `up`/`down` nor SQLAlchemy (a quarter
    to half a second of CPU at start-up): a SQLite store is read with the standard library."""
    app = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", app, ignore=shutil.ignore_patterns(".envplane"))
    _, modules = _imported("status", "--json", cwd=app)
    assert "sqlalchemy" not in modules
    from envplane.state import instances
    from envplane.state.db import open_store

    store = open_store(app)
    instances.upsert_instance(store, "finance-report", "test", "pr-7", instances.PARTIAL)
    store.close()
    shown, modules = _imported("status", "--json", cwd=app)
    assert {"env": "test", "instance": "pr-7", "state": "partial"}.items() <= \
        next(row for row in json.loads(shown) if row["instance"] == "pr-7").items()  # it did read the store
    assert "sqlalchemy" not in modules
    assert [m for m in modules if m in ("envplane.apply", "envplane.lifecycle", "envplane.provision")] == []


def test_status_of_a_compose_app_loads_no_kubernetes_or_swarm_code() -> None:
    """The example runs on Compose only: its status asks no cluster and no Swarm manager, and
    loads neither's code (~0.05 s each of a start-up that is the most of status's time, #11)."""
    shown, modules = _imported("status", "--json", cwd=ROOT / "examples" / "finance-report")
    assert isinstance(json.loads(shown), list)
    assert [m for m in modules if m.startswith(("envplane.kubernetes", "envplane.swarm",
                                                "envplane.backends.runtime.swarm",
                                                "envplane.backends.runtime.kubernetes"))] == []
