"""hosts/: engine URLs, the spec's hosts:, isolation per engine, ports read on a host,
which layers a host lacks. Pure: no engine, no SSH."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envplane.errors import SpecError
from envplane.hosts.engine import parse
from envplane.hosts.images import chain_ids, present_chains, thin_plan
from envplane.hosts.remote import parse_listening
from envplane.isolation import violations
from envplane.spec.load import load_project
from envplane.target import resolve

COMPOSE = "services:\n  web:\n    image: web:1\n    ports: ['8080:80']\n"


def project(tmp_path: Path, hosts: str, extra: str = ""):  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(f"app: shop\ndomain: example.com\ncompose: compose.yaml\n{hosts}{extra}")
    return load_project(tmp_path / "envplane.yaml", {})


@pytest.mark.parametrize(("url", "key"), [
    ("ssh://deploy@203.0.113.10", "ssh://203.0.113.10:22"),
    ("ssh://root@10.0.0.1:2222", "ssh://10.0.0.1:2222"),
    ("ssh://[2001:db8::1]", "ssh://[2001:db8::1]:22"),
    ("unix:///var/run/docker.sock", "local"),
    ("unix:///run/user/1000/docker.sock", "unix:///run/user/1000/docker.sock"),
    ("tcp://vps.example.com:2376", "tcp://vps.example.com:2376"),
])
def test_engine_urls_name_one_engine_whoever_logs_in(url: str, key: str) -> None:
    from envplane.hosts.engine import Engine

    assert Engine(parse(url)).key == key


def test_engines_are_set_members_whether_or_not_they_name_servers() -> None:
    """status collects the engines of every env in a set; an engine with servers: crashed it."""
    from envplane.hosts.engine import Engine

    named = Engine(parse("ssh://deploy@203.0.113.10"), servers={"postgres": "DB_URL"})
    assert len({Engine(), Engine(), named, Engine(parse("ssh://deploy@203.0.113.10"), servers={"postgres": "DB_URL"})}) == 2


@pytest.mark.parametrize(("url", "says"), [
    ("ssh://-oProxyCommand=x", "is not a host name"),
    ("ssh://root@host/path", "no path"),
    ("ssh://root:secret@host", "no path, query or password"),
    ("ssh://Root Bad@host", "no spaces"),
    ("http://host:80", "must be ssh://"),
    ("tcp://host", "needs a port"),
    ("unix://relative.sock", "absolute socket path"),
    ("ssh://host:99999", "port must be a number"),
])
def test_bad_engine_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse(url)


def test_hosts_entries_are_checked_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        project(tmp_path, "hosts:\n  server: ssh://deploy@-x\n  dr:\n    engine: tcp://b.example.com:2376\n")
    text = str(caught.value)
    assert "hosts.server.engine" in text and "envplane.yaml:5" in text
    assert "tcp:// engine needs `tls:" in text
    with pytest.raises(SpecError, match="no env or host group 'serverr'"):
        project(tmp_path, "hosts:\n  serverr: ssh://a@b.example.com\n")


def test_envs_take_the_engine_of_their_env_else_their_host_group(tmp_path: Path) -> None:
    loaded = project(tmp_path, "hosts:\n  server: ssh://deploy@a.example.com\n  production: ssh://deploy@b.example.com\n")
    assert resolve(loaded, "staging").engine.key == "ssh://a.example.com:22"
    assert resolve(loaded, "production").engine.key == "ssh://b.example.com:22"
    assert resolve(loaded, "docker").engine.local


def test_host_ports_clash_per_engine_not_per_host_group(tmp_path: Path) -> None:
    # dr keeps production's ports: apart on two hosts, a clash when both groups name one engine
    apart = project(tmp_path, "hosts:\n  server: ssh://a@a.example.com\n  dr: ssh://a@b.example.com\n")
    assert not [v for v in violations([resolve(apart, "production"), resolve(apart, "dr")]) if v.kind == "host port"]
    same = project(tmp_path, "hosts:\n  server: ssh://a@a.example.com\n  dr: ssh://root@a.example.com\n")
    clashes = [v for v in violations([resolve(same, "production"), resolve(same, "dr")]) if v.kind == "host port"]
    assert clashes and clashes[0].value == "8080/tcp"


PROC = """20000	64000
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   0: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0 0
"""


def test_listening_ports_are_read_from_the_hosts_proc_files() -> None:
    found = parse_listening(PROC)
    assert found.tcp == {22, 80}  # 8080 is a connected socket, not a listener
    assert found.udp == {53}
    assert found.taken(53, "udp") and not found.taken(53, "tcp")
    assert found.ephemeral == (20000, 64000)  # the host's net.ipv4.ip_local_port_range


def test_only_layers_the_target_lacks_are_sent() -> None:
    base, app1, app2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
    chains = chain_ids([base, app1])
    assert chains[0] == base
    assert chains[1] == "sha256:" + hashlib.sha256(f"{base} {app1}".encode()).hexdigest()
    manifest = [{"Config": "cfg.json", "Layers": ["l1/layer.tar", "l2/layer.tar"]}]
    present = present_chains([[base, app2]])  # the host has the base under another image
    assert thin_plan(manifest, {"cfg.json": [base, app1]}, present) == ({"l1/layer.tar"}, 2)
    # the same diff on another base is another chain: it is sent
    assert thin_plan(manifest, {"cfg.json": [app2, app1]}, present) == (set(), 2)


def test_urls_of_a_remote_instance_name_its_domain_or_its_host_never_this_machine(tmp_path: Path) -> None:
    loaded = project(tmp_path, "hosts:\n  server: ssh://deploy@203.0.113.10\n",
                     "services:\n  web:\n    public: {port: 80}\n")
    staging = resolve(loaded, "staging")
    # the host's proxy serves on all its addresses: the domain reaches it, `.localhost` would be here
    assert staging.urls("0.0.0.0:80") == {"web": "http://shop-staging.example.com/"}
    port = staging.service("web").ports[0].published
    assert staging.urls() == {"web": f"http://203.0.113.10:{port}/"}
    here = resolve(project(tmp_path, "", "services:\n  web:\n    public: {port: 80}\n"), "staging")
    assert here.urls("127.0.0.1:8088") == {"web": "http://shop-staging.localhost:8088/"}


def test_a_kubernetes_context_named_in_hosts_is_the_cluster_of_its_envs(tmp_path: Path) -> None:
    loaded = project(tmp_path, "hosts:\n  server:\n    kubernetes: {context: k3s-prod, kubeconfig: kube/config}\n"
                     "  staging: {kubernetes: {context: k3s-staging}}\n",
                     "environments:\n  production: {runtime: kubernetes, kubernetes: {storage_class: local-path}}\n"
                     "  staging: {runtime: kubernetes}\n  test: {runtime: kubernetes}\n")
    production = loaded.envs["production"].kubernetes
    assert (production.context, production.kubeconfig, production.storage_class) == ("k3s-prod", "kube/config",
                                                                                      "local-path")
    assert loaded.envs["staging"].kubernetes.context == "k3s-staging"  # the env's own entry over its group's
    assert not resolve(loaded, "production").engine.remote  # no Docker engine to reach


@pytest.mark.parametrize(("hosts", "envs", "says", "line"), [
    # the same cluster named twice, two ways: refused rather than one silently winning
    ("  server: {kubernetes: {context: k3s-prod}}\n",
     "  production: {runtime: kubernetes, kubernetes: {context: k3s-other}}\n",
     "hosts.server.kubernetes.context", 5),
    ("  server: {kubernetes: {context: k3s-prod, kubeconfig: a}}\n",
     "  production: {runtime: kubernetes, kubernetes: {kubeconfig: b}}\n",
     "hosts.server.kubernetes.kubeconfig", 5),
    # a cluster for envs that run on Docker: they would land on the local engine
    ("  server: {kubernetes: {context: k3s-prod}}\n", "  production: {runtime: kubernetes}\n",
     "test, staging run on Docker", 5),
    ("  server: {engine: 'ssh://a@b.example.com', kubernetes: {context: k3s}}\n", "", "either `engine:`", 5),
    ("  server: {identity: id_key}\n", "", "either `engine:`", 5),
    ("  server: {kubernetes: {context: k3s, proxy: 0.0.0.0:80}}\n", "  production: {runtime: kubernetes}\n",
     "hosts.server.kubernetes.proxy", 5),
    ("  server: {kubernetes: {context: -oops}}\n", "", "hosts.server.kubernetes.context", 5),
])
def test_a_kubernetes_host_entry_that_cannot_be_meant_is_refused_with_its_line(
        tmp_path: Path, hosts: str, envs: str, says: str, line: int) -> None:
    with pytest.raises(SpecError) as caught:
        project(tmp_path, "hosts:\n" + hosts, "environments:\n" + envs if envs else "")
    text = str(caught.value)
    assert says in text and f"envplane.yaml:{line}" in text, text


@pytest.mark.parametrize("pr_hosts", [
    "hosts:\n  server: ssh://deploy@prod.example.com\n",  # production's host
    "hosts:\n  server:\n    engine: ssh://deploy@previews.example.com\n    identity: /root/.ssh/production_key\n",
    "hosts:\n  server:\n    engine: ssh://deploy@previews.example.com\n"
    "    servers: {postgres: PRODUCTION_POSTGRES_URL}\n",
    "hosts:\n  test: ssh://deploy@attacker.example.net\n  server: ssh://deploy@previews.example.com\n",
    "",  # back onto the server's own engine
])
def test_a_pr_s_spec_cannot_send_its_preview_to_another_host(tmp_path: Path, pr_hosts: str) -> None:
    from envplane import actions
    from envplane.checkouts import head_project
    from tests.unit.test_pr_heads import SPEC, app

    server_hosts = "hosts:\n  server: ssh://deploy@previews.example.com\n"
    server = load_project(app(tmp_path / "server", spec=SPEC + server_hosts), {})
    head = head_project(server, app(tmp_path / "tree", spec=SPEC + pr_hosts))
    actions.resolve_checked(head, "test", 5)  # the PR's own spec alone sees nothing wrong...
    with pytest.raises(SpecError, match="env test's host differs from the server's spec"):
        actions.resolve_checked(head, "test", 5, reference=server)  # ...the server's spec does
    same = head_project(server, app(tmp_path / "same", spec=SPEC + server_hosts))
    assert actions.resolve_checked(same, "test", 5, reference=server).engine.key == "ssh://previews.example.com:22"


@pytest.mark.parametrize(("pr_extra", "field"), [
    # production's admin servers (or an S3 key made for one env) for the PR's preview
    ("    servers: {postgres: PROD_POSTGRES_URL}\n", "environments.test.servers"),
    # the registry's credentials pushed to the PR author's registry
    ("registry: registry.attacker.example:5000\n", "registry"),
    # another secret store: the preview's generated passwords written where the PR says
    ("secret_store: vault\n", "secret_store"),
    # the preview's data, secrets included, backed up to the PR author's bucket and key
    ("    backup: {store: s3://attacker-bucket/x, recipients: [age1" + "q" * 58 + "]}\n",
     "environments.test.backup"),
    ("backup: {store: file:///tmp/attacker}\n", "backup"),
])
def test_a_pr_s_spec_cannot_point_its_preview_at_other_servers_a_registry_or_a_store(
        tmp_path: Path, pr_extra: str, field: str) -> None:
    from envplane import actions
    from envplane.checkouts import head_project
    from tests.unit.test_pr_heads import SPEC, app

    test_env = "  test:\n    port_base: 30000\n"
    server = load_project(app(tmp_path / "server", spec=SPEC + test_env), {})
    # an indented line lands in environments.test, a plain one at the top
    head = head_project(server, app(tmp_path / "tree", spec=SPEC + test_env + pr_extra))
    with pytest.raises(SpecError) as caught:
        actions.resolve_checked(head, "test", 5, reference=server)
    assert "differs from the server's spec" in str(caught.value) and field.split(".")[-1] in str(caught.value)
    same = head_project(server, app(tmp_path / "same", spec=SPEC + test_env))
    actions.resolve_checked(same, "test", 5, reference=server)  # the server's own values pass
