"""Property: random specs x random sets of instances never clash.

Either an instance passes the isolation check when it is planned, or the check
refuses it naming both sides; the instances that pass never share anything. Names
(projects, containers, networks, volumes, databases, buckets, prefixes, secret paths,
domains, data paths) are kept apart by construction, whatever the spec.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envplane import actions, isolation
from envplane.errors import IsolationError, SpecError
from envplane.names import Instance
from envplane.spec.load import load_project
from envplane.target import Target

service_names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
app_names = st.from_regex(r"[a-z][a-z0-9]{1,10}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)


@st.composite
def specs(draw: st.DrawFn) -> tuple[str, str]:
    app = draw(app_names)
    names = draw(st.lists(service_names, min_size=1, max_size=4, unique=True))
    lines = ["services:"]
    for name in names:
        published = draw(st.lists(st.tuples(ports, ports), max_size=3))
        lines.append(f"  {name}:")
        lines.append("    image: busybox")
        if published:
            lines.append("    ports: [" + ", ".join(f'"{h}:{c}"' for h, c in published) + "]")
        if draw(st.booleans()):
            lines.append(f"    volumes: [\"{name}-data:/data\"]")
    volumes = [n for n in names if f"{n}-data:/data" in "\n".join(lines)]
    if volumes:
        lines.append("volumes:")
        lines += [f"  {n}-data: {{}}" for n in volumes]
    spec = f"app: {app}\ndomain: example.com\ncompose: compose.yaml\n"
    if draw(st.booleans()):
        spec += "environments:\n  production-sg: {}\n  staging:\n    port_offset: 1\n"
    return spec, "\n".join(lines) + "\n"


NAME_KINDS = {
    "compose project", "container", "network", "volume", "data path", "secret path",
    "database", "database role", "bucket", "key prefix", "domain",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    prs=st.sets(st.integers(min_value=1, max_value=3000), max_size=6),
    runs=st.sets(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), max_size=3),
)
def test_checked_instances_never_clash(spec: tuple[str, str], prs: set[int], runs: set[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "envplane.yaml").write_text(spec[0])
        (root / "compose.yaml").write_text(spec[1])
        project = load_project(root / "envplane.yaml", {})
        known = [Instance("test", pr=n) for n in sorted(prs)]
        wanted = [(name, None, None) for name, cfg in project.envs.items() if cfg.instances == "one"]
        wanted += [("test", n, None) for n in sorted(prs)] + [("ci", None, r) for r in sorted(runs)]
        accepted: list[Target] = []
        resolvable: list[Target] = []
        for env, pr, run in wanted:
            try:
                resolvable.append(actions.resolve(project, env, pr, run))
                accepted.append(actions.resolve_checked(project, env, pr, run, known))
            except IsolationError as exc:
                assert all(" is claimed by both " in p.message for p in exc.problems)
            except SpecError as exc:
                # only what cannot be placed at all: a port out of range, a clash inside one instance
                assert all(
                    any(why in p.message for why in ("out of range", "no room", "port_stride", "claimed by both"))
                    for p in exc.problems
                ), str(exc)
        assert isolation.violations(accepted) == []
        assert [v for v in isolation.violations(resolvable) if v.kind in NAME_KINDS] == []
