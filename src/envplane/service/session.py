"""One operation's session (its store, who runs it) with its lock waits reported as events."""

from __future__ import annotations

from collections.abc import Mapping

from envplane import lifecycle
from envplane.events import Note, Report
from envplane.spec.load import Project


def open_session(project: Project, report: Report, wait: bool = True,
                 environ: Mapping[str, str] | None = None, actor: str | None = None) -> lifecycle.Session:
    """A session whose lock waits are reported; `wait=False` fails at once when another
    operation holds the instance. Who acts comes from `environ`, by default the one the
    project was loaded with (the server loads an app with its principal as ENVPLANE_USER);
    `actor`, when given, is the display name its records carry instead."""
    session = lifecycle.open_session(project, project.environ if environ is None else environ)
    if actor is not None:
        session.actor = actor
    session.wait = wait
    session.on_wait = lambda holder: report(
        Note(f"waiting: {holder.describe()} holds this instance", "warning"))
    return session
