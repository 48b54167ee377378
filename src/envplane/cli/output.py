"""How the CLI prints: Rich for people, JSON for scripts, errors in one place."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from envplane.errors import EnvplaneError, NothingToDo
from envplane.secret import mask_known

UNLIMITED = 400  # columns of output that no terminal will show: rows stay whole


def _console(stderr: bool) -> Console:
    """A console whose tables fit the width the user has: COLUMNS when set, else the
    terminal's (stdout or stderr: `envplane envs | less` still knows it), else — no terminal
    at all, a script or a CI log — whole rows, one per line, rather than Rich's 80."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not os.environ.get("COLUMNS", "").isdigit() and not _a_terminal():
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=UNLIMITED)
    return console


def _a_terminal() -> bool:
    for fd in (1, 2):
        try:
            os.get_terminal_size(fd)
        except OSError:
            continue
        return True
    return False


out = _console(stderr=False)
err = _console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def report_error(exc: EnvplaneError, as_json: bool) -> int:
    """Print the error, every known secret value masked (secret.mask_known), whatever raised it."""
    problems = [replace(p, message=mask_known(p.message), hint=mask_known(p.hint)) for p in exc.problems]
    if isinstance(exc, NothingToDo):  # not an error: the command's answer
        if as_json:
            print_json({"nothing_to_do": True, "message": problems[0].message, "hint": problems[0].hint})
        else:
            out.print(_escape(problems[0].message))
            if problems[0].hint:
                err.print(f"  [dim]hint:[/] {_escape(problems[0].hint)}")
        return exc.exit_code
    if as_json:
        print_json({"error": {"type": type(exc).__name__, "problems": [p.as_dict() for p in problems]}})
        return exc.exit_code
    for problem in problems:
        err.print(f"[bold red]error:[/] {_escape(problem.render())}")
        if problem.hint:
            err.print(f"  [dim]hint:[/] {_escape(problem.hint)}")
    return exc.exit_code


def report_interrupt(exc: KeyboardInterrupt, as_json: bool) -> int:
    """Ctrl-C: one line saying what was stopped (an Interrupted says which operation and
    step), exit code 130."""
    from envplane.errors import Interrupted

    message = exc.message if isinstance(exc, Interrupted) else "stopped by Ctrl-C"
    hint = exc.hint if isinstance(exc, Interrupted) else ""
    if as_json:
        print_json({"error": {"type": "Interrupted", "problems": [
            {"message": message, "file": None, "line": None, "field": "", "hint": hint}]}})
        return 130
    err.print(f"[bold red]interrupted:[/] {_escape(message)}")
    if hint:
        err.print(f"  [dim]hint:[/] {_escape(hint)}")
    return 130


class FittedTable(Table):
    """A table that fits the console. A grid when its cells fit by wrapping between words,
    with at most one column folding its longest words (a long path in a plan); else one
    block of `column: value` lines per row (psql's expanded display), readable at 80
    columns where a ten-column grid would cut every path into slivers."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.show_header or self._fits(console, options):
            yield from super().__rich_console__(console, options)
            return
        if self.title:
            yield Text(str(self.title), style="italic")
        names = [str(c.header) for c in self.columns]
        rows = list(zip(*(c.cells for c in self.columns), strict=True))
        for index, row in enumerate(rows, 1):
            block = Table.grid(padding=(0, 1))
            block.add_column(style="bold", no_wrap=True)
            block.add_column(overflow="fold")
            for name, value in zip(names, row, strict=True):
                block.add_row(f"{name}:", value)
            yield Text(f"── {index} of {len(rows)}", style="dim")
            yield block

    def _fits(self, console: Console, options: ConsoleOptions) -> bool:
        wide = options.update(width=UNLIMITED)
        longest_words = [max((Measurement.get(console, wide, cell).minimum
                              for cell in (column.header, *column.cells)), default=0)
                         for column in self.columns]
        borders = 3 * len(longest_words) + 1
        folded = min(max(longest_words, default=0), FOLD_TO)
        return sum(longest_words) - max(longest_words, default=0) + folded + borders <= options.max_width


FOLD_TO = 24  # the narrowest the one folding column may get


def table(title: str, columns: list[str]) -> Table:
    t = FittedTable(title=title, title_justify="left", show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
