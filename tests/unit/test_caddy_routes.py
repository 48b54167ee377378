"""The Caddy routes of an instance, and their order, as pure data."""

from __future__ import annotations

from pathlib import Path

from envplane.backends.routing.caddy import (
    FALLBACK_ID,
    Route,
    colour_ports,
    colour_routes_for,
    ordered,
    routes_for,
)
from envplane.ports import app_slot
from envplane.spec.load import load_project
from envplane.target import resolve


def test_routes_follow_domain_paths_and_host_ports(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  api:\n    image: a\n    ports: ['8000:8000']\n"
        "  web:\n    image: w\n    ports: ['3000:8080']\n  db:\n    image: postgres\n"
    )
    (tmp_path / "envplane.yaml").write_text(
        "app: shop\ndomain: example.com\ncompose: compose.yaml\nservices:\n"
        "  api: {public: {port: 8000, path: /api}}\n  web: {public: 8080}\n"
    )
    target = resolve(load_project(tmp_path / "envplane.yaml", {}), "test", pr=7)
    assert routes_for(target) == [
        Route("envplane/shop/pr-7/api", ("shop-pr-7.example.com", "shop-pr-7.localhost"), "/api",
              f"127.0.0.1:{30000 + app_slot('shop') + 60}"),
        Route("envplane/shop/pr-7/web", ("shop-pr-7.example.com", "shop-pr-7.localhost"), "/",
              f"127.0.0.1:{30000 + app_slot('shop') + 61}"),
    ]


def test_longer_paths_first_and_the_404_last() -> None:
    root = Route("a/web", ("h",), "/", "x:1").as_caddy()
    api = Route("a/api", ("h",), "/api", "x:2").as_caddy()
    assert [r["@id"] for r in ordered([root, api])] == ["a/api", "a/web", FALLBACK_ID]


def test_blue_green_routes_pick_the_colour_by_marker_file_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  api:\n    image: a\n    ports: ['8000:8000']\n  web:\n    image: w\n    ports: ['3000:8080']\n")
    (tmp_path / "envplane.yaml").write_text(
        "app: shop\ndomain: example.com\ncompose: compose.yaml\nservices:\n"
        "  api: {public: {port: 8000, path: /api}}\n  web: {public: 8080}\n")
    target = resolve(load_project(tmp_path / "envplane.yaml", {}), "production")
    ports = {"blue": {"api": 41001, "web": 41002}, "green": {"api": 42001, "web": 42002}}
    routes = [r.as_caddy() for r in colour_routes_for(target, ports, "/srv/live/shop/production")]
    api = next(r for r in routes if r["@id"] == "envplane/shop/production/api")
    assert api["match"] == [{"host": ["shop.example.com", "shop.localhost"], "path": ["/api", "/api/*"]}]
    switch = api["handle"][0]
    assert switch["handler"] == "subroute"
    blue, green, either = switch["routes"]
    assert blue["match"] == [{"file": {"root": "/srv/live/shop/production", "try_files": ["blue"]}}]
    assert blue["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:41001"}]
    assert green["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:42001"}]
    assert either["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:41001"}, {"dial": "127.0.0.1:42001"}]
    assert colour_ports(routes) == ports
    assert colour_ports([Route("envplane/shop/production/api", ("h",), "/", "x:1").as_caddy()]) == {}
