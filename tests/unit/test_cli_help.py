"""Help and output as a new user reads them (#10.12): every command's help, `--version`,
tables that fit the width they are given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from envplane import __version__
from envplane.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "finance-report"


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the words a user types before --help."""
    found: list[tuple[str, ...]] = [()]

    def walk(group: object, path: tuple[str, ...]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            found.append((*path, name))
            walk(command, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _command_paths()


def test_the_walk_finds_every_command() -> None:
    assert {("up",), ("preview", "down"), ("secrets", "rm"), ("audit", "verify"), ("proxy", "routes"),
            ("dr",), ("platform", "up")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "envplane")
def test_help_has_no_type_on_flags_and_no_jargon(path: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    assert "<bool>" not in shown.output  # a flag takes no value: `--json`, not `--json <bool>`
    assert "seed" not in shown.output.lower()  # the project's design notes, not the user's words


def test_flags_are_still_listed_with_their_help() -> None:
    shown = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "120"})
    assert "--no-wait" in shown.output and "--json" in shown.output
    assert "<float>" in shown.output  # options that take a value keep their type


def _envplane(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "envplane", *args], capture_output=True, text=True,
                          cwd=EXAMPLE, env={**environ, **(env or {})}, timeout=60)


def test_version_flag_and_command_print_the_version() -> None:
    for args in (["--version"], ["version"]):
        done = _envplane(*args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == __version__


def test_piped_tables_fit_columns() -> None:
    done = _envplane("envs", env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    widest = max(len(line) for line in done.stdout.splitlines())
    assert widest <= 100, f"{widest} columns:\n{done.stdout}"
    # Ten columns do not fit 100 by wrapping: one block of lines per env, values whole.
    assert "report-pr-123.example.com" in done.stdout
    assert "secret/data/finance-report/staging/{service}" in done.stdout


def test_a_table_that_fits_by_wrapping_stays_a_grid() -> None:
    done = _envplane("plan", "staging", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert any(re.match(r"│ +\d+ │[^│]*│ route ", line) for line in done.stdout.splitlines()), done.stdout


def test_piped_tables_without_a_width_keep_whole_lines() -> None:
    # No terminal and no COLUMNS (a script, a CI log): rows stay whole, one per line.
    done = _envplane("envs")
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ staging")]
    assert len(rows) == 1 and "/data/finance-report/staging" in rows[0]
