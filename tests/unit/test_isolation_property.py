"""Property: random specs x random sets of instances never clash.

Either an instance passes the isolation check when it is planned, or the check
refuses it naming both sides; the instances that pass never share anything. Names
(projects, containers, networks, volumes, databases, buckets, prefixes, secret paths,
domains, data paths) are kept apart by construction, whatever the spec. What services
take from the host (`network_mode`/`pid`/`ipc: host`, host folders) two accepted
instances on one machine share only when the spec's `shared:` declares it (#9.19, #10.3).
Data paths the spec sets are drawn too (nested, relative, too short, not naming the
instance): every accepted one is its instance's own (datapath.py) and none contains
another, on any machine, so a purge can never delete another instance's data (#9.2).
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path, PurePosixPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from envplane import actions, isolation
from envplane.datapath import not_owned
from envplane.errors import IsolationError, SpecError
from envplane.names import Instance
from envplane.spec.load import load_project
from envplane.target import HostUse, Target

service_names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
app_names = st.from_regex(r"[a-z][a-z0-9]{1,10}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)
# Data paths a spec may set: owned ones, nested ones, and ones the ownership rule refuses.
DATA_PATHS = ["/srv/{app}/{env}", "/srv/{app}/staging-x/{app}-{env}", "/srv/{app}/staging-x",
              "/srv/{env}/{app}", "/srv/{app}", ".", "/", "data/{app}-{env}", "{project_dir}",
              "{project_dir}/.envplane/data/{app}-{env}", "/srv/test/{app}-pr-{pr}",
              "/srv/{app}/staging-x/{app}-pr-{pr}", "/srv/{app}/staging-x/{app}-ci-{run}"]


# Host folders services may bind: shared ones, nested ones, a home folder, the parent of
# every data path, the instance's own data, the app's own files.
HOST_BINDS = ["/srv/media:/media", "/srv/media/movies:/movies", "~/cfg:/cfg", "/data:/all",
              "${DATA_PATH}/db:/db", "./conf:/conf:ro"]
DECLARABLE = ["/srv/media", "/srv/media/movies", "~/cfg", "/data", "/srv"]
NAMESPACES = {"network_mode": "host_network", "pid": "host_pid", "ipc": "host_ipc"}


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
        binds = draw(st.lists(st.sampled_from(HOST_BINDS), max_size=2, unique=True))
        if draw(st.booleans()):
            binds.append(f"{name}-data:/data")
        if binds:
            lines.append("    volumes: [" + ", ".join(f'"{b}"' for b in binds) + "]")
        for key in draw(st.sets(st.sampled_from(sorted(NAMESPACES)), max_size=2)):
            lines.append(f"    {key}: host")
    volumes = [n for n in names if f"{n}-data:/data" in "\n".join(lines)]
    if volumes:
        lines.append("volumes:")
        lines += [f"  {n}-data: {{}}" for n in volumes]
    envs = ""
    if draw(st.booleans()):
        envs += "  production-sg: {}\n  staging:\n    port_offset: 1\n"
    for env in ("staging", "production", "dr", "docker", "test", "ci"):
        path = draw(st.none() | st.sampled_from(DATA_PATHS))
        if path is not None:  # an env of its own, except the per-PR and per-run ones (one of each)
            head = f"  {env}:\n" if env in ("test", "ci") else f"  {env}-x:\n    extends: {env}\n"
            envs += f"{head}    data_path: \"{path}\"\n"
    spec = f"app: {app}\ndomain: example.com\ncompose: compose.yaml\n"
    spec += f"environments:\n{envs}" if envs else ""
    shared = [f"  binds: {draw(st.lists(st.sampled_from(DECLARABLE), max_size=3, unique=True))}"]
    shared += [f"  {key}: {draw(st.lists(st.sampled_from(names), max_size=2, unique=True))}"
               for key in NAMESPACES.values()]
    if draw(st.booleans()):
        spec += "shared:\n" + "\n".join(shared).replace("'", '"') + "\n"
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
        known = actions.Known(tuple([Instance("test", pr=n) for n in sorted(prs)]
                                    + [Instance("ci", run=r) for r in sorted(runs)]))
        wanted = [(name, None, None) for name, cfg in project.envs.items() if cfg.instances == "one"]
        for name, cfg in project.envs.items():
            if cfg.instances == "per-pr":
                wanted += [(name, n, None) for n in sorted(prs)]
            elif cfg.instances == "per-run":
                wanted += [(name, None, r) for r in sorted(runs)]
        accepted: list[Target] = []
        resolvable: list[Target] = []
        for env, pr, run in wanted:
            try:
                resolvable.append(actions.resolve(project, env, pr, run))
                accepted.append(actions.resolve_checked(project, env, pr, run, known))
            except IsolationError as exc:
                assert all(" is claimed by both " in p.message for p in exc.problems)
            except SpecError as exc:
                # only what cannot be placed at all: a port out of range, a clash inside one
                # instance, a data path the instance would not own
                assert all(
                    any(why in p.message for why in ("out of range", "no room", "port_stride", "claimed by both"))
                    or p.field.endswith(".data_path")
                    for p in exc.problems
                ), str(exc)
        assert isolation.violations(accepted) == []
        assert [v for v in isolation.violations(resolvable) if v.kind in NAME_KINDS - {"data path"}] == []
        assert_host_sharing_is_declared(accepted, spec[0])
        here = PurePosixPath(root.resolve().as_posix())
        for target in accepted:
            assert not_owned(target.data_path, target.app, target.id, here) is None
            for other in accepted:
                assert other is target or not nested(target.data_path, other.data_path), (target.id, other.id)


def assert_host_sharing_is_declared(accepted: list[Target], spec: str) -> None:
    """Two accepted containers on one machine share the host's namespaces or folders
    only as the spec's `shared:` says, and never a folder holding another's data path."""
    shared = YAML(typ="safe").load(spec).get("shared") or {}
    binds = [PurePosixPath(p) for p in shared.get("binds", [])]

    def declared(use: HostUse) -> bool:
        if use.kind == "bind":
            return any(PurePosixPath(use.value).is_relative_to(p) for p in binds)
        return use.service in shared.get(NAMESPACES[use.kind], [])

    for a, b in itertools.permutations(accepted, 2):
        if not isolation.place(a).meets(isolation.place(b)) or "process" in (a.env.runtime, b.env.runtime):
            continue
        for mine in a.host_uses:
            if mine.kind == "app":
                continue
            if mine.kind == "bind":
                assert not nested(mine.value, b.data_path), (mine, b.id)
            for theirs in b.host_uses:
                if theirs.kind != mine.kind or (mine.kind == "bind" and not nested(mine.value, theirs.value)):
                    continue
                assert declared(mine) and declared(theirs), (a.id, mine, b.id, theirs)


def nested(a: str, b: str) -> bool:
    x, y = PurePosixPath(a), PurePosixPath(b)
    return x.is_relative_to(y) or y.is_relative_to(x)
