"""`routing: caddy|traefik|none` (top-level or per env): which route step `up` plans, which
labels the rendered file carries, which URLs it prints, and blue-green's need for Caddy.
Pure: the spec, the plan and the rendered file as data (tests/integration/test_routing.py
runs each mode against a real engine, Traefik and Caddy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.compose.render import render
from envplane.errors import SpecError
from envplane.plan import plan_up
from envplane.spec.load import load_project
from envplane.target import Target, resolve

COMPOSE = "services:\n  web:\n    image: w\n    ports: ['3000:8080']\n  worker:\n    image: w\n"
SPEC = ("app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web: {public: {port: 8080, path: /app}}\n")


def shop(tmp_path: Path, env: str, extra: str = "") -> Target:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(SPEC + extra)
    return resolve(load_project(tmp_path / "envplane.yaml", {}), env)


def kinds(target: Target, root: Path) -> list[str]:
    return [step.kind for step in plan_up(target, root).steps]


def labels(target: Target, root: Path) -> dict[str, str]:
    return dict(render(target, root, {})["services"]["web"]["labels"])


def test_caddy_is_the_default_and_routes_in_a_step(tmp_path: Path) -> None:
    staging = shop(tmp_path, "staging")
    assert staging.env.routing == "caddy"
    assert "route" in kinds(staging, tmp_path)
    assert shop(tmp_path, "production").env.strategy == "blue-green"


def test_traefik_has_no_route_step_and_routes_by_the_rendered_labels(tmp_path: Path) -> None:
    staging = shop(tmp_path, "staging", "routing: traefik\n")
    assert staging.env.routing == "traefik"
    assert "route" not in kinds(staging, tmp_path)
    router = f"{staging.project}-web"
    assert labels(staging, tmp_path).items() >= {
        "traefik.enable": "true",
        f"traefik.http.routers.{router}.rule": ("(Host(`shop-staging.example.com`) || Host(`shop-staging.localhost`))"
                                                 " && PathPrefix(`/app`)"),
        f"traefik.http.services.{router}.loadbalancer.server.port": "8080",
    }.items()


def test_none_has_no_route_step_and_no_labels(tmp_path: Path) -> None:
    staging = shop(tmp_path, "staging", "routing: none\n")
    assert "route" not in kinds(staging, tmp_path)
    assert not any(key.startswith("traefik.") for key in labels(staging, tmp_path))


def test_an_env_routing_wins_over_the_top_level_one(tmp_path: Path) -> None:
    extra = "routing: none\nenvironments:\n  production:\n    routing: caddy\n"
    assert shop(tmp_path, "production", extra).env.routing == "caddy"
    assert shop(tmp_path, "staging", extra).env.routing == "none"


@pytest.mark.parametrize("routing", ["traefik", "none"])
def test_without_caddy_builtin_blue_green_envs_recreate(tmp_path: Path, routing: str) -> None:
    production = shop(tmp_path, "production", f"routing: {routing}\n")
    assert production.env.strategy == "recreate"


def test_blue_green_asked_for_without_caddy_is_refused_at_its_line(tmp_path: Path) -> None:
    extra = "routing: traefik\nenvironments:\n  production:\n    strategy: blue-green\n"
    with pytest.raises(SpecError) as raised:
        shop(tmp_path, "production", extra)
    problem = raised.value.problems[0]
    assert problem.line == 9 and "blue-green switches colours through envplane's Caddy" in problem.message
    assert "strategy: recreate" in problem.hint


def test_an_unknown_routing_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as raised:
        shop(tmp_path, "staging", "routing: nginx\n")
    assert raised.value.problems[0].line == 6


def test_printed_urls_per_mode(tmp_path: Path) -> None:
    """Caddy: through its listen address; Traefik: through ENVPLANE_TRAEFIK_LISTEN (else
    port 80), where it routes by the labels; none: the published port."""
    from envplane.apply import Applier

    for routing, environ, url in [
        ("traefik", {}, "http://shop-staging.localhost/app"),
        ("traefik", {"ENVPLANE_TRAEFIK_LISTEN": "127.0.0.1:18100"}, "http://shop-staging.localhost:18100/app"),
        ("none", {}, None),
    ]:
        staging = shop(tmp_path, "staging", f"routing: {routing}\n")
        listen = Applier(load_project(tmp_path / "envplane.yaml", {}), environ=environ)._traefik_listen(staging)
        port = staging.service("web").public_host_port
        assert staging.urls(listen) == {"web": url or f"http://127.0.0.1:{port}/app"}


def test_envs_says_what_routes_each_domain(tmp_path: Path) -> None:
    """`envs` named a domain for staging under `routing: none`, where nothing serves it."""
    import json

    from typer.testing import CliRunner

    from envplane.cli.main import app

    shop(tmp_path, "staging", "routing: none\nenvironments:\n  production:\n    routing: traefik\n")
    spec = str(tmp_path / "envplane.yaml")
    listed = CliRunner().invoke(app, ["envs", "--spec", spec, "--json"])
    assert listed.exit_code == 0, listed.output
    routing = {row["env"]: row["routing"] for row in json.loads(listed.output)}
    assert routing["staging"] == "none" and routing["production"] == "traefik"
    shown = CliRunner().invoke(app, ["envs", "--spec", spec], env={"COLUMNS": "400"})
    assert "shop-staging.example.com (not routed)" in shown.output
    assert "shop.example.com (by Traefik)" in shown.output
