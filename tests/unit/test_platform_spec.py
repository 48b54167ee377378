"""#10.1, #9.17: every env's platform can run beside every other on one machine, its admin
ports listen on one private address (never 0.0.0.0), and a refusal comes before any change."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import actions
from envplane.errors import UsageError
from envplane.platform import layer

COMPOSE_ENVS = ("production", "staging", "test", "docker", "dr", "ci")


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_PLATFORM_IP": "172.17.0.1"}


def test_every_env_platform_passes_the_isolation_check_against_all_others(environ: dict[str, str]) -> None:
    project = layer.open_platform(environ)
    targets = [actions.resolve_checked(project, env) for env in COMPOSE_ENVS]  # raises on a clash
    ports = [p.published for t in targets for s in t.services for p in s.ports]
    assert len(ports) == len(set(ports)) == 3 * len(COMPOSE_ENVS)  # distinct even across host groups
    assert len({t.domain for t in targets}) == len({t.data_path for t in targets}) == len(COMPOSE_ENVS)
    assert {t.env.strategy for t in targets} == {"recreate"}  # stateful servers are never coloured


def test_admin_ports_listen_on_the_private_address_only(environ: dict[str, str]) -> None:
    project = layer.open_platform(environ)
    for env in COMPOSE_ENVS:
        target = actions.resolve_checked(project, env)
        assert {p.host_ip for s in target.services for p in s.ports} == {"172.17.0.1"}
    assert [p.published for p in actions.resolve_checked(project, "production").service("postgres").ports] == [25432]


@pytest.mark.parametrize(("config", "gateway"), [
    ('[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]', "172.17.0.1"),
    ('[{"Subnet":"172.18.0.0/16"}]', "172.18.0.1"),  # Docker 20.10 leaves Gateway out
    ('[{"Subnet":"fd00::/64"},{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.254"}]', "10.9.0.254"),
    ('[{"Subnet":"fd00::/64"}]', None),
    ("null", None),
    ("not json", None),
])
def test_the_bridge_gateway_is_read_from_docker_s_ipam_config(config: str, gateway: str | None) -> None:
    assert layer.bridge_gateway(config) == gateway


@pytest.mark.parametrize("value", ["0.0.0.0", "::", "example.com"])
def test_a_public_or_odd_platform_address_is_refused(value: str) -> None:
    with pytest.raises(UsageError):
        layer.check_ip(value)


def test_the_local_env_has_no_platform_and_says_so_before_anything_changes(environ: dict[str, str],
                                                                           tmp_path: Path) -> None:
    project = layer.open_platform(environ)
    with pytest.raises(UsageError, match="env local runs services as local processes: it has no platform"):
        layer.check_before_up(project, "local")
    assert not (tmp_path / "home" / "platform" / ".envplane").exists()  # no secret, no state


def test_the_platform_store_is_the_projects_own_never_the_process_environment(
        environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside `envplane serve` several apps' jobs share one process: the platform's file store
    travels with its project, so no other app's deploy can read it from os.environ."""
    from envplane.apply import Applier

    monkeypatch.setenv("ENVPLANE_SECRETS", "vault")  # what the server's own apps use
    project = layer.open_platform(environ)
    assert project.environ["ENVPLANE_SECRETS"] == "file"
    assert Applier(project).environ["ENVPLANE_SECRETS"] == "file"
    assert Applier(project, environ={"ENVPLANE_SECRETS": "sops"}).environ["ENVPLANE_SECRETS"] == "sops"
    monkeypatch.setenv("ENVPLANE_SECRETS_PROBE", "seen")  # the process's other variables still count
    assert Applier(project).environ["ENVPLANE_SECRETS_PROBE"] == "seen"
