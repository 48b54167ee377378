"""The envplane command line (envplane.cli.main) and its console entry point."""

from __future__ import annotations

import sys

from envplane import __version__

# The two answers that need no command line at all. Loading it (Typer, which imports pydantic
# to coerce a command's arguments, and rich) costs ~0.5 s of CPU before any command runs
# (issue 11: `envplane version` <= 0.15 s); the same words as `version` prints through it.
_VERSION_ONLY = (["version"], ["--version"])


def run() -> None:
    """Console entry point: `envplane version` and `envplane --version` answer at once; every
    other command line goes to the Typer app (envplane.cli.main.run)."""
    if sys.argv[1:] in _VERSION_ONLY:
        sys.stdout.write(f"{__version__}\n")
        return
    from envplane.cli.main import run as run_app

    run_app()
