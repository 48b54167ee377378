"""The small rules of the Kubernetes conversion: quantities, names, YAML, kubectl lines,
the spec's kubernetes settings, and README's table of what maps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from envplane.commands import kubectl
from envplane.errors import SpecError
from envplane.kubernetes import matrix, quantities
from envplane.kubernetes.names import LABEL_VALUE, dns_label, label_value, namespace, volume_claim
from envplane.kubernetes.yamlout import dump, dump_all
from envplane.names import Instance
from envplane.spec.load import load_project

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600),
                                                ("2.5s", 2.5), (15, 15), ("", None), ("10", None), ("1x", None)])
def test_durations(text: object, seconds: float | None) -> None:
    assert quantities.seconds(text) == seconds


@pytest.mark.parametrize(("text", "quantity"), [("1.5G", "1536Mi"), ("512m", "512Mi"), ("1gb", "1Gi"),
                                                 (2048, "2Ki"), ("100", "100"), ("64k", "64Ki"), ("-1", None),
                                                 ("lots", None)])
def test_memory(text: object, quantity: str | None) -> None:
    assert quantities.memory(text) == quantity


@pytest.mark.parametrize(("text", "quantity"), [("0.5", "500m"), (2, "2"), (1.25, "1250m"), ("0.0001", "1m"),
                                                 ("0", None), ("x", None), (True, None)])
def test_cpus(text: object, quantity: str | None) -> None:
    assert quantities.cpus(text) == quantity


def test_namespaces_differ_per_instance_and_are_dns_labels_however_long() -> None:
    names = {namespace("shop", Instance("staging")), namespace("shop", Instance("production")),
             namespace("shop", Instance("test", pr=1)), namespace("shop", Instance("test", pr=11)),
             namespace("shop", Instance("preview", pr=1)), namespace("shop", Instance("ci", run="42"))}
    assert names == {"shop-staging", "shop-production", "shop-test-pr-1", "shop-test-pr-11", "shop-preview-pr-1",
                     "shop-ci-42"}
    long_app = "a" * 40
    long = {namespace(long_app, Instance("production-singapore-east", pr=n)) for n in (123456, 123457)}
    assert len(long) == 2 and all(DNS_LABEL.match(n) for n in long)
    assert namespace(long_app, Instance("prod-")) != namespace(long_app, Instance("prod"))
    assert DNS_LABEL.match(namespace(long_app, Instance("prod-")))


def test_names_cleaned_keep_apart_what_differs() -> None:
    assert volume_claim("db_data") == "db-data" and volume_claim("data") == "data"
    assert dns_label("Db_Data") != dns_label("db-data") and DNS_LABEL.match(dns_label("Db_Data"))
    assert label_value("pr-7") == "pr-7"
    assert LABEL_VALUE.match(label_value("x-" * 40)) and LABEL_VALUE.match(label_value("-a-"))


def test_yaml_keeps_strings_that_yaml_1_1_or_go_would_read_as_something_else() -> None:
    tricky = ["yes", "no", "on", "off", "y", "N", "true", "True", "null", "~", "08", "1e3", "0x1f", "1:20",
              ".5", "-1", "+1", "None", "", "a: b", "# x", "$HOME", "{{ x }}", "line\nline"]
    text = dump({"env": [{"name": f"V{i}", "value": v} for i, v in enumerate(tricky)]})
    assert [e["value"] for e in yaml.safe_load(text)["env"]] == tricky  # PyYAML: YAML 1.1, as kubectl
    assert list(yaml.safe_load_all(dump_all([{"a": 1}, {"b": 2}]))) == [{"a": 1}, {"b": 2}]


def test_kubectl_lines_name_the_cluster_and_keep_each_value_one_argument() -> None:
    cluster = kubectl.Cluster("prod", "/etc/kube/config")
    assert kubectl.apply(cluster, "/x/manifests") == [
        "kubectl", "--kubeconfig=/etc/kube/config", "--context=prod", "apply", "--server-side",
        "--field-manager=envplane", "--filename=/x/manifests"]
    assert kubectl.rollout_status(kubectl.Cluster("k3s"), "shop-staging", "StatefulSet", "db", 120) == [
        "kubectl", "--context=k3s", "rollout", "status", "statefulset/db", "--namespace=shop-staging",
        "--timeout=120s"]
    assert kubectl.delete_namespace(kubectl.Cluster("k3s"), "shop-test-pr-7", 300)[3:] == [
        "namespace", "shop-test-pr-7", "--ignore-not-found", "--wait=true", "--timeout=300s"]
    assert kubectl.listed(kubectl.Cluster("k3s"), "shop-staging", "shop", "staging")[-2:] == [
        "--selector=envplane.app=shop,envplane.instance=staging", "--output=name"]
    assert "persistentvolumeclaims" not in kubectl.INSTANCE_KINDS  # data goes only with the namespace


def test_kubernetes_settings_are_checked_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: app:1}\n")
    (tmp_path / "envplane.yaml").write_text(
        "app: shop\ndomain: example.com\ncompose: compose.yaml\nenvironments:\n  staging:\n"
        "    runtime: kubernetes\n    kubernetes:\n      context: --token=x\n      volume_size: lots\n"
        "      ingress_class: Traefik\n")
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path / "envplane.yaml", {})
    found = {(p.field, p.line) for p in caught.value.problems}
    assert found == {("environments.staging.kubernetes.context", 8),
                     ("environments.staging.kubernetes.volume_size", 9),
                     ("environments.staging.kubernetes.ingress_class", 10)}


def test_readme_lists_every_key_that_is_refused_or_left_out() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme[readme.index("### What maps to Kubernetes"):]
    section = section[: section.index("\n## ")]
    for key in [*matrix.REFUSED, *matrix.IGNORED, *matrix.MAPPED]:
        assert f"`{key}`" in section, key


def test_the_cluster_is_the_envs_context_with_its_kubeconfig_from_the_spec_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envplane.kubernetes.plan import cluster

    monkeypatch.setenv("HOME", "/home/me")
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: app:1}\n")
    (tmp_path / "envplane.yaml").write_text(
        "app: shop\ndomain: example.com\ncompose: compose.yaml\nenvironments:\n"
        "  staging: {runtime: kubernetes, kubernetes: {context: k3s, kubeconfig: ~/.kube/k3s}}\n"
        "  production: {runtime: kubernetes, kubernetes: {context: prod, kubeconfig: kube/prod}}\n"
        "  dr: {runtime: kubernetes, kubernetes: {context: dr}}\n")
    project = load_project(tmp_path / "envplane.yaml", {})
    assert cluster(project.root, project.env("staging")) == kubectl.Cluster("k3s", "/home/me/.kube/k3s")
    assert cluster(project.root, project.env("production")) == kubectl.Cluster(
        "prod", str(tmp_path.resolve() / "kube" / "prod"))
    assert cluster(project.root, project.env("dr")) == kubectl.Cluster("dr", None)


@pytest.mark.parametrize(("server_test", "pr_test", "key"), [
    ("{runtime: kubernetes, kubernetes: {context: previews}}", "{runtime: kubernetes, kubernetes: {context: prod}}",
     "kubernetes"),
    ("{runtime: kubernetes, kubernetes: {context: previews}}",
     "{runtime: kubernetes, kubernetes: {context: previews, kubeconfig: /root/.kube/prod}}", "kubernetes"),
    ("{runtime: kubernetes, kubernetes: {context: previews}}", "{runtime: compose}", "runtime"),
])
def test_a_pr_s_spec_cannot_send_its_preview_to_another_cluster(tmp_path: Path, server_test: str, pr_test: str,
                                                                 key: str) -> None:
    from envplane import actions
    from envplane.checkouts import head_project
    from tests.unit.test_pr_heads import SPEC, app

    server = load_project(app(tmp_path / "server", spec=SPEC + f"  test: {server_test}\n"), {})
    head = head_project(server, app(tmp_path / "tree", spec=SPEC + f"  test: {pr_test}\n"))
    actions.resolve_checked(head, "test", 5)  # the PR's own spec alone sees nothing wrong...
    with pytest.raises(SpecError, match=f"environments.test.{key}: env test's {key} differs from the server's"):
        actions.resolve_checked(head, "test", 5, reference=server)  # ...the server's spec does
    assert actions.resolve_checked(server, "test", 5, reference=server).env.runtime == "kubernetes"
