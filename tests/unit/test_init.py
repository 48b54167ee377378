"""#9.20: `envplane init` reads Compose files as Compose does, and turns any folder name
into a valid app name instead of refusing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import actions, init
from envplane.errors import IsolationError, SpecError, UsageError
from envplane.spec.models import valid_name

PLEX = """\
services:
  plex:
    image: plexinc/pms-docker
    ports: ["32400:32400"]
    volumes: ["${PLEX_MEDIA_PATH:?where the media lives}:/media"]
"""


def test_init_interpolates_with_the_shells_variables(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(PLEX)
    text = actions.init_spec(tmp_path / "envplane.yaml", None, "plex", "example.com", False,
                             environ={"PLEX_MEDIA_PATH": "/srv/media"})
    assert "app: plex" in text and "public: {port: 32400, path: /}" in text


def test_init_interpolates_with_the_dotenv_beside_the_spec(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(PLEX)
    (tmp_path / ".env").write_text("PLEX_MEDIA_PATH=/srv/media\n")
    actions.init_spec(tmp_path / "envplane.yaml", None, "plex", "example.com", False, environ={})
    assert (tmp_path / "envplane.yaml").is_file()


def test_init_without_the_variable_names_it_as_compose_would(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(PLEX)
    with pytest.raises(SpecError, match="required variable PLEX_MEDIA_PATH is not set"):
        actions.init_spec(tmp_path / "envplane.yaml", None, "plex", "example.com", False, environ={})
    assert not (tmp_path / "envplane.yaml").exists()


@pytest.mark.parametrize(("folder", "name"), [
    ("pihole-cloudflared-DoH", "pihole-cloudflared-doh"),
    ("My App (2024)", "my-app-2024"),
    ("web_app.v2", "web-app-v2"),
    ("2048-game", "app-2048-game"),
    ("--x--", "app-x"),
    ("Ünïcode Straße", "unicode-strae"),
    ("a", "app-a"),
    ("", "app"),
    ("a-very-long-folder-name-of-a-project-with-many-words-in-it", "a-very-long-folder-name-of-a-project-wit"),
    ("forty-characters-then-a-dash-at-the-end-x", "forty-characters-then-a-dash-at-the-end"),
])
def test_a_folder_name_becomes_a_valid_app_name(folder: str, name: str) -> None:
    suggested = init.app_name(folder)
    assert suggested == name
    assert valid_name(suggested)


def test_an_invalid_app_name_is_refused_with_the_fixed_one_suggested(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\n")
    with pytest.raises(UsageError) as caught:
        actions.init_spec(tmp_path / "envplane.yaml", None, "Pihole_DoH", "example.com", False, {})
    assert caught.value.message == "app name 'Pihole_DoH' is not valid"
    assert caught.value.hint == (
        "use 2-40 characters of a-z, 0-9 and '-', starting with a letter: --app pihole-doh")


def test_init_shows_the_shared_declaration_that_host_folders_and_namespaces_need(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(PLEX + "    network_mode: host\n")
    text = actions.init_spec(tmp_path / "envplane.yaml", None, "plex", "example.com", False,
                             environ={"PLEX_MEDIA_PATH": "/srv/media"})
    assert "# shared:\n#   binds: [/srv/media]\n#   host_network: [plex]\n" in text
    environ = {"PLEX_MEDIA_PATH": "/srv/media"}
    with pytest.raises(IsolationError, match="host path /srv/media is claimed by both staging"):
        actions.resolve_checked(actions.open_project(tmp_path, environ), "staging")
    (tmp_path / "envplane.yaml").write_text(text.replace("# shared:", "shared:").replace("#   ", "  "))
    actions.resolve_checked(actions.open_project(tmp_path, environ), "staging")


# #10.5: init never guesses `health: /` blindly; it says where a health path came from,
# or leaves it out with a comment saying how to set it.

def _guess(service: str) -> init.Guess:
    import yaml

    services = yaml.safe_load(service)["services"]
    [first] = [g for g in init.guess(services) if g.public_port is not None]
    return first


def test_a_compose_healthcheck_with_a_url_gives_the_health_path() -> None:
    g = _guess("services:\n  web:\n    image: app\n    ports: ['8080:8080']\n"
               "    healthcheck: {test: [CMD, curl, -f, 'http://localhost:8080/healthz']}\n")
    assert g.health == "/healthz"
    assert "health path /healthz from its Compose healthcheck" in g.reasons


def test_a_compose_healthcheck_without_a_url_needs_no_health_path() -> None:
    g = _guess("services:\n  web:\n    image: app\n    ports: ['8080:8080']\n"
               "    healthcheck: {test: [CMD, /bin/check]}\n")
    assert g.health is None
    assert any("waits for its Compose healthcheck" in r for r in g.reasons)


@pytest.mark.parametrize(("extra", "path", "where"), [
    ("    labels: ['traefik.http.services.web.loadbalancer.healthcheck.path=/healthz']\n",
     "/healthz", "its labels"),
    ("    labels: {traefik.http.services.web.loadbalancer.healthcheck.path: /api/health}\n",
     "/api/health", "its labels"),
    ("    command: ['gunicorn', '--check', '/ping', 'app:app']\n", "/ping", "its command"),
    ("    environment: {HEALTH_PATH: /status/ready}\n", "/status/ready", "its environment"),
])
def test_a_path_that_looks_like_health_in_the_compose_file_is_taken_and_named(
        extra: str, path: str, where: str) -> None:
    g = _guess("services:\n  web:\n    image: app\n    ports: ['8080:8080']\n" + extra)
    assert g.health == path
    assert f"health path {path} from {where}" in g.reasons


def test_without_any_hint_health_is_left_out_with_how_to_set_it(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: app\n    ports: ['8080:8080']\n"
                                           "    command: ['serve', '/srv/www']\n")
    text = actions.init_spec(tmp_path / "envplane.yaml", None, "shop", "example.com", False, {})
    assert "health: /\n" not in text and "\n    health:" not in text
    assert ("    # no health path found (no Compose healthcheck, nothing like /health in the file): "
            "`up` checks that port 8080 accepts connections\n"
            "    public: {port: 8080, path: /}\n"
            "    # health: /healthz  # set the path that answers 2xx once web is ready\n") in text
    actions.open_project(tmp_path, {})  # the spec it wrote loads
