"""A FAKE kubectl for the tests of the kubernetes runtime: no Kubernetes API server can run
on these machines (RECIPES.md). It records every call (arguments and stdin) and answers
the commands envplane sends the way kubectl does, keeping the objects it was given in a
folder, so that a later `get` or `delete` sees what an `apply` made.

It is strict where the real thing is: objects in a namespace that does not exist are
refused, YAML is read by YAML 1.1's rules (as kubectl reads it), every call must name its
context, an apply must be server-side with a field manager. It is not a cluster: nothing
runs, every rollout succeeds (unless FAKE_KUBECTL_ROLLOUT_FAIL names the workload), and
pods are made up from the workloads' templates.

Environment: FAKE_KUBECTL_STATE (the folder), FAKE_KUBECTL_CONTEXT (the only context that
exists), FAKE_KUBECTL_DOWN=1 (the API server does not answer).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

STATE = Path(os.environ["FAKE_KUBECTL_STATE"])
RESOURCES = {  # kubectl's resource names -> kind, and how `get -o name` prints the kind
    "deployments.apps": ("Deployment", "deployment.apps"),
    "statefulsets.apps": ("StatefulSet", "statefulset.apps"),
    "services": ("Service", "service"),
    "ingresses.networking.k8s.io": ("Ingress", "ingress.networking.k8s.io"),
    "networkpolicies.networking.k8s.io": ("NetworkPolicy", "networkpolicy.networking.k8s.io"),
    "secrets": ("Secret", "secret"),
    "persistentvolumeclaims": ("PersistentVolumeClaim", "persistentvolumeclaim"),
}
BY_PRINTED = {printed: kind for kind, printed in RESOURCES.values()}


def main(argv: list[str]) -> int:
    stdin = sys.stdin.read() if "--filename=-" in argv else ""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    flags = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith("--") and "=" in a}
    words = [a for a in argv if not a.startswith("--")]
    if "--context" not in flags:
        return fail("error: the fake kubectl wants every call to name its --context")
    wanted = os.environ.get("FAKE_KUBECTL_CONTEXT")
    if wanted and flags["--context"] != wanted:
        return fail(f'error: context "{flags["--context"]}" does not exist')
    if os.environ.get("FAKE_KUBECTL_DOWN"):
        return fail("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host?")
    verb, rest = words[0], words[1:]
    if verb == "get" and flags.get("--raw") == "/readyz":
        print("ok")
        return 0
    if verb == "apply":
        return apply(flags, stdin)
    if verb == "get" and rest[:1] == ["namespace"]:
        found = load("", "Namespace", rest[1])
        print(json.dumps(found) if found else "")
        return 0
    if verb == "get" and rest[:1] == ["pods"]:
        print(json.dumps({"items": pods(flags["--selector"])}))
        return 0
    if verb == "get":
        for _, printed, obj in matching(rest[0], flags["--namespace"], flags.get("--selector", "")):
            print(f"{printed}/{obj['metadata']['name']}")
        return 0
    if verb == "delete" and rest[:1] == ["namespace"]:
        for path in [STATE / "objects" / rest[1], STATE / "objects" / "_" / "Namespace" / f"{rest[1]}.json"]:
            remove(path)
        return 0
    if verb == "delete" and "--selector" in flags:
        for kind, _, obj in matching(rest[0], flags["--namespace"], flags["--selector"]):
            remove(STATE / "objects" / flags["--namespace"] / kind / f"{obj['metadata']['name']}.json")
        return 0
    if verb == "delete":
        for name in rest:
            printed, _, obj_name = name.partition("/")
            remove(STATE / "objects" / flags["--namespace"] / BY_PRINTED[printed] / f"{obj_name}.json")
            print(f'{name} deleted')
        return 0
    if verb == "rollout" and rest[:1] == ["status"]:
        kind, _, name = rest[1].partition("/")
        kind = {"deployment": "Deployment", "statefulset": "StatefulSet"}[kind]
        if load(flags["--namespace"], kind, name) is None:
            return fail(f'Error from server (NotFound): {kind.lower()}s.apps "{name}" not found')
        if os.environ.get("FAKE_KUBECTL_ROLLOUT_FAIL") == name:
            return fail("error: timed out waiting for the condition")
        print(f'{kind.lower()} "{name}" successfully rolled out')
        return 0
    if verb == "logs":
        print(f"[pod/{flags.get('--selector')}] a line of the fake kubectl")
        return 0
    return fail(f"the fake kubectl does not know {' '.join(argv)}")


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def apply(flags: dict[str, str], stdin: str) -> int:
    if flags.get("--field-manager") != "envplane" or "--server-side" not in sys.argv:
        return fail("error: the fake kubectl takes server-side applies with envplane's field manager only")
    source = flags["--filename"]
    if source == "-":
        texts = [stdin]
    elif Path(source).is_dir():
        texts = [p.read_text() for p in sorted(Path(source).iterdir()) if p.suffix in (".yaml", ".yml", ".json")]
    else:
        texts = [Path(source).read_text()]
    for text in texts:
        for obj in yaml.safe_load_all(text):  # YAML 1.1, as kubectl reads it
            if not obj:
                continue
            ns = obj["metadata"].get("namespace", "")
            if ns and load("", "Namespace", ns) is None:
                return fail(f'Error from server (NotFound): namespaces "{ns}" not found')
            path = STATE / "objects" / (ns or "_") / obj["kind"] / f"{obj['metadata']['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj))
            print(f"{obj['kind'].lower()}/{obj['metadata']['name']} serverside-applied")
    return 0


def load(ns: str, kind: str, name: str) -> Any:
    path = STATE / "objects" / (ns or "_") / kind / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    pairs = [p.split("=", 1) for p in selector.split(",") if p]
    return all(labels.get(k) == v for k, v in pairs)


def matching(resources: str, ns: str, selector: str) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for resource in resources.split(","):
        kind, printed = RESOURCES[resource]
        folder = STATE / "objects" / ns / kind
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            obj = json.loads(path.read_text())
            if selected(obj, selector):
                found.append((kind, printed, obj))
    return found


def pods(selector: str) -> list[dict[str, Any]]:
    items = []
    for path in sorted((STATE / "objects").glob("*/*/*.json")):
        obj = json.loads(path.read_text())
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template = obj["spec"]["template"]
        if not selected({"metadata": template["metadata"]}, selector):
            continue
        for index in range(obj["spec"].get("replicas", 1)):
            items.append({
                "metadata": {"name": f"{obj['metadata']['name']}-{index}", "namespace": obj["metadata"]["namespace"],
                             "labels": template["metadata"]["labels"]},
                "spec": {"containers": template["spec"]["containers"]},
                "status": {"phase": "Running", "containerStatuses": [
                    {"name": c["name"], "ready": True, "restartCount": 0} for c in template["spec"]["containers"]]},
            })
    return items


def remove(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
