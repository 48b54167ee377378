"""A version's way up: release, list, approve, gates, promote, rollback (release/flow.py does
the work; this gives each one a session, turns its progress into events and returns plain data).

Who acts is a parameter: `actor` is the display name the records carry (default: ENVPLANE_USER
or the OS user), and `vouch` the server's signature for the user it authenticated
(server/approvals.py) where the CLI signs with the person's own SSH key (`key`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane.errors import GateError, NotFound
from envplane.events import Progress, Report, ignore
from envplane.service.session import open_session
from envplane.spec.load import Project

if TYPE_CHECKING:  # the release code loads the state store and signatures: only when used
    from envplane.release.flow import Deployed, Promotion
    from envplane.release.gates import Verdict
    from envplane.release.signatures import Approval, ServerVouch, Signer
    from envplane.state.db import Store
    from envplane.state.releases import GateRecord, Placement, Release


def checked(project: Project, version: str | None, env: str) -> None:
    """A version and an env as typed: bad input is refused before the state store opens."""
    from envplane.release.versions import require

    project.env(env)
    if version is not None:
        require(version)


@dataclass(frozen=True)
class Released:
    """A new version, built once, recorded, and deployed to its first env."""

    version: str
    commit: str | None
    images: Mapping[str, Mapping[str, Any]]  # service -> {"ref", "id", "digest"}
    deployed: Deployed

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "commit": self.commit,
                "images": {service: dict(image) for service, image in self.images.items()},
                "deployed": self.deployed.as_dict()}


def create(project: Project, env: str = "staging", pr: int | None = None, ref: str | None = None, *,
           timeout: float = 120.0, wait: bool = True, actor: str | None = None,
           report: Report = ignore) -> Released:
    """Build the next version once (v1.0.44 -> v1.0.45), record its images, deploy it: of
    the checkout's files; or, when `ref` is a commit sha the checkout is not at, of that
    commit fetched from the app's remote into a worktree of the instance's own (the
    server's checkout stays as it is)."""
    from envplane import checkouts
    from envplane.names import Instance
    from envplane.release import flow

    checked(project, None, env)
    progress = Progress(report)
    session = open_session(project, report, wait, actor=actor)
    if ref is None or not checkouts.other_commit(project, ref):
        made, deployed = flow.create(session, env, pr, ref, progress.step, timeout, progress.waiting)
        return Released(made.version, made.commit, made.images, deployed)
    trees = checkouts.of_app(project)
    trees.check_remote()
    with session.holding(project.app, env, Instance(env, pr).id):  # lock, check out, deploy (#9)
        spec = trees.prepare(pr, ref, tuple) if pr is not None else trees.prepare_commit(env, ref)
        head = checkouts.head_project(project, spec)
        made, deployed = flow.create(replace(session, project=head), env, pr, ref, progress.step, timeout,
                                     progress.waiting, commit=ref)
    return Released(made.version, made.commit, made.images, deployed)


@dataclass(frozen=True)
class Listed:
    """A release and the instances that run it now: as text ("staging/staging (blue)") and
    as their placements."""

    release: Release
    running_on: tuple[str, ...]
    placed: tuple[Placement, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        r = self.release
        return {"version": r.version, "commit": r.commit, "ref": r.ref, "by": r.actor,
                "created_at": r.created_at.isoformat(), "deployed_on": list(self.running_on),
                "images": {service: dict(image) for service, image in r.images.items()}}


@dataclass(frozen=True)
class Releases:
    app: str
    env: str | None  # only releases deployed on this env
    releases: tuple[Listed, ...]  # newest first
    has_store: bool  # False: nothing was ever recorded here (and no store was made)

    def as_dict(self) -> dict[str, Any]:
        return {"app": self.app, "env": self.env, "releases": [r.as_dict() for r in self.releases]}


def list_releases(project: Project, env: str | None = None) -> Releases:
    """Every release, newest first, with where each one runs now (reads only)."""
    from envplane.state import releases as store

    if env:
        project.env(env)
    with _existing_store(project) as db:
        placed = store.placements(db, project.app) if db else []
        made = store.list_releases(db, project.app) if db else []
    found = []
    for release in made:
        running = [p for p in placed if p.version == release.version]
        if env and not any(p.env == env for p in running):
            continue
        found.append(Listed(release, tuple(f"{p.env}/{p.instance}" + (f" ({p.colour})" if p.colour else "")
                                           for p in running), tuple(running)))
    return Releases(project.app, env, tuple(found), db is not None)


@dataclass(frozen=True)
class Shown:
    """One release: where it runs now, and its gates' results of its latest promotion attempt
    per env."""

    release: Release
    placed: tuple[Placement, ...]
    gates: tuple[GateRecord, ...]


def show(project: Project, version: str) -> Shown:
    """One release (reads only); NotFound when there is no such release."""
    from envplane.state import releases as store

    with _existing_store(project) as found:
        db, release = _release(found, project, version)
        return Shown(release, tuple(p for p in store.placements(db, project.app) if p.version == version),
                     tuple(store.latest_gates(db, project.app, version)))


def _release(db: Store | None, project: Project, version: str) -> tuple[Store, Release]:
    """The store and the release in it; NotFound when either is not there."""
    from envplane.state import releases as store

    release = store.get_release(db, project.app, version) if db else None
    if db is None or release is None:
        raise NotFound(f"no release {version} of {project.app}",
                       "see `envplane releases`; versions are made by `envplane release`")
    return db, release


@dataclass(frozen=True)
class Approved:
    version: str
    env: str
    signer: Signer  # who the signature proves: a person's key, or the server's for its user
    display_name: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "env": self.env, "approved_by": list(self.signer.principals),
                "key": self.signer.fingerprint, "display_name": self.display_name,
                **({"via": "server"} if self.signer.by_server else {})}


def approve(project: Project, version: str, to: str, *, key: Path | None = None, actor: str | None = None,
            vouch: ServerVouch | None = None, report: Report = ignore) -> Approved:
    """Approve a version for an env: signed with the approver's SSH key (`key`, else
    ssh-agent's or ~/.ssh/id_ed25519), or with `vouch` by the server for the user it
    authenticated; the approvers file must list whoever signs."""
    from envplane.release import flow

    checked(project, version, to)
    session = open_session(project, report, actor=actor)
    return Approved(version, to, flow.approve(session, version, to, key, vouch=vouch), session.actor)


@dataclass(frozen=True)
class Gates:
    """A version's gate results of its latest promotion attempt per env, and its approvals
    checked again now against the approvers file (env, approval)."""

    app: str
    version: str
    gates: tuple[GateRecord, ...]
    approvals: tuple[tuple[str, Approval], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "gates": [{"env": r.env, "gate": r.gate, "ok": r.ok, "detail": r.detail, "by": r.actor,
                       "at": r.at.isoformat()} for r in self.gates],
            "approvals": [{"env": env, "display_name": a.display_name, "at": a.at.isoformat(),
                           "principals": list(a.signer.principals), "key": a.signer.fingerprint,
                           "valid": a.problem is None, "problem": a.problem} for env, a in self.approvals],
        }


def gates(project: Project, version: str, now: datetime | None = None) -> Gates:
    """The gates and approvals of a version (reads only); NotFound when there is no such release."""
    from envplane.release import flow
    from envplane.release.versions import require
    from envplane.state import releases as store

    require(version)
    with _existing_store(project) as found:
        db, release = _release(found, project, version)
        approvals = flow.approvals_now(project, db, release, now=now) if project.spec.approvers else []
        return Gates(project.app, version, tuple(store.latest_gates(db, project.app, version)),
                     tuple(approvals))


class PromotionRefused(GateError):
    """A gate said no: nothing was deployed (exit 1); `promotion` holds every gate's result."""

    def __init__(self, promotion: Promotion) -> None:
        failed = promotion.verdict.failed
        super().__init__(f"{promotion.version} was not promoted to {promotion.env}: {len(failed)} gate(s) "
                         "failed: " + "; ".join(f"{r.gate}: {r.detail}" for r in failed),
                         f"fix the failed gates and promote again (`envplane gates {promotion.version}` "
                         "shows every result)")
        self.promotion = promotion


def promote(project: Project, version: str, to: str, *, key: Path | None = None, actor: str | None = None,
            vouch: ServerVouch | None = None, timeout: float = 120.0, wait: bool = True,
            report: Report = ignore, on_verdict: Callable[[Verdict], None] = lambda verdict: None
            ) -> Promotion:
    """Run the env's gates for a version; deploy that same release when every one passes,
    else PromotionRefused. Behind an approval gate the request is signed (`key` or `vouch`)
    so the gate knows who promotes. `on_verdict` hears the gates' results before the deploy."""
    from envplane.release import flow

    checked(project, version, to)
    progress = Progress(report)
    promotion = flow.promote(open_session(project, report, wait, actor=actor), version, to, progress.step,
                             timeout, on_verdict, key, progress.waiting, vouch)
    if promotion.deployed is None:
        raise PromotionRefused(promotion)
    return promotion


def rollback(project: Project, env: str, to: str | None = None, *, yes: bool = False,
             key: Path | None = None, actor: str | None = None, vouch: ServerVouch | None = None,
             timeout: float = 120.0, wait: bool = True, report: Report = ignore) -> Deployed:
    """Return an env to its previous release (or `to`), through the same switch. A version
    that never passed the env's gates needs `yes` (NeedsConfirmation, before anything is
    signed or changed), or is refused outright where the spec says so (flow.rollback)."""
    from envplane.release import flow

    checked(project, to, env)
    progress = Progress(report)
    return flow.rollback(open_session(project, report, wait, actor=actor), env, to, progress.step, timeout,
                         key, lambda why: yes, progress.waiting, vouch)


@contextmanager
def _existing_store(project: Project) -> Iterator[Store | None]:
    """The state store when there is one (reading must not create one), closed after use."""
    from envplane.state.db import open_existing

    db = open_existing(project.root, project.environ.get("ENVPLANE_STATE_URL"))
    try:
        yield db
    finally:
        if db is not None:
            db.close()
