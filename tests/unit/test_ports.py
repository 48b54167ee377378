"""Host-port blocks: offsets, PR blocks, overrides, and the errors for what cannot fit."""

from __future__ import annotations

from dataclasses import replace

from envplane.ports import PortRequest, assign
from envplane.spec.ladder import LADDER


def req(service: str, target: int, published: int | None, index: int = 0) -> PortRequest:
    return PortRequest(service, index, target, published, "tcp", "")


def published(env: str, requests: list[PortRequest], pr: int | None = None) -> list[int | None]:
    plans, errors = assign(LADDER[env], requests, pr)
    assert not errors
    return [p.published for p in plans]


def test_production_keeps_the_compose_ports() -> None:
    assert published("production", [req("app", 3000, 3001), req("db", 5432, 5432)]) == [3001, 5432]


def test_staging_gets_its_own_block() -> None:
    assert published("staging", [req("app", 3000, 3001), req("db", 5432, 5432)]) == [13001, 15432]


def test_pr_instances_get_disjoint_blocks() -> None:
    ports = [req("app", 3000, 3001), req("db", 5432, 5432)]
    assert published("test", ports, pr=1) == [30000, 30001]
    assert published("test", ports, pr=2) == [30010, 30011]
    assert published("test", ports, pr=123) == [31220, 31221]


def test_ci_lets_the_engine_pick() -> None:
    assert published("ci", [req("app", 3000, 3001)]) == [None]


def test_unpublished_ports_stay_unpublished() -> None:
    assert published("staging", [req("app", 3000, None)]) == [None]


def test_override_wins() -> None:
    env = replace(LADDER["staging"], port_offset=1, ports={"app": {3000: 3003}})
    plans, _ = assign(env, [req("app", 3000, 3001), req("db", 5432, 5432)], None)
    assert [p.published for p in plans] == [3003, 5433]  # seed 003's table


def test_offset_out_of_range_is_an_error_naming_the_fix() -> None:
    plans, errors = assign(LADDER["staging"], [req("mc", 60000, 60000)], None)
    assert plans == []
    [error] = errors
    assert error.message == "host port 60000 +10000 (env staging) = 70000 is out of range 1-65535"
    assert "environments.staging.ports.mc.60000" in error.hint


def test_staging_moves_past_the_compose_ports() -> None:
    """RabbitMQ publishes 5672 and 15672: +10000 would put staging on production's 15672."""
    ports = [req("mq", 5672, 5672, 0), req("mq", 15672, 15672, 1)]
    assert published("staging", ports) == [15673, 25673]


def test_an_offset_the_user_writes_is_kept_even_if_it_collides() -> None:
    env = replace(LADDER["staging"], port_offset=10000, port_offset_auto=False)
    plans, _ = assign(env, [req("mq", 5672, 5672, 0), req("mq", 15672, 15672, 1)], None)
    assert [p.published for p in plans] == [15672, 25672]  # the isolation check reports it


def test_dr_is_a_standby_host_with_production_ports() -> None:
    assert LADDER["dr"].host != LADDER["production"].host
    assert published("dr", [req("app", 3000, 3001)]) == [3001]


def test_pr_beyond_the_block_is_an_error() -> None:
    _, errors = assign(LADDER["test"], [req("app", 80, 80)], 5000)
    assert errors and "PR 5000 has no room" in errors[0].message


def test_more_ports_than_the_stride_is_an_error() -> None:
    env = replace(LADDER["test"], port_stride=2)
    _, errors = assign(env, [req("a", 1, 1, 0), req("a", 2, 2, 1), req("a", 3, 3, 2)], 1)
    assert len(errors) == 1 and "port_stride=2" in errors[0].message


def test_two_apps_put_their_pr_blocks_apart() -> None:
    ports = [req("web", 80, 80)]
    shop, _ = assign(LADDER["test"], ports, 1, "shop")
    blog, _ = assign(LADDER["test"], ports, 1, "blog")
    assert shop[0].published != blog[0].published
    assert {shop[0].published, blog[0].published} <= set(range(30000, 35000, 100))


def test_a_port_base_the_user_writes_is_kept() -> None:
    env = replace(LADDER["test"], port_base=41000, port_base_auto=False)
    assert [p.published for p in assign(env, [req("web", 80, 80)], 3, "shop")[0]] == [41020]


def test_docker_and_staging_get_different_ports_by_default() -> None:
    """#10.3: the tour runs docker and staging on one machine; both took 18000 (+10000)."""
    ports = [req("backend", 8000, 8000, 0), req("frontend", 8080, 3000, 1)]
    assert published("docker", ports) == [28000, 23000]
    assert published("staging", ports) == [18000, 13000]


def test_docker_moves_past_the_platform_s_ports() -> None:
    """+20000 would put a Compose file's PostgreSQL (5432) on the platform's (25432)."""
    assert published("docker", [req("db", 5432, 5432)]) == [25433]
    assert published("staging", [req("db", 5432, 5432)]) == [15432]
