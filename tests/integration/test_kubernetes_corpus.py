"""Every file of the Compose corpus, for every env, as Kubernetes manifests: valid against
Kubernetes' own schemas (kubernetes-validate, strict), or refused at plan time with each
field that does not map named (file:line) — and once those fields are taken out, it maps.
The Helm chart of each renders per env, through Helm's own Go SDK (helm-python-sdk), into
exactly the manifests of `--format kubernetes`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from envplane import actions
from envplane.errors import SpecError
from envplane.kubernetes.convert import Manifests, identity
from envplane.kubernetes.helm import KEEP
from envplane.kubernetes.render import chart_files, manifests, write_chart
from envplane.spec.load import Project
from tests.support import corpus_files, corpus_spec, need

KUBERNETES = "1.31"  # validated against this version's schemas (kubernetes-validate bundles 1.25-1.37)
ENVS = ["local", "docker", "ci", "test", "staging", "production", "dr"]
FILES = corpus_files()
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

def validator() -> Any:
    try:
        import kubernetes_validate as found
    except ImportError:
        need("kubernetes-validate (pip install -e '.[dev]')", False)
    return found


def instance(env: str) -> dict[str, Any]:
    return {"pr": 7 if env == "test" else None, "run": "42" if env == "ci" else None}


def check_objects(found: Manifests, where: str) -> None:
    """Strict schema validation, plus the name rules the schemas do not carry."""
    kv = validator()
    for obj in found.objects:
        name = obj["metadata"]["name"]
        try:
            kv.validate(obj, KUBERNETES, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{where}: {obj['kind']}/{name}: {exc.message} at {list(exc.path)}")
        rule = DNS_1035 if obj["kind"] in ("Service", "Namespace") else DNS_1123
        assert rule.match(name) and len(name) <= (63 if rule is DNS_1035 else 253), f"{where}: name {name}"
        for labels in _label_sets(obj):
            for key, value in labels.items():
                assert LABEL_KEY.match(key) and LABEL_VALUE.match(value), f"{where}: label {key}={value}"


def _label_sets(obj: dict[str, Any]) -> list[dict[str, str]]:
    found = [obj["metadata"].get("labels") or {}]
    template = obj.get("spec", {}).get("template")
    if template:
        found.append(template["metadata"]["labels"])
        found.append(obj["spec"]["selector"]["matchLabels"])
    return found


def fixed(compose: Path, problems: list[Any], folder: Path) -> Path:
    """The Compose file with each refused field taken out (and an image for `build:`)."""
    data = yaml.safe_load(compose.read_text())
    drop: dict[tuple[str, str], set[int]] = {}
    for problem in problems:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", problem.field)
        assert parts[0] == "services", problem.field
        service = data["services"][parts[1]]
        if parts[2] == "build":
            service["image"] = f"registry.example.com/{parts[1]}:1"
        elif len(parts) > 3 and parts[3].startswith("["):
            drop.setdefault((parts[1], parts[2]), set()).add(int(parts[3][1:-1]))
        else:
            node = service
            for key in parts[2:-1]:
                node = node[key]
            node.pop(parts[-1], None)
    for (name, key), indexes in drop.items():
        items = data["services"][name][key]
        data["services"][name][key] = [v for i, v in enumerate(items) if i not in indexes]
    out = folder / compose.parent.name / compose.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def project_of(compose: Path, folder: Path) -> Project:
    spec_dir = folder / "spec"
    spec_dir.mkdir(parents=True, exist_ok=True)
    return actions.open_project(corpus_spec(compose, spec_dir), {})


def mapped_project(compose: Path, tmp_path: Path) -> tuple[Project, list[Any]]:
    """The corpus file's project, or that of its fixed copy when it is refused (and why)."""
    project = project_of(compose, tmp_path)
    try:
        for env in ENVS:
            manifests(project, actions.resolve_checked(project, env, **instance(env)))
        return project, []
    except SpecError as exc:
        problems = list(exc.problems)
    return project_of(fixed(compose, problems, tmp_path / "fixed"), tmp_path / "fixed"), problems


@pytest.mark.integration
@pytest.mark.parametrize("compose", FILES, ids=[f.parent.name for f in FILES])
def test_every_env_maps_to_valid_manifests_or_names_each_field_that_does_not(compose: Path,
                                                                              tmp_path: Path) -> None:
    need("the Compose corpus in ../shared/corpus/compose", bool(FILES))
    project = project_of(compose, tmp_path)
    namespaces: set[str] = set()
    for env in ENVS:
        target = actions.resolve_checked(project, env, **instance(env))
        try:
            found = manifests(project, target)
        except SpecError as exc:
            for problem in exc.problems:
                assert problem.file == compose.resolve() and problem.line, problem.render()
                assert problem.field.startswith("services."), problem.render()
                assert "does not map" in problem.message or "no image" in problem.message, problem.render()
            # Each refusal named what to take out: without those fields the file maps.
            again = project_of(fixed(compose, list(exc.problems), tmp_path / f"fixed-{env}"), tmp_path / f"f-{env}")
            found = manifests(again, actions.resolve_checked(again, env, **instance(env)))
        check_objects(found, f"{compose.parent.name} {env}")
        namespaces.add(found.namespace)
        assert not any(o["kind"] == "Secret" for o in found.objects)  # made at apply time only
    for pr in (8, 9):
        namespaces.add(identity(actions.resolve_checked(project, "test", pr=pr))[0])
    assert len(namespaces) == len(ENVS) + 2  # one per instance


@pytest.mark.integration
@pytest.mark.parametrize("compose", FILES, ids=[f.parent.name for f in FILES])
def test_the_helm_chart_renders_each_env_into_its_manifests(compose: Path, tmp_path: Path) -> None:
    need("the Compose corpus in ../shared/corpus/compose", bool(FILES))
    try:
        import helm_python as helm
    except ImportError:
        need("helm-python-sdk (pip install -e '.[dev]')", False)
    project, _ = mapped_project(compose, tmp_path)
    chart = tmp_path / "chart"
    write_chart(chart, chart_files(project))
    report = helm.lint(chart, yaml.safe_load((chart / "values-staging.yaml").read_text()), strict=True)
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report
    with helm.Chart.load(chart) as loaded:
        for env in ENVS:
            given = instance(env)
            target = actions.resolve_checked(project, env, **given)
            expected = manifests(project, target)
            values = yaml.safe_load((chart / f"values-{env}.yaml").read_text())
            values.update({k: v for k, v in given.items() if v is not None})
            rendered = loaded.render(values=values, name=expected.namespace, namespace=expected.namespace)
            got = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
            assert _keyed(got) == _keyed(_as_installed(expected)), f"{compose.parent.name} {env}"
            check_objects(Manifests(expected.namespace, tuple(got)), f"{compose.parent.name} chart {env}")
        with pytest.raises(Exception, match="install a PR with --set pr=N"):
            loaded.render(values=yaml.safe_load((chart / "values-test.yaml").read_text()), name="x", namespace="x")


def _as_installed(found: Manifests) -> list[dict[str, Any]]:
    """What the chart holds of an instance: no Namespace (`helm -n`), claims kept on uninstall."""
    out = []
    for obj in found.objects:
        if obj["kind"] == "Namespace":
            continue
        obj = copy.deepcopy(obj)
        if obj["kind"] == "PersistentVolumeClaim":
            obj["metadata"]["annotations"] = dict(KEEP)
        out.append(obj)
    return out


def _keyed(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}
