"""Release, promote, approve, rollback: the side effects around the pure gate decisions.

Each command takes the instance's lock, records a deployment and leaves audit rows
through `lifecycle`, so the audit log shows every step of a version's way to production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envplane import actions, lifecycle
from envplane.apply import Applier, StepHook
from envplane.backends.runtime.compose import ComposeRuntime
from envplane.backends.runtime.facts import ContainerFact
from envplane.errors import BackendError, EnvplaneError, UsageError
from envplane.names import Instance
from envplane.plan import Step, plan_up
from envplane.release import images as release_images
from envplane.release import reports
from envplane.release.bluegreen import BlueGreen
from envplane.release.colours import of_colour, other, pinned, running_colours, serving
from envplane.release.gates import Facts, Verdict, config_for, evaluate
from envplane.release.probe import Measured, measure, probe_urls
from envplane.release.versions import next_release, require
from envplane.run import run
from envplane.spec.load import Project
from envplane.state import releases as store
from envplane.state.releases import Release
from envplane.target import Target


@dataclass
class Deployed:
    version: str
    env: str
    instance: str
    colour: str | None
    urls: dict[str, str] = field(default_factory=dict)
    switch_seconds: float | None = None


@dataclass
class Promotion:
    version: str
    env: str
    verdict: Verdict
    measured: Measured | None = None
    deployed: Deployed | None = None


def git_commit(root: Path, ref: str | None) -> str:
    found = run(["git", "-C", str(root), "rev-parse", "--verify", f"{ref or 'HEAD'}^{{commit}}"],
                check=False, what="git rev-parse")
    if found.returncode != 0:
        raise UsageError(f"{ref or 'HEAD'} is not a commit of a git checkout at {root}",
                         "a release is built from a commit: run it in the app's git repository")
    return found.stdout.strip()


def git_tags(root: Path) -> list[str]:
    return run(["git", "-C", str(root), "tag", "--list"], what="git tag").stdout.split()


def with_version(project: Project, version: str) -> Project:
    """The project as Compose sees it for one version: IMAGE_TAG names its images."""
    return replace(project, environ=MappingProxyType({**project.environ, "IMAGE_TAG": version}))


def create(session: lifecycle.Session, env: str, pr: int | None, ref: str | None,
           on_step: StepHook, health_timeout: float) -> tuple[Release, Deployed]:
    """`envplane release staging`: the next version, built once, recorded, deployed."""
    project = session.project
    config = project.env(env)
    if config_for(config.gates, config.promote_from is not None).approval:
        raise UsageError(f"env {env} takes a version only through its gates (approval among them)",
                         f"release to {config.promote_from or 'staging'} first, then "
                         f"`envplane promote VERSION --to {env}`")
    commit = git_commit(project.root, ref)
    recorded = [r.version for r in store.list_releases(session.store, project.app)]
    version = str(next_release([*git_tags(project.root), *recorded]))
    commit_tag = f"sha-{commit[:12]}"
    target = actions.resolve_checked(with_version(project, commit_tag), env, pr, None, [])
    work = project.root / ".envplane" / "releases" / version
    ComposeRuntime().check()
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
    release = store.record_release(session.store, project.app, version, built, session.actor,
                                   ref=ref, commit=commit)
    session.audit("release", target, "ok", {"version": version, "commit": commit,
                                            "images": {k: v["ref"] for k, v in built.items()}})
    return release, deploy(session, release, env, pr, "deploy", on_step, health_timeout)


def known(session: lifecycle.Session, version: str) -> Release:
    require(version)
    found = store.get_release(session.store, session.project.app, version)
    if found is None:
        raise UsageError(f"no release {version} of {session.project.app}",
                         "see `envplane releases`; versions are made by `envplane release`")
    return found


def deploy(session: lifecycle.Session, release: Release, env: str, pr: int | None, action: str,
           on_step: StepHook, health_timeout: float) -> Deployed:
    """Deploy a recorded release's own images to an env instance, by the env's strategy."""
    project = with_version(session.project, release.version)
    known_instances = lifecycle.known_instances(project, project.environ)
    target = pinned(actions.resolve_checked(project, env, pr, None, known_instances), release.version,
                    release.images)
    runtime = ComposeRuntime()
    runtime.check()
    release_images.check_unchanged(release.images, release.version)
    if target.env.strategy != "blue-green":
        plan = plan_up(target, project.root, hooks=project.spec.hooks)
        outcome = lifecycle.up(replace(session, project=project), plan, on_step, health_timeout,
                               version=release.version, action=action)
        return Deployed(release.version, env, target.id, None, outcome.urls)

    def switch(recorder: StepHook) -> Mapping[str, Any]:
        # Under the lock: no other deploy moves the colours between this look and the switch.
        containers = runtime.containers(target.app, target.id)
        colour = other(_serving(session, containers, target))
        applier = Applier(project, runtime=runtime, on_step=recorder, health_timeout=health_timeout)
        done = BlueGreen(project, applier, recorder, health_timeout).deploy(target, colour, containers)
        return {"urls": done.urls, "colour": colour, "switch_seconds": round(done.switch_seconds, 3)}

    detail = lifecycle.deploy(session, target, action, switch, on_step, version=release.version)
    return Deployed(release.version, env, target.id, detail["colour"], dict(detail["urls"]),
                    detail["switch_seconds"])


def _serving(session: lifecycle.Session, containers: list[ContainerFact], target: Target) -> str | None:
    last = next(iter(store.history(session.store, target.app, target.env.name, target.id)), None)
    running = running_colours(containers)
    live = serving(running, last.colour if last else None)
    if live is None and len(running) == 2:
        raise BackendError(f"both colours of {target.project} run and no deploy recorded which serves",
                           f"stop the one the proxy does not route to: docker compose -p "
                           f"{target.project}-blue down (or -green)")
    return live


def approve(session: lifecycle.Session, version: str, env: str) -> None:
    release = known(session, version)
    target = actions.resolve_checked(session.project, env, None, None, [])
    store.record_approval(session.store, release.app, version, env, session.actor)
    session.audit("approve", target, "ok", {"version": version})


def promote(session: lifecycle.Session, version: str, env: str, on_step: StepHook,
            health_timeout: float, on_verdict: Callable[[Verdict], None] = lambda v: None) -> Promotion:
    """Run every gate of `env` for the version; deploy it only when all of them pass.

    `on_verdict` hears the gates' results before the deploy starts."""
    release = known(session, version)
    project = session.project
    config = project.env(env)
    target = actions.resolve_checked(project, env, None, None, [])
    gates = config_for(config.gates, config.promote_from is not None)
    facts, measured = gather(session, version, env, gates.p95_ms is not None)
    verdict = evaluate(gates, facts)
    store.record_gates(session.store, project.app, version, env, session.actor,
                       [(r.gate, r.ok, r.detail) for r in verdict.results])
    outcome = "ok" if verdict.ok else "refused"
    session.audit("gates", target, outcome, {
        "version": version, "failed": [r.gate for r in verdict.failed],
        "passed": [r.gate for r in verdict.results if r.ok]})
    promotion = Promotion(version, env, verdict, measured)
    on_verdict(verdict)
    if verdict.ok:
        promotion.deployed = deploy(session, release, env, None, "promote", on_step, health_timeout)
    return promotion


def rollback(session: lifecycle.Session, env: str, to: str | None, on_step: StepHook,
             health_timeout: float) -> Deployed:
    """Back to the release before the current one (or `to`), through the same switch."""
    project = session.project
    target = actions.resolve_checked(project, env, None, None, [])
    past = store.history(session.store, project.app, env, target.id)
    if not past:
        raise UsageError(f"{project.app} has no release deployed on {env}", "nothing to roll back")
    current = past[0].version
    if to is None:
        earlier = next((p.version for p in past if p.version != current), None)
        if earlier is None:
            raise UsageError(f"{env} has run only {current}: there is no earlier release to return to",
                             "name one with --to VERSION")
        to = earlier
    if to == current:
        raise UsageError(f"{env} runs {to} already")
    return deploy(session, known(session, to), env, None, "rollback", on_step, health_timeout)


def gather(session: lifecycle.Session, version: str, env: str,
           with_p95: bool) -> tuple[Facts, Measured | None]:
    """The facts the gates of promoting `version` into `env` decide on."""
    project = session.project
    config = project.env(env)
    previous = config.promote_from
    gates = config.gates
    placed = [p for p in store.placements(session.store, project.app)
              if previous and p.env == previous and p.version == version]
    healthy, measured = False, None
    if placed:
        where = Instance.from_id(placed[0].env, placed[0].instance)
        prev_target = actions.resolve_checked(project, where.env, where.pr, where.run, [])
        facts = of_colour(ComposeRuntime().containers(prev_target.app, prev_target.id), placed[0].colour)
        healthy = bool(facts) and all(f.state == "running" and f.health in (None, "healthy")
                                      for f in facts)
        if with_p95 and healthy:
            measured = measure(probe_urls(prev_target, facts), gates.p95_requests)
    root = project.root
    return Facts(
        version=version,
        promoter=session.actor,
        previous_env=previous,
        deployed_on_previous=bool(placed),
        healthy_on_previous=healthy,
        p95_ms=measured.p95_ms if measured else None,
        approvers=store.approvers(session.store, project.app, version, env),
        junit=_report(root, gates.junit, version, reports.junit),
        coverage=_report(root, gates.coverage, version, reports.coverage_percent),
        findings=_report(root, gates.security, version, reports.security_findings),
        migrated_on_previous=store.hook_ran(session.store, project.app, version, previous, "migrate")
        if previous else None,
        changelog_entry=_report(root, gates.changelog, version,
                                lambda text, _name: reports.changelog_has(text, version)) or False
        if gates.changelog else None,
    ), measured


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
