"""Release, promote, approve, rollback: the side effects around the pure gate decisions.

Each command takes the instance's lock, records a deployment and leaves audit rows
through `lifecycle`, so the audit log shows every step of a version's way to production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from envplane import actions, lifecycle
from envplane.apply import Applier, StepHook
from envplane.backends.runtime.compose import ComposeRuntime
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.swarm import SwarmRuntime
from envplane.errors import (
    BackendError,
    EnvplaneError,
    GateError,
    NeedsConfirmation,
    NotFound,
    NothingToDo,
    UsageError,
)
from envplane.events import WaitHook, no_wait
from envplane.hosts.engine import LOCAL
from envplane.names import Instance
from envplane.plan import Step, plan_up
from envplane.release import images as release_images
from envplane.release import reports, signatures
from envplane.release.bluegreen import BlueGreen
from envplane.release.colours import check_split, of_colour, other, pinned, running_colours, serving
from envplane.release.gates import Facts, Verdict, config_for, evaluate
from envplane.release.probe import Measured, measure, probe_urls
from envplane.release.signatures import Approval, ServerVouch, Signer, Subject
from envplane.release.versions import next_release, require
from envplane.run import run
from envplane.spec.ladder import EnvConfig
from envplane.spec.load import Project
from envplane.state import releases as store
from envplane.state.db import Store
from envplane.state.releases import Release
from envplane.target import Target

if TYPE_CHECKING:
    from envplane.hosts.images import Sent


@dataclass
class Deployed:
    version: str
    env: str
    instance: str
    colour: str | None
    urls: dict[str, str] = field(default_factory=dict)
    switch_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "env": self.env, "instance": self.instance, "colour": self.colour,
                "urls": dict(self.urls), "switch_seconds": self.switch_seconds}


@dataclass
class Promotion:
    version: str
    env: str
    verdict: Verdict
    measured: Measured | None = None
    deployed: Deployed | None = None

    def as_dict(self) -> dict[str, Any]:
        measured = self.measured
        return {"version": self.version, "env": self.env, "promoted": self.deployed is not None,
                "gates": [{"gate": r.gate, "ok": r.ok, "detail": r.detail} for r in self.verdict.results],
                "p95": {"requests": measured.requests, "errors": measured.errors, "p95_ms": measured.p95_ms}
                if measured else None,
                "deployed": self.deployed.as_dict() if self.deployed else None}


def only_through_gates(config: EnvConfig) -> bool:
    """Whether a version reaches the env only by a promotion whose gates pass: where an
    approval is needed, `release` may not deploy, and a rollback asks (see `ungated`)."""
    return config_for(config.gates, config.promote_from is not None).approval


def git_commit(root: Path, ref: str | None) -> str:
    found = run(["git", "-C", str(root), "rev-parse", "--verify", f"{ref or 'HEAD'}^{{commit}}"],
                check=False, what="git rev-parse")
    if found.returncode != 0:
        raise UsageError(f"{ref or 'HEAD'} is not a commit of a git checkout at {root}",
                         "a release is built from a commit: run it in the app's git repository")
    return found.stdout.strip()


def checked_out(root: Path, ref: str) -> str:
    """The commit `ref` names, when it is the one checked out at `root`. A deploy or a build
    from `root` takes that checkout's files: a ref naming another commit (or one the checkout
    does not have) would be recorded for code that never ran."""
    rev_parse = ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", "--end-of-options"]
    head = run([*rev_parse, "HEAD^{commit}"], check=False, what="git rev-parse")
    if head.returncode != 0:
        raise UsageError(f"{root} is not a git checkout: it cannot deploy ref {ref}, only its files as is",
                         "leave out the ref, or register a git checkout of the app")
    at = head.stdout.strip()
    named = None if "\0" in ref else run([*rev_parse, f"{ref}^{{commit}}"], check=False, what="git rev-parse")
    if named is None or named.returncode != 0 or named.stdout.strip() != at:
        known = named is not None and named.returncode == 0
        what = f"commit {named.stdout.strip()[:12]}" if named and known else "not a commit it has"
        raise UsageError(f"ref {ref} is {what}, but the checkout at {root} is at {at[:12]}: "
                         f"a deploy from it runs {at[:12]}",
                         f"check {ref} out there first (git fetch, git checkout), or leave out the ref")
    return at


def git_tags(root: Path) -> list[str]:
    return run(["git", "-C", str(root), "tag", "--list"], what="git tag").stdout.split()


def with_version(project: Project, version: str) -> Project:
    """The project as Compose sees it for one version: IMAGE_TAG names its images."""
    return replace(project, environ=MappingProxyType({**project.environ, "IMAGE_TAG": version}))


NUMBERING = ("releases", "next-version")  # the app's lock over version numbers (env, instance)


def create(session: lifecycle.Session, env: str, pr: int | None, ref: str | None,
           on_step: StepHook, health_timeout: float, on_wait: WaitHook = no_wait,
           commit: str | None = None) -> tuple[Release, Deployed]:
    """`envplane release staging`: the next version, built once, recorded, deployed.

    The files are the checkout's at `ref` (its commit), or, given `commit`, the project is
    loaded from a worktree of that commit (service.releases checks it out there)."""
    project = session.project
    config = project.env(env)
    _refuse_kubernetes(config.name, config.runtime)
    if only_through_gates(config):
        raise UsageError(f"env {env} takes a version only through its gates (approval among them)",
                         f"release to {config.promote_from or 'staging'} first, then "
                         f"`envplane promote VERSION --to {env}`")
    if commit is None:
        commit = checked_out(project.root, ref) if ref else git_commit(project.root, None)
    # One release numbers itself at a time, from picking the next version to recording it: two at
    # once would both take v1.0.N, and the second build would re-tag the first's images.
    with session.holding(project.app, *NUMBERING):
        recorded = [r.version for r in store.list_releases(session.store, project.app)]
        version = str(next_release([*git_tags(project.root), *recorded]))
        commit_tag = f"sha-{commit[:12]}"
        target = actions.resolve_checked(with_version(project, commit_tag), env, pr, None)
        work = project.root / ".envplane" / "releases" / version
        ComposeRuntime().check()
        # No version number is taken until the release can run: the checks that need no image
        # before the build, then the images and a trial of the new containers after it.
        cheap = ("isolation", "ports", "servers", "user-secrets")
        Applier(project, on_step=on_step).preflight(plan_up(target, project.root), cheap)
        build = Step("build", "run", f"build the images of {version} once, tagged {commit_tag} and {version}")
        on_step(build, "start", 0.0)
        started = time.monotonic()
        try:
            built = release_images.build_and_tag(target, project.compose[0].file.parent, work, commit_tag,
                                                 version)
        except EnvplaneError:
            on_step(build, "failed", time.monotonic() - started)
            raise
        on_step(build, "ok", time.monotonic() - started)
        released = with_version(project, version)
        pinned_target = pinned(actions.resolve_checked(released, env, pr, None), version, built)
        # A remote host gets the images here, the release's way (registry, else missing layers),
        # before the pre-flight looks for them there (it would send them its own way, unrecorded).
        sent = _transfer(released, pinned_target, version, built, on_step) if _sends(pinned_target) else None
        Applier(released, on_step=on_step).preflight(
            plan_up(pinned_target, project.root),
            ("images", "trial") if pinned_target.env.strategy != "blue-green" else ("images",))
        release = store.record_release(session.store, project.app, version, built, session.actor,
                                       ref=ref, commit=commit)
        session.audit("release", target, "ok", {"version": version, "commit": commit,
                                                "images": {k: v["ref"] for k, v in built.items()}})
        if sent is not None:
            _record_transfer(session, pinned_target, release, *sent)
    return release, deploy(session, release, env, pr, "deploy", on_step, health_timeout, on_wait,
                           sent=sent is not None)


def _refuse_kubernetes(env: str, runtime: str) -> None:
    """A release's images are on this host's engine; a cluster pulls from a registry, which
    releases do not push to yet (issue 12's images item)."""
    if runtime == "kubernetes":
        raise UsageError(f"env {env} runs on Kubernetes; releases and promotions reach only envs on this "
                         "host's engine so far (a cluster pulls its images from a registry)",
                         f"push the images to a registry the cluster pulls from, name them in `image:`, "
                         f"and run `envplane up {env}`")


def known(session: lifecycle.Session, version: str) -> Release:
    require(version)
    found = store.get_release(session.store, session.project.app, version)
    if found is None:
        raise NotFound(f"no release {version} of {session.project.app}",
                         "see `envplane releases`; versions are made by `envplane release`")
    return found


def deploy(session: lifecycle.Session, release: Release, env: str, pr: int | None, action: str,
           on_step: StepHook, health_timeout: float, on_wait: WaitHook = no_wait,
           sent: bool = False) -> Deployed:
    """Deploy a recorded release's own images to an env instance, by the env's strategy
    (`sent`: its images reached the instance's host already, recorded)."""
    _refuse_kubernetes(env, session.project.env(env).runtime)
    project = with_version(session.project, release.version)
    known_instances = lifecycle.known_instances(project, project.environ)
    target = pinned(actions.resolve_checked(project, env, pr, None, known_instances), release.version,
                    release.images)
    runtime = ComposeRuntime(target.engine)
    swarm = target.env.runtime == "swarm"  # a rolling update of the stack sends the images to its nodes
    if not swarm:
        runtime.check()
    if _sends(target) and not sent:
        _record_transfer(session, target, release,
                         *_transfer(project, target, release.version, release.images, on_step))
    release_images.check_unchanged(release.images, release.version, LOCAL if swarm else target.engine)
    check_split(target, project.doc)
    if swarm or target.env.strategy != "blue-green":  # Swarm: start-first, never two stacks
        plan = plan_up(target, project.root, hooks=project.spec.hooks)
        outcome = lifecycle.up(replace(session, project=project), plan, on_step, health_timeout,
                               version=release.version, action=action, on_wait=on_wait)
        return Deployed(release.version, env, target.id, None, outcome.urls)

    def switch(recorder: StepHook) -> Mapping[str, Any]:
        # Under the lock: no other deploy moves the colours between this look and the switch.
        containers = runtime.containers(target.app, target.id)
        colour = other(_serving(session, containers, target))
        applier = Applier(project, runtime=runtime, on_step=recorder, on_wait=on_wait,
                          health_timeout=health_timeout)
        done = BlueGreen(project, applier, recorder, health_timeout,
                         proxy=applier.proxy_of(target)).deploy(target, colour, containers)
        return {"urls": done.urls, "colour": colour, "switch_seconds": round(done.switch_seconds, 3)}

    detail = lifecycle.deploy(session, target, action, switch, on_step, version=release.version)
    return Deployed(release.version, env, target.id, detail["colour"], dict(detail["urls"]),
                    detail["switch_seconds"])


def _sends(target: Target) -> bool:
    """The release's images go to the instance's host first (Swarm's rolling update sends
    them to its nodes itself)."""
    return target.engine.remote and target.env.runtime != "swarm"


def _transfer(project: Project, target: Target, version: str, images: Mapping[str, Mapping[str, Any]],
              on_step: StepHook) -> tuple[list[Sent], list[tuple[str, str]]]:
    """The release's image IDs onto the instance's host: by the spec's registry (pushed once,
    pulled by digest), else over SSH by the layers the host lacks. Never rebuilt. Returns
    what was sent and the first pushes (service, digest), for _record_transfer."""
    from envplane.hosts.transfer import release_to_host

    registry = project.spec.registry
    how = f"through {registry.address}" if registry else "over SSH, missing layers only"
    step = Step("images", "run", f"send the images of {version} to {target.engine.describe()} ({how})")
    on_step(step, "start", 0.0)
    started = time.monotonic()
    pushed: list[tuple[str, str]] = []
    try:
        sent = release_to_host(project, target, images,
                               lambda service, digest: pushed.append((service, digest)))
    except EnvplaneError:
        on_step(step, "failed", time.monotonic() - started)
        raise
    on_step(replace(step, description=f"{step.description}: " + "; ".join(s.describe() for s in sent)),
            "ok", time.monotonic() - started)
    return sent, pushed


def _record_transfer(session: lifecycle.Session, target: Target, release: Release, sent: list[Sent],
                     pushed: list[tuple[str, str]]) -> None:
    for service, digest in pushed:
        store.record_pushed(session.store, release.app, release.version, service, digest)
    session.audit("images", target, "ok", {"version": release.version, "engine": target.engine.key,
                                           "sent": [{"ref": s.ref, "how": s.how, "bytes": s.bytes_sent,
                                                     "size": s.size, "digest": s.digest} for s in sent]})


def _serving(session: lifecycle.Session, containers: list[ContainerFact], target: Target) -> str | None:
    last = next(iter(store.history(session.store, target.app, target.env.name, target.id)), None)
    running = running_colours(containers)
    live = serving(running, last.colour if last else None)
    if live is None and len(running) == 2:
        raise BackendError(f"both colours of {target.project} run and no deploy recorded which serves",
                           f"stop the one the proxy does not route to: docker compose -p "
                           f"{target.project}-blue down (or -green)")
    return live


def subject(release: Release, env: str) -> Subject:
    """What approvals and requests for this release in `env` sign: its exact images."""
    return signatures.subject_of(release.app, env, release.version, release.images)


def approve(session: lifecycle.Session, version: str, env: str, key: Path | None,
            now: datetime | None = None, vouch: ServerVouch | None = None) -> Signer:
    """Sign an approval of the release for `env` with the approver's SSH key and record it;
    with `vouch`, the server signs it for the user it authenticated (never with a person's key)."""
    release = known(session, version)
    target = actions.resolve_checked(session.project, env, None, None)
    signers = signatures.approvers(session.project)
    at = now or datetime.now(UTC)
    environ = session.project.environ
    if vouch is not None:
        signed, signer = signatures.sign_vouched(subject(release, env).payload("approve", at, vouch.user),
                                                 vouch, signers, environ)
    else:
        signed, signer = signatures.sign_listed(subject(release, env).payload("approve", at),
                                                signatures.APPROVAL, key, signers, environ)
    store.record_approval(session.store, release.app, version, env, session.actor, at, signer.names,
                          signer.fingerprint, signed.payload, signed.signature)
    replace(session, signed_by=signer.proof()).audit("approve", target, "ok", {"version": version})
    return signer


def _signed_request(session: lifecycle.Session, action: str, release: Release, env: str,
                    key: Path | None, vouch: ServerVouch | None = None) -> lifecycle.Session:
    """The session as the verified signer of this request, when the env's approval gate is on
    (or a key is given); else unchanged. Who promotes or rolls back is then proven: by their
    own key, or (`vouch`) by the server's signature for the user it authenticated."""
    needed = only_through_gates(session.project.env(env))
    if not needed and (key is None or vouch is not None):
        return session
    signers = signatures.approvers(session.project, env if needed else None)
    at = datetime.now(UTC)
    if vouch is not None:
        _, signer = signatures.sign_vouched(subject(release, env).payload(action, at, vouch.user), vouch,
                                            signers, session.project.environ)
    else:
        _, signer = signatures.sign_listed(subject(release, env).payload(action, at), signatures.REQUEST,
                                           key, signers, session.project.environ)
    return replace(session, signed_by=signer.proof())


def approvals_now(project: Project, db: Store, release: Release, env: str | None = None,
                  now: datetime | None = None) -> list[tuple[str, Approval]]:
    """The release's stored approvals (env, approval), each verified again against today's
    approvers file and the release's images: a removed key or an edited row stops counting."""
    found = store.approvals(db, release.app, release.version, env)
    if not found:
        return []
    signers = signatures.approvers(project)
    at = now or datetime.now(UTC)
    return [(a.env, signatures.check_approval(a.actor, a.at, a.payload, a.signature,
                                              subject(release, a.env), signers, project.environ, at))
            for a in found]


def promote(session: lifecycle.Session, version: str, env: str, on_step: StepHook,
            health_timeout: float, on_verdict: Callable[[Verdict], None] = lambda v: None,
            key: Path | None = None, on_wait: WaitHook = no_wait,
            vouch: ServerVouch | None = None) -> Promotion:
    """Run every gate of `env` for the version; deploy it only when all of them pass.

    With an approval gate the request is signed (`key`, else ssh-agent's or ~/.ssh/id_ed25519)
    so the gate knows who promotes. `on_verdict` hears the gates' results before the deploy."""
    release = known(session, version)
    project = session.project
    config = project.env(env)
    target = actions.resolve_checked(project, env, None, None)
    gates = config_for(config.gates, config.promote_from is not None)
    session = _signed_request(session, "promote", release, env, key, vouch)
    facts, measured = gather(session, release, env, gates.p95_ms is not None, gates.approval)
    verdict = evaluate(gates, facts)
    store.record_gates(session.store, project.app, version, env, session.who,
                       [(r.gate, r.ok, r.detail) for r in verdict.results])
    outcome = "ok" if verdict.ok else "refused"
    session.audit("gates", target, outcome, {
        "version": version, "failed": [r.gate for r in verdict.failed],
        "passed": [r.gate for r in verdict.results if r.ok]})
    promotion = Promotion(version, env, verdict, measured)
    on_verdict(verdict)
    if verdict.ok:
        promotion.deployed = deploy(session, release, env, None, "promote", on_step, health_timeout, on_wait)
    return promotion


def ungated(project: Project, db: Store, version: str, env: str) -> str | None:
    """Why rolling `env` back to `version` would skip its gates; None when it would not.

    Where `release` deploys directly (no approval gate) any release may land, so a rollback
    skips nothing. Elsewhere a version belongs only once a promotion into the env passed
    every gate: one that ran there another way (a `release` before the approval gate was
    turned on, an ungated rollback) did not."""
    if not only_through_gates(project.env(env)) or store.passed_gates(db, project.app, version, env):
        return None
    return f"{version} never passed the gates of {env}"


def rollback(session: lifecycle.Session, env: str, to: str | None, on_step: StepHook,
             health_timeout: float, key: Path | None = None,
             confirm: Callable[[str], bool] = lambda why: False, on_wait: WaitHook = no_wait,
             vouch: ServerVouch | None = None) -> Deployed:
    """Back to the release before the current one (or `to`, one that ran on `env` before),
    through the same switch. Signed like a promotion where the env's approval gate is on.

    A version that never passed the env's gates is refused when the spec says
    `gates: {rollback_ungated: refuse}`, else taken only if `confirm(why)` says yes (else
    NeedsConfirmation, before anything is signed); either way the audit log says so
    (`rollback-ungated`, refused or confirmed)."""
    project = session.project
    target = actions.resolve_checked(project, env, None, None)
    if to is not None:
        require(to)  # a malformed version is bad input before anything is looked up
    past = store.history(session.store, project.app, env, target.id)
    if not past:
        raise NotFound(f"{project.app} has no release deployed on {env}: there is none to return to",
                       f"`envplane releases {env}` lists what ran there")
    current = past[0].version
    if to is None:
        earlier = next((p.version for p in past if p.version != current), None)
        if earlier is None:
            raise NotFound(f"{env} has run only {current}: there is no earlier release to return to",
                             "name one with --to VERSION")
        to = earlier
    if to == current:
        raise NothingToDo(f"{env} runs {to} already: nothing to roll back")
    if to not in {p.version for p in past}:
        # Else a rollback would be a promotion that skipped every gate.
        raise NotFound(f"{to} never ran on {env}: a rollback returns to a release that did",
                         f"a new version reaches {env} through `envplane promote {to} --to {env}`")
    release = known(session, to)
    why = ungated(project, session.store, to, env)
    policy = project.env(env).gates.rollback_ungated
    if why is not None and policy != "refuse" and not confirm(why):  # asked before anything is signed
        raise NeedsConfirmation(f"{why}: a rollback to it skips them",
                                "pass --yes to roll back anyway (the audit log says so), or promote it "
                                f"through the gates: `envplane promote {to} --to {env}`",
                                f"{why}. Roll back to it anyway?", f"{why}: a rollback to it skips them")
    session = _signed_request(session, "rollback", release, env, key, vouch)
    if why is not None:
        if policy == "refuse":
            session.audit("rollback-ungated", target, "refused", {"version": to, "why": why})
            raise GateError(f"{why}: a rollback to it is refused (gates.rollback_ungated: refuse)",
                            f"it reaches {env} through `envplane promote {to} --to {env}` and its gates")
        session.audit("rollback-ungated", target, "confirmed", {"version": to, "why": why})
    return deploy(session, release, env, None, "rollback", on_step, health_timeout, on_wait)


def gather(session: lifecycle.Session, release: Release, env: str, with_p95: bool,
           with_approvals: bool) -> tuple[Facts, Measured | None]:
    """The facts the gates of promoting `release` into `env` decide on."""
    version = release.version
    project = session.project
    config = project.env(env)
    previous = config.promote_from
    gates = config.gates
    placed = [p for p in store.placements(session.store, project.app)
              if previous and p.env == previous and p.version == version]
    healthy, measured = False, None
    if placed:
        where = Instance.from_id(placed[0].env, placed[0].instance)
        prev_target = actions.resolve_checked(project, where.env, where.pr, where.run)
        facts = of_colour(_runtime_of(prev_target).containers(prev_target.app, prev_target.id),
                          placed[0].colour)
        healthy = bool(facts) and all(f.state == "running" and f.health in (None, "healthy")
                                      for f in facts)
        if with_p95 and healthy:
            from envplane.hosts.probe import reached_urls

            with reached_urls(prev_target.engine, probe_urls(prev_target, facts)) as urls:
                measured = measure(urls, gates.p95_requests)
    root = project.root
    return Facts(
        version=version,
        promoter=session.actor,
        signer=_signer(session),
        previous_env=previous,
        deployed_on_previous=bool(placed),
        healthy_on_previous=healthy,
        p95_ms=measured.p95_ms if measured else None,
        approvals=[a for _, a in approvals_now(project, session.store, release, env)]
        if with_approvals else (),
        junit=_report(root, gates.junit, version, reports.junit),
        coverage=_report(root, gates.coverage, version, reports.coverage_percent),
        findings=_report(root, gates.security, version, reports.security_findings),
        migrated_on_previous=store.hook_ran(session.store, project.app, version, previous, "migrate")
        if previous else None,
        changelog_entry=_report(root, gates.changelog, version,
                                lambda text, _name: reports.changelog_has(text, version)) or False
        if gates.changelog else None,
    ), measured


def _runtime_of(target: Target) -> ComposeRuntime | SwarmRuntime:
    """What reports an instance's containers: its engine, or its swarm's tasks."""
    if target.env.runtime == "swarm":
        return SwarmRuntime(target.engine)
    return ComposeRuntime(target.engine)


def _signer(session: lifecycle.Session) -> Signer | None:
    proof = session.signed_by
    if proof is None:
        return None
    return Signer(tuple(proof["principal"].split(", ")), proof["key"], proof.get("via") == "server")


def _read(root: Path, template: str | None, version: str) -> tuple[Path, str] | None:
    """The report a spec names for the version, and its text; None when there is none."""
    if template is None:
        return None
    path = root / template.replace("{version}", version)
    try:
        return path, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackendError(f"cannot read {path}: {exc.strerror}") from None


def _report(root: Path, template: str | None, version: str, parse: Any) -> Any:
    found = _read(root, template, version)
    return parse(found[1], str(found[0])) if found else None
