"""The Caddy route of an instance, its order, how `proxy routes` reads it, and the URLs
printed after `up` — as pure data."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.backends.routing.caddy import (
    FALLBACK,
    Route,
    RouteRow,
    base_config,
    colour_ports,
    colour_routes_for,
    instance_route,
    ordered,
    route_rows,
    routes_for,
)
from envplane.ports import app_slot
from envplane.spec.load import load_project
from envplane.target import Target, proxy_url, resolve

COMPOSE = ("services:\n  api:\n    image: a\n    ports: ['8000:8000']\n"
           "  web:\n    image: w\n    ports: ['3000:8080']\n  db:\n    image: postgres\n")
SPEC = ("app: shop\ndomain: example.com\ncompose: compose.yaml\nservices:\n"
        "  api: {public: {port: 8000, path: /api}}\n  web: {public: 8080}\n")


def shop(tmp_path: Path, env: str, pr: int | None = None, run: str | None = None) -> Target:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(SPEC)
    return resolve(load_project(tmp_path / "envplane.yaml", {}), env, pr=pr, run=run)


def test_routes_follow_domain_paths_and_host_ports(tmp_path: Path) -> None:
    hosts = ("shop-pr-7.example.com", "shop-pr-7.localhost")
    block = 30000 + app_slot("shop")
    assert routes_for(shop(tmp_path, "test", 7)) == [
        Route("envplane.shop.pr-7/api", hosts, "/api", f"127.0.0.1:{block + 60}"),
        Route("envplane.shop.pr-7/web", hosts, "/", f"127.0.0.1:{block + 61}"),
    ]


def test_an_instance_is_one_route_matching_its_hosts_longer_paths_first() -> None:
    root = Route("envplane.a.pr-1/web", ("a-pr-1.localhost",), "/", "x:1")
    api = Route("envplane.a.pr-1/api", ("a-pr-1.example.com", "a-pr-1.localhost"), "/api", "x:2")
    route = instance_route("a", "pr-1", [root, api])
    assert route["@id"] == "envplane.a.pr-1"  # no `/`: addressable as /id/envplane.a.pr-1
    assert route["match"] == [{"host": ["a-pr-1.localhost", "a-pr-1.example.com"]}]
    assert "terminal" not in route  # a path no service serves goes on to the 404
    [switch] = route["handle"]
    assert [r["@id"] for r in switch["routes"]] == ["envplane.a.pr-1/api", "envplane.a.pr-1/web"]
    assert switch["routes"][0]["match"] == [{"path": ["/api", "/api/*"]}]
    assert "match" not in switch["routes"][1]
    assert [r["@id"] for r in ordered([root.as_caddy(), api.as_caddy()])] == [api.id, root.id]


def test_the_404_comes_after_every_restored_route() -> None:
    route = instance_route("a", "pr-1", [Route("envplane.a.pr-1/web", ("h",), "/", "x:1")])
    config = base_config("127.0.0.1:8088", "http://127.0.0.1:2019", [route])
    server = config["apps"]["http"]["servers"]["envplane"]
    assert server["routes"] == [route, FALLBACK]
    assert config["admin"] == {"listen": "127.0.0.1:2019", "config": {"persist": False}}


def test_blue_green_routes_pick_the_colour_by_marker_file_and_read_back(tmp_path: Path) -> None:
    target = shop(tmp_path, "production")
    ports = {"blue": {"api": 41001, "web": 41002}, "green": {"api": 42001, "web": 42002}}
    route = instance_route("shop", "production", colour_routes_for(target, ports, "/srv/live/shop/production"))
    assert route["match"] == [{"host": ["shop.example.com", "shop.localhost"]}]
    api = next(r for r in route["handle"][0]["routes"] if r["@id"] == "envplane.shop.production/api")
    assert api["match"] == [{"path": ["/api", "/api/*"]}]
    switch = api["handle"][0]
    assert switch["handler"] == "subroute"
    blue, green, either = switch["routes"]
    assert blue["match"] == [{"file": {"root": "/srv/live/shop/production", "try_files": ["blue"]}}]
    assert blue["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:41001"}]
    assert green["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:42001"}]
    assert either["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:41001"}, {"dial": "127.0.0.1:42001"}]
    assert colour_ports(route) == ports
    assert colour_ports(instance_route("shop", "production", routes_for(target))) == {}
    assert colour_ports(None) == {}


def test_proxy_routes_reads_plain_blue_green_and_foreign_routes(tmp_path: Path) -> None:
    """`proxy routes` crashed on anything but a plain reverse proxy (issue 10.6)."""
    plain = instance_route("shop", "pr-7", routes_for(shop(tmp_path, "test", 7)))
    ports = {"blue": {"api": 41001, "web": 41002}, "green": {"api": 42001, "web": 42002}}
    coloured = instance_route("shop", "production",
                              colour_routes_for(shop(tmp_path, "production"), ports, "/live"))
    by_hand = {"match": [{"host": ["x.test"]}], "handle": [{"handler": "file_server"}]}
    rows = route_rows([plain, coloured, by_hand, FALLBACK])
    block = 30000 + app_slot("shop")
    pr = ("shop-pr-7.example.com", "shop-pr-7.localhost")
    prod = ("shop.example.com", "shop.localhost")
    assert rows == [
        RouteRow("envplane.shop.pr-7/api", pr, "/api", f"127.0.0.1:{block + 60}"),
        RouteRow("envplane.shop.pr-7/web", pr, "/", f"127.0.0.1:{block + 61}"),
        RouteRow("envplane.shop.production/api", prod, "/api", "blue 127.0.0.1:41001 | green 127.0.0.1:42001"),
        RouteRow("envplane.shop.production/web", prod, "/", "blue 127.0.0.1:41002 | green 127.0.0.1:42002"),
        RouteRow("", ("x.test",), "/", "(file_server)"),
        RouteRow("envplane._unknown-host", (), "/", "(status 404)"),
    ]


@pytest.mark.parametrize(("listen", "url"), [
    ("127.0.0.1:8088", "http://shop-staging.localhost:8088/api"),
    (":8088", "http://shop-staging.localhost:8088/api"),
    ("[::1]:9000", "http://shop-staging.localhost:9000/api"),
    ("0.0.0.0:80", "http://shop-staging.localhost/api"),
    ("10.0.0.5:80", "http://shop-staging.example.com/api"),
    ("tcp/10.0.0.5:8088", "http://shop-staging.example.com:8088/api"),
])
def test_a_proxy_url_names_the_address_and_port_the_proxy_answers_on(listen: str, url: str) -> None:
    assert proxy_url(listen, "shop-staging.example.com", "/api") == url


def test_printed_urls_go_through_the_proxy_when_routed_else_the_published_port(tmp_path: Path) -> None:
    """`up docker` printed http://report.localhost/api, where nothing listens (issue 10.7)."""
    staging = shop(tmp_path, "staging")
    api, web = staging.service("api").public_host_port, staging.service("web").public_host_port
    assert staging.urls("127.0.0.1:8088") == {"api": "http://shop-staging.localhost:8088/api",
                                              "web": "http://shop-staging.localhost:8088/"}
    assert staging.urls(None) == {"api": f"http://127.0.0.1:{api}/api", "web": f"http://127.0.0.1:{web}/"}
    ci = shop(tmp_path, "ci", run="r1")  # no domain, and the engine picks the host ports
    assert ci.domain is None and ci.service("api").public_host_port is None
    assert ci.urls("127.0.0.1:8088", {"api": 49153}) == {"api": "http://127.0.0.1:49153/api"}
    assert ci.urls(None) == {}  # no port known: no address printed rather than a wrong one
