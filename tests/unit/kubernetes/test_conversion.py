"""The conversion as data: small Compose files (and envplane.yaml lines) in cases.yaml,
fragments of the objects they become, or the fields refused with their lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from envplane.errors import SpecError
from envplane.kubernetes.convert import Manifests, convert
from envplane.spec.load import load_project
from envplane.target import resolve

CASES = yaml.safe_load(Path(__file__).with_name("cases.yaml").read_text())
_PART = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\["([^"]+)"\]')


def manifests(tmp_path: Path, case: dict[str, Any]) -> Manifests:
    (tmp_path / "compose.yaml").write_text(case["compose"])
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n"
                                            + case.get("spec", ""))
    project = load_project(tmp_path / "envplane.yaml", {})
    env = case.get("env", "staging")
    target = resolve(project, env, pr=7 if env == "test" else None, run="42" if env == "ci" else None)
    return convert(target, tmp_path)


def at(obj: Any, path: str) -> Any:
    for key, index, quoted in _PART.findall(path):
        obj = obj[int(index)] if index else obj[quoted or key]
    return obj


@pytest.mark.parametrize("case", CASES, ids=[c["name"][:60] for c in CASES])
def test_case(case: dict[str, Any], tmp_path: Path) -> None:
    if "refused" in case:
        with pytest.raises(SpecError) as caught:
            manifests(tmp_path, case)
        found = sorted((p.line or 0, p.field, p.message) for p in caught.value.problems)
        wanted = sorted((line, f, words) for f, line, words in case["refused"])
        assert [(line, f) for line, f, _ in found] == [(line, f) for line, f, _ in wanted]
        for (_, field, message), (_, _, words) in zip(found, wanted, strict=True):
            assert words in message, field
        assert all(p.file == tmp_path / "compose.yaml" for p in caught.value.problems)
        return
    result = manifests(tmp_path, case)
    objects = {f"{o['kind']}/{o['metadata']['name']}": o for o in result.objects}
    for key, fragments in case["expect"].items():
        assert key in objects, f"no {key} among {sorted(objects)}"
        for path, value in fragments.items():
            assert at(objects[key], path) == value, f"{key} {path}"
    for key in case.get("missing", []):
        assert key not in objects
    for key, names in case.get("env_absent", {}).items():
        env = at(objects[key], "spec.template.spec.containers[0].env")
        assert not {e["name"] for e in env} & set(names)
    secrets = {s.name: s for s in result.secrets}
    for name, expected in case.get("secrets", {}).items():
        source = secrets[name]
        assert source.kind == expected["kind"]
        for key in ("provided", "passthrough"):
            if key in expected:
                assert list(getattr(source, key)) == expected[key]
        if "environment" in expected:
            assert source.environment == expected["environment"]
        if "file_ends" in expected:
            assert source.file is not None and source.file.endswith(expected["file_ends"])


def test_every_object_carries_the_instance_labels_and_lives_in_its_namespace(tmp_path: Path) -> None:
    result = manifests(tmp_path, next(c for c in CASES if c["name"].startswith("Compose networks")))
    assert result.namespace == "shop-staging"
    for obj in result.objects:
        labels = obj["metadata"]["labels"]
        assert {k: labels[k] for k in ("envplane.app", "envplane.env", "envplane.instance")} == {
            "envplane.app": "shop", "envplane.env": "staging", "envplane.instance": "staging"}
        assert obj["metadata"].get("namespace", obj["metadata"]["name"]) == "shop-staging"
