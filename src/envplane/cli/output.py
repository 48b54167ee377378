"""How the CLI prints: Rich for people, JSON for scripts, errors in one place."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from envplane.errors import EnvplaneError


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Piped into a file or another program: do not fold tables to 80 columns.
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=400)
    return console


out = _console(stderr=False)
err = _console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def report_error(exc: EnvplaneError, as_json: bool) -> int:
    problems = list(exc.problems)
    if as_json:
        print_json({"error": {"type": type(exc).__name__, "problems": [p.as_dict() for p in problems]}})
        return exc.exit_code
    for problem in problems:
        err.print(f"[bold red]error:[/] {_escape(problem.render())}")
        if problem.hint:
            err.print(f"  [dim]hint:[/] {_escape(problem.hint)}")
    return exc.exit_code


def table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
