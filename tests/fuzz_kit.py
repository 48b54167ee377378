"""Mutated specs and Compose files, run the way `plan`, `render` and `envs` run them (#9.21).

A mutation takes a valid document and changes one place in it: a value of another type
(string, integer, float, list, mapping, null, boolean) or a hostile one (huge and
negative numbers, empty and very long strings, NUL bytes, `${`, templates, paths), a
deleted key, an unknown key, a renamed key. `outcome` runs the pair through the same
functions the CLI calls; the only acceptable failure is an EnvplaneError that names the
file and the field (exit 2), or an isolation clash that names both sides.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from envplane import actions
from envplane.errors import EnvplaneError, IsolationError, SpecError, UsageError

Doc = Any
PathKey = tuple[str | int, ...]

# How many examples each fuzz test runs: a few seconds in the normal suite; a long run
# sets ENVPLANE_FUZZ_EXAMPLES (e.g. 5000) and, for new inputs each time, ENVPLANE_FUZZ_RANDOM=1.
EXAMPLES = int(os.environ.get("ENVPLANE_FUZZ_EXAMPLES", "40"))
RANDOM = os.environ.get("ENVPLANE_FUZZ_RANDOM", "") == "1"

RICH_SPEC: dict[str, Any] = {
    "app": "shop",
    "domain": "example.com",
    "prefix": "sh",
    "compose": ["compose.yaml"],
    "secret_store": "file",
    "services": {
        "web": {"public": {"port": 80, "path": "/"}, "health": "/health", "dev": "python app.py",
                "dev_cwd": ".", "env": {"LOG": "info"}, "uses": ["postgres", "s3", "redis"],
                "secrets": ["API_KEY"], "stateful": False},
        "api": {"public": {"port": 8000, "path": "/api"}, "health": "/api/health"},
    },
    "resources": {"postgres": {"url_var": "DATABASE_URL"}, "s3": {}, "redis": None},
    "shared": {"binds": ["/srv/media"], "host_network": ["web"], "host_pid": [], "host_ipc": []},
    "hooks": {"migrate": {"service": "api", "command": "migrate"}},
    "environments": {
        "staging": {"data_path": "/data/{app}/staging", "domain": "{prefix}-staging.{domain}",
                    "suffix": "-staging", "domain_suffix": "-staging", "secrets_env": "staging",
                    "host": "server", "runtime": "compose", "instances": "one", "port_mode": "offset",
                    "port_offset": 15000, "ports": {"web": {80: 8081}}, "volumes": "bind",
                    "compose": [], "profiles": ["tools"], "lifecycle": "persistent", "ttl": "7d",
                    "env": {"X": "y"}, "servers": {"postgres": "STAGING_PG"}, "strategy": "recreate",
                    "promote_from": "test", "drain_seconds": 2,
                    "gates": {"p95_ms": 150, "p95_requests": 20, "approval": True, "junit": "j.xml",
                              "min_coverage": 70, "max_severity": "high"}},
        "test": {"port_base": 31000, "port_stride": 10, "port_mode": "block"},
        "production-sg": {"extends": "production", "domain": "{prefix}-sg.{domain}"},
    },
}

RICH_COMPOSE: dict[str, Any] = {
    "name": "ignored",
    "services": {
        "web": {"image": "nginx:1", "ports": ["8080:80", {"target": 443, "published": 8443, "protocol": "tcp"}],
                "volumes": ["data:/d", {"type": "bind", "source": "./conf", "target": "/c", "read_only": True},
                            "/srv/media:/media:ro", "/cache"],
                "environment": ["A=1", "B"], "labels": {"a": "b"}, "networks": ["front"],
                "depends_on": {"api": {"condition": "service_healthy"}}, "network_mode": "host",
                "env_file": [".env", {"path": "extra.env", "required": False}],
                "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost/health"]},
                "deploy": {"replicas": 1}, "extra_hosts": ["h:127.0.0.1"], "secrets": ["token"],
                "command": ["nginx", "-g", "daemon off;"], "logging": {"driver": "json-file"}},
        "api": {"build": {"context": "./api", "args": ["V=1"]}, "ports": ["8000-8001:8000-8001/tcp"],
                "extends": {"service": "base"}, "profiles": [], "container_name": "api",
                "configs": [{"source": "cfg", "target": "/cfg"}]},
        "base": {"image": "busybox", "environment": {"BASE": 1}},
        "tool": {"image": "alpine", "profiles": ["tools"], "entrypoint": "sh"},
    },
    "volumes": {"data": {"labels": ["x=y"]}},
    "networks": {"front": None, "outside": {"external": True, "name": "proxy"}},
    "secrets": {"token": {"file": "./token.txt"}},
    "configs": {"cfg": {"file": "./cfg.txt"}},
    "x-extra": {"anything": [1, 2]},
}

# Hostile values: each one has broken something once (see the regression tests).
WEIRD_TEXT = [
    "", " ", "\x00", "a\x00b", "${", "${X", "${A:?boom}", "$$", "$", "{", "{0}", "{app.x}", "{pr}", "{run}",
    "{x}", "ü", "🙂", "a" * 5000, "-1", "0", "65536", "99999999999999999999", "/", ".", "..", "~", "~x",
    "a:b:c:d", ":", "::", "8080:80/udp", "[::1]:80:80", "1-3:5-6", "3-1", "0.0.0.0:0:0", "host",
    "service:web", "true", "null", "-", "-pr-1", "1d", "7x", "/data/{app}/{run}", "../../etc",
    "C:\\x", "\n", "a\nb", "#", "'", '"', "%", "\\",
]
WEIRD_NUMBERS = [0, -1, 1, 65535, 65536, -65536, 2**31, 2**63, 10**30, -(10**30)]
KEYS = ["image", "target", "source", "type", "port", "path", "file", "service", "external", "name",
        "driver", "context", "x", "0", "", "extends", "replicas", "published", "test"]

scalars = st.one_of(
    st.sampled_from(WEIRD_TEXT),
    st.sampled_from(WEIRD_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=6,
)


def places(doc: Doc, path: PathKey = ()) -> Iterator[PathKey]:
    """Every place in a document, the root included."""
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from places(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from places(value, (*path, index))


@st.composite
def mutated(draw: st.DrawFn, doc: Doc, most: int = 3) -> Doc:
    """`doc` with one to `most` places changed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=most))):
        where = draw(st.sampled_from(list(places(doc))))
        if not where:
            if draw(st.integers(0, 9)) == 0:  # rarely: the whole file is something else
                doc = draw(values)
            continue
        parent = doc
        for part in where[:-1]:
            parent = parent[part]
        key = where[-1]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "rename"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS + WEIRD_TEXT[:20]))] = draw(values)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(WEIRD_TEXT[:30] + KEYS))] = parent.pop(key)
        else:
            parent[key] = draw(values)
    return doc


def to_yaml(doc: Doc) -> str:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    return buffer.getvalue()


ENVS = [("staging", None, None), ("production", None, None), ("test", 7, None), ("ci", None, "r1"),
        ("local", None, None), ("docker", None, None), ("dr", None, None)]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: EnvplaneError | None = None


def outcome(root: Path, spec: str, compose: str, env: str, pr: int | None, run: str | None,
            environ: dict[str, str] | None = None) -> Outcome:
    """Write the pair into `root` and run it as `plan`, `render` and `envs` do, in process.

    Raises AssertionError for anything but success or a well-formed bad-input error.
    """
    (root / "envplane.yaml").write_text(spec, encoding="utf-8")
    (root / "compose.yaml").write_text(compose, encoding="utf-8")
    try:
        project, target = actions.load_checked(root / "envplane.yaml", environ or {}, env, pr, run)
        actions.plan(project, target, None)
        actions.render_text(project, target)
        actions.env_matrix(project)
    except EnvplaneError as exc:
        assert_names_its_place(exc)
        return Outcome(False, exc)
    return Outcome(True)


WHOLE_FILE = ("YAML syntax error", "the file is empty", "the file holds no data",
              "must be a mapping", "a Compose file must be a mapping")


def assert_names_its_place(exc: EnvplaneError) -> None:
    assert exc.exit_code == 2, f"bad input must exit 2: {type(exc).__name__}: {exc}"
    if isinstance(exc, IsolationError):
        assert all(" is claimed by both " in p.message for p in exc.problems), str(exc)
        return
    if isinstance(exc, UsageError) and exc.message.startswith(("DATA_PATH: ", "DATA_PATH=")):
        return  # a bad DATA_PATH in the environment: the variable is its place (there is no file)
    assert isinstance(exc, SpecError), f"{type(exc).__name__} names no file: {exc}"
    for problem in exc.problems:
        assert problem.file is not None, f"no file: {problem.render()}"
        assert problem.field or problem.message.startswith(WHOLE_FILE), f"no field: {problem.render()}"
