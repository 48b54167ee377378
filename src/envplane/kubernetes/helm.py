"""A Helm chart of the app with values per env (seed 004: k3s, Helm values per env). Pure.

The templates are the manifests of `--format kubernetes` with what differs between envs
cut out: a field equal in every env stays literal; one that differs becomes a value,
`{{ tpl (index .Values "Deployment/backend" "spec.replicas" | toJson) $ }}`, and
values-{env}.yaml holds it for each env. An object only some envs have (the Ingress of an
env without a domain) is wrapped in `if`. So the templates hold nothing but value
substitutions, and rendering values-{env}.yaml gives exactly that env's manifests (the
tests compare them, rendered by Helm's own Go SDK).

Per-PR and per-run envs are rendered once for a stand-in PR (run), whose number is then
replaced by `{{ .Values.pr }}` (`.Values.run`): `helm install … -f values-test.yaml --set
pr=7`. Names carry no instance (objects live in the instance's namespace, `helm -n`);
PersistentVolumeClaims are kept by `helm uninstall` (resource-policy keep). Secrets are
not in the chart: the manifests name them, and `envplane up` (or
`render --include-secrets`) makes them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envplane.kubernetes import yamlout
from envplane.kubernetes.convert import Manifests

STAND_IN_PR = 918273645  # no real PR number is this one; it marks where the PR goes
STAND_IN_RUN = "run918273645"
_PR_EXPR = "{{ required `install a PR with --set pr=N` .Values.pr }}"
_RUN_EXPR = "{{ required `install a CI run with --set run=ID` .Values.run }}"
_NAMESPACE = "__envplane_release_namespace__"
_TOKEN = "__envplane_value_{}__"
_TOKEN_RE = re.compile(r"__envplane_value_(\d+)__")
KEEP = {"helm.sh/resource-policy": "keep"}


@dataclass(frozen=True)
class EnvManifests:
    env: str
    manifests: Manifests
    per_instance: str = ""  # "pr" or "run" when rendered for the stand-in


def chart(app: str, envs: list[EnvManifests], version: str = "0.1.0") -> dict[str, str]:
    """path in the chart -> file text."""
    names = [e.env for e in envs]
    by_env = {e.env: _keyed(e.manifests) for e in envs}
    keys = list(dict.fromkeys(k for objs in by_env.values() for k in objs))
    values: dict[str, dict[str, Any]] = {e: {} for e in names}
    enabled: dict[str, dict[str, bool]] = {e: {} for e in names}
    files: dict[str, str] = {
        "Chart.yaml": yamlout.dump(
            {
                "apiVersion": "v2",
                "name": app,
                "type": "application",
                "version": version,
                "description": f"{app}, one env instance per release (made by envplane)",
            }
        ),
        "values.yaml": _defaults(app, envs),
        "templates/_helpers.tpl": '{{- define "envplane.env" -}}\n'
        "{{- required `pass -f values-ENV.yaml: the chart renders one env` "
        ".Values.env -}}\n{{- end -}}\n",
    }
    for key in keys:
        having = [e for e in names if key in by_env[e]]
        cut = _Cut(key)
        template = cut.unify({e: by_env[e][key] for e in having}, ())
        for env in having:
            values[env][key] = cut.values[env]
        text = _template_text(template, cut)
        if len(having) < len(names):
            for env in names:
                enabled[env][key] = env in having
            condition = f"{{{{- if get (.Values.enabled | default dict) {json.dumps(key)} }}}}"
            text = f"{condition}\n{text}{{{{- end }}}}\n"
        kind, name = key.split("/", 1)
        files[f"templates/{kind.lower()}-{name}.yaml"] = '{{- $env := include "envplane.env" . }}\n' + text
    for item in envs:
        found: dict[str, Any] = {"env": item.env}
        if enabled[item.env]:
            found["enabled"] = enabled[item.env]
        found.update({k: v for k, v in values[item.env].items() if v})
        text = _stand_ins(_escape(yamlout.dump(found)))
        files[f"values-{item.env}.yaml"] = _values_header(app, item) + text
    return files


def _keyed(manifests: Manifests) -> dict[str, dict[str, Any]]:
    """The objects Helm installs, by Kind/name: not the Namespace (`helm -n NS
    --create-namespace`), the release's namespace in each, claims kept on uninstall."""
    out = {}
    for obj in manifests.objects:
        if obj["kind"] == "Namespace":
            continue
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = _NAMESPACE
        if obj["kind"] == "PersistentVolumeClaim":
            obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}), **KEEP}
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return out


class _Cut:
    """Anti-unification of one object across envs: equal parts stay, the rest become values."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.paths: list[str] = []  # token number -> value path
        self.values: dict[str, dict[str, Any]] = {}

    def unify(self, nodes: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
        first = next(iter(nodes.values()))
        if all(n == first for n in nodes.values()):
            return copy.deepcopy(first)
        if all(isinstance(n, dict) for n in nodes.values()) and len({tuple(n) for n in nodes.values()}) == 1:
            return {k: self.unify({e: n[k] for e, n in nodes.items()}, (*path, k)) for k in first}
        if all(isinstance(n, list) for n in nodes.values()) and len({len(n) for n in nodes.values()}) == 1:
            return [self.unify({e: n[i] for e, n in nodes.items()}, (*path, i)) for i in range(len(first))]
        name = _path_text(path)
        self.paths.append(name)
        for env, node in nodes.items():
            self.values.setdefault(env, {})[name] = node
        return _TOKEN.format(len(self.paths) - 1)


def _path_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _template_text(template: Any, cut: _Cut) -> str:
    text = _stand_ins(_escape(yamlout.dump(template)))
    text = text.replace(_NAMESPACE, "{{ .Release.Namespace }}")

    def value(match: re.Match[str]) -> str:
        path = cut.paths[int(match.group(1))]
        return f"{{{{ tpl (index .Values {json.dumps(cut.key)} {json.dumps(path)} | toJson) $ }}}}"

    return _TOKEN_RE.sub(value, text)


def _escape(text: str) -> str:
    """Helm reads `{{` as a template action: a literal one becomes {{`{{`}}."""
    return text.replace("{{", "{{`{{`}}")


def _stand_ins(text: str) -> str:
    return text.replace(STAND_IN_RUN, _RUN_EXPR).replace(str(STAND_IN_PR), _PR_EXPR)


def _defaults(app: str, envs: list[EnvManifests]) -> str:
    lines = [
        f"# {app}: one env instance per Helm release, in the instance's own namespace.",
        "# Install one with its env's values file:",
    ]
    for item in envs:
        tail = {"pr": " --set pr=N", "run": " --set run=ID"}.get(item.per_instance, "")
        ns = item.manifests.namespace.replace(str(STAND_IN_PR), "N").replace(STAND_IN_RUN, "ID")
        lines.append(f"#   helm install {ns} . -n {ns} --create-namespace -f values-{item.env}.yaml{tail}")
    lines += [
        "# The Secrets the manifests name (`{service}-env`, `{name}-secret`) are not in the chart:",
        "# `envplane render ENV --format kubernetes --include-secrets` writes them.",
        "env: null  # set by values-ENV.yaml",
        "pr: null   # the pull request of a per-PR env (test): --set pr=N",
        "run: null  # the run of a per-run env (ci): --set run=ID",
        "",
    ]
    return "\n".join(lines)


def _values_header(app: str, item: EnvManifests) -> str:
    what = {
        "pr": "; one release per pull request: --set pr=N",
        "run": "; one release per CI run: --set run=ID",
    }.get(item.per_instance, "")
    return f"# {app}, env {item.env}: what differs from the other envs{what}\n"
