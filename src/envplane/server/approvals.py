"""Approve, promote and roll back as a user the server authenticated, proven like SSH-signed ones.

A name a request claims counts for nothing, as ENVPLANE_USER counts for nothing in the CLI.
The server has its own SSH key (ed25519, `$ENVPLANE_SERVER_HOME/approval_ed25519`, 0600,
made on first use, never in any database). When a user approves, promotes or rolls back
through the API, the dashboard or MCP, the server signs the same payload the CLI signs,
naming that user, under the namespace `envplane-server` (release/signatures.py). The app's
approvers file says which users the server may sign for, one line each:

    alice namespaces="envplane-server" ssh-ed25519 AAAA… envplane-server

(`envplane users approver-line alice` prints it). So the gate counts a server user's
approval exactly as a person's own signature: someone who can write the app's state store
cannot forge one without the server's key file, a user the file does not list cannot
approve, and the promoter and the approver must be different principals — alice approving
in the dashboard and promoting with her own SSH key (listed as `alice`) is still alice.

These are the service functions the API, the dashboard and MCP call with the request's
Principal; each checks the principal's scope itself too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane.commands import ssh_keygen
from envplane.errors import BackendError, Forbidden
from envplane.events import Progress, Report, ignore
from envplane.run import run
from envplane.server.auth import Principal
from envplane.server.home import private_home, server_home

if TYPE_CHECKING:
    from envplane.lifecycle import Session
    from envplane.release.flow import Deployed, Promotion
    from envplane.release.gates import Verdict
    from envplane.release.signatures import ServerVouch, Signer
    from envplane.spec.load import Project

KEY_FILE = "approval_ed25519"
KEY_COMMENT = "envplane-server"


def server_key(environ: Mapping[str, str]) -> Path:
    """The server's private signing key, made on first use (two servers starting at once
    end up with the same one: it is made aside and linked into place)."""
    home = private_home(server_home(environ))
    key = home / KEY_FILE
    if key.exists():
        return key
    with tempfile.TemporaryDirectory(prefix=".keygen-", dir=home) as folder:
        made = Path(folder) / KEY_FILE
        done = run(ssh_keygen.generate(str(made), KEY_COMMENT), check=False, what="ssh-keygen -t ed25519")
        if done.returncode != 0:
            raise BackendError(f"could not make the server's signing key in {home}: "
                               f"{(done.stderr.strip().splitlines() or ['ssh-keygen failed'])[-1]}",
                               "check that ssh-keygen (OpenSSH) is installed and the folder is writable")
        with contextlib.suppress(FileExistsError):  # another process linked its key first: use that
            os.link(made, key)
    return key


def public_key(environ: Mapping[str, str]) -> str:
    """`ssh-ed25519 AAAA…` of the server's signing key."""
    found = run(ssh_keygen.public_of(str(server_key(environ))), what="ssh-keygen -y").stdout
    return " ".join(found.split()[:2])


def approver_line(user: str, environ: Mapping[str, str]) -> str:
    """The approvers-file line that lets the server sign for `user` (and only as the server)."""
    from envplane.release.signatures import approver_line as line
    from envplane.server.auth import USER_NAME, check_name

    return line(check_name(user, USER_NAME, "user"), public_key(environ))


def vouch_for(principal: Principal, environ: Mapping[str, str], doing: str) -> ServerVouch:
    """The server's signature for the person behind `principal`; a token that acts for
    nobody cannot sign as anyone."""
    from envplane.release.signatures import ServerVouch

    if principal.user is None:
        raise Forbidden(f"{principal.actor} acts for no user, and {doing} is signed by a person",
                        "log in as a user, or use a token made for one: "
                        "`envplane tokens create --name NAME --user USER --scope …`")
    return ServerVouch(server_key(environ), principal.user)


@dataclass(frozen=True)
class Approved:
    version: str
    env: str
    signer: Signer
    display_name: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "env": self.env, "approved_by": list(self.signer.principals),
                "key": self.signer.fingerprint, "via": "server", "display_name": self.display_name}


def _session(project: Project, principal: Principal, report: Report, wait: bool,
             environ: Mapping[str, str] | None) -> Session:
    from envplane.service.session import open_session

    session = open_session(project, report, wait, environ)
    session.actor = principal.actor  # the display name; the signature names who it proves
    return session


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def approve(project: Project, version: str, env: str, principal: Principal,
            environ: Mapping[str, str] | None = None) -> Approved:
    """Approve a release for `env` as the principal's user, signed by the server."""
    from envplane.release import flow

    if not principal.may("approve", env, project.app):
        raise Forbidden(f"{principal.actor} may not approve releases for {env} of app {project.app}",
                        f"approving needs the scope approve:{env} or approve:{project.app}/{env} (or a "
                        "pattern matching it, or admin)")
    vouch = vouch_for(principal, _environ(environ), "an approval")
    session = _session(project, principal, ignore, True, environ)
    signer = flow.approve(session, version, env, None, vouch=vouch)
    return Approved(version, env, signer, principal.actor)


def promote(project: Project, version: str, to: str, principal: Principal, *, timeout: float = 120.0,
            wait: bool = True, report: Report = ignore,
            on_verdict: Callable[[Verdict], None] = lambda verdict: None,
            environ: Mapping[str, str] | None = None) -> Promotion:
    """Promote a version into `to` as the principal: where `to` has an approval gate the
    request is signed by the server for the principal's user, so the gate knows who promotes
    and counts only another person's approval. Never signs with a key of the server's host."""
    from envplane.release import flow

    vouch = _requester(project, to, principal, environ, "a promotion")
    progress = Progress(report)
    return flow.promote(_session(project, principal, report, wait, environ), version, to, progress.step,
                        timeout, on_verdict, None, progress.waiting, vouch)


def rollback(project: Project, env: str, principal: Principal, to: str | None = None, *,
             timeout: float = 120.0, wait: bool = True, report: Report = ignore,
             confirm: Callable[[str], bool] = lambda why: False,
             environ: Mapping[str, str] | None = None) -> Deployed:
    """Roll `env` back as the principal, signed like `promote` (flow.rollback says which
    versions may be returned to, and `confirm` hears why one skips gates)."""
    from envplane.release import flow

    vouch = _requester(project, env, principal, environ, "a rollback")
    progress = Progress(report)
    return flow.rollback(_session(project, principal, report, wait, environ), env, to, progress.step,
                         timeout, None, confirm, progress.waiting, vouch)


def _requester(project: Project, env: str, principal: Principal, environ: Mapping[str, str] | None,
               doing: str) -> ServerVouch | None:
    """Who signs a promote or rollback request: the server for the principal's user where the
    env's approval gate is on; nobody where it is off (a display name is enough there)."""
    from envplane.release.flow import only_through_gates

    if not principal.may("deploy", env, project.app):
        raise Forbidden(f"{principal.actor} may not deploy to {env} of app {project.app}",
                        f"that needs the scope deploy:{env} or deploy:{project.app}/{env} (or a pattern "
                        "matching it, or admin)")
    if not only_through_gates(project.env(env)):
        return None
    return vouch_for(principal, _environ(environ), f"{doing} into {env} (its approval gate is on)")
