"""`runtime: kubernetes` whose cluster is named in `hosts:` (issue 12), through the CLI,
against the FAKE kubectl of tests/fake_kubectl.py (no Kubernetes API server can run here):
every call goes to that context and kubeconfig, and `down --purge` deletes the namespace
there.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.support import FAKE_KUBECTL_CONTEXT, cli, fake_kubectl, kubectl_calls

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080"]
    ports: ["8080:8080"]
"""


def test_the_cluster_of_an_env_is_the_context_its_hosts_entry_names(tmp_path: Path) -> None:
    name = f"k{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / "kube").mkdir()
    (folder / "kube" / "config").write_text("# read by the real kubectl; the fake takes its name only\n")
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n"
        f"hosts:\n  staging:\n    kubernetes: {{context: {FAKE_KUBECTL_CONTEXT}, kubeconfig: kube/config}}\n"
        "environments:\n  staging: {runtime: kubernetes}\n")
    env = {**fake_kubectl(tmp_path / "kubectl"), "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": "",
           "DATA_PATH": "", "ENVPLANE_HOME": str(tmp_path / "home")}

    refused = cli("verify", "--host", "staging", cwd=folder, env=env)
    assert refused.returncode == 2 and "hosts.staging is a Kubernetes cluster" in refused.stderr, refused.stderr
    planned = json.loads(cli("plan", "staging", "--json", cwd=folder, env=env).stdout)
    assert planned["target"]["context"] == FAKE_KUBECTL_CONTEXT
    done = cli("up", "staging", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    down = cli("down", "staging", "--purge", "--no-backup", "--yes", cwd=folder, env=env)
    assert down.returncode == 0, down.stderr
    calls = [c["argv"] for c in kubectl_calls(env)]
    kubeconfig = f"--kubeconfig={(folder / 'kube' / 'config').resolve()}"
    assert calls and all(f"--context={FAKE_KUBECTL_CONTEXT}" in c and kubeconfig in c for c in calls), calls
    assert any(c[2:5] == ["delete", "namespace", f"{name}-staging"] for c in calls), calls
