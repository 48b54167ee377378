"""Blue-green colours: names, ports and images of the colour a release starts in."""

from __future__ import annotations

from pathlib import Path

from envplane.backends.routing.caddy import routes_for
from envplane.compose.render import render
from envplane.release.colours import (
    LABEL_COLOUR,
    coloured,
    of_colour,
    other,
    pinned,
    published,
    running_colours,
    serving,
)
from envplane.target import Target, resolve
from tests.unit.test_target import SPEC, project

# The backend keeps uploads in a named volume both colours may share (`stateful: false`);
# postgres, a data-store image, runs once outside the colours.
SHARED_VOLUME = SPEC.replace("    dev: python backend/app.py\n", "    dev: python backend/app.py\n    stateful: false\n")


def production(tmp_path: Path) -> Target:
    return resolve(project(tmp_path, SHARED_VOLUME), "production")


def test_the_next_colour_is_the_one_not_serving() -> None:
    assert (other(None), other("blue"), other("green")) == ("blue", "green", "blue")


def test_the_engine_says_which_colour_serves_over_the_state_store() -> None:
    assert serving(["green", "green"], recorded="blue") == "green"
    assert serving([], recorded="blue") == "blue"
    assert serving(["blue", "green"], recorded="green") == "green"
    assert serving(["blue", "green"], recorded=None) is None  # ambiguous: the caller refuses
    assert serving([None], recorded=None) is None  # a production from before blue-green


def test_running_colours_and_the_containers_of_one() -> None:
    from envplane.backends.runtime.facts import ContainerFact

    blue = ContainerFact("1", "a-blue", "running", None, {LABEL_COLOUR: "blue"})
    green = ContainerFact("2", "a-green", "exited", None, {LABEL_COLOUR: "green"})
    plain = ContainerFact("3", "a", "running", None, {})
    assert running_colours([blue, green, plain]) == {"blue"}
    assert of_colour([blue, green, plain], "green") == [green]
    assert of_colour([blue, green, plain], None) == [blue, green, plain]


def test_a_colour_is_its_own_project_on_its_own_ports_sharing_the_data(tmp_path: Path) -> None:
    base = production(tmp_path)
    ports = {key: 41000 + i for i, key in enumerate(published(base))}
    green = coloured(base, "green", ports)
    assert green.project == "finance-report-green"
    assert green.service("backend").container_name == "finance-report-backend-green"
    assert green.networks["internal"] == base.networks["internal"] + "-green"
    assert green.volumes == base.volumes and green.volume_paths == base.volume_paths
    assert green.database == base.database and green.bucket == base.bucket
    assert green.service("backend").public_host_port == ports[("backend", 8000)]
    assert green.labels[LABEL_COLOUR] == "green" and green.id == base.id
    data = render(green, tmp_path)
    assert data["name"] == "finance-report-green"
    assert data["services"]["backend"]["labels"][LABEL_COLOUR] == "green"
    assert data["services"]["backend"]["ports"][0]["published"] == str(ports[("backend", 8000)])
    assert data["volumes"]["backend_data"]["name"] == base.volumes["backend_data"]
    assert "postgres" not in data["services"] and [s.name for s in green.services] == ["backend", "frontend"]


def test_the_proxy_routes_the_domain_to_the_colours_ports(tmp_path: Path) -> None:
    base = production(tmp_path)
    blue = coloured(base, "blue", {key: 42000 + i for i, key in enumerate(published(base))})
    assert {r.path: r.upstream for r in routes_for(blue)} == {
        "/api": f"127.0.0.1:{blue.service('backend').public_host_port}",
        "/": f"127.0.0.1:{blue.service('frontend').public_host_port}"}
    assert all(r.hosts[0] == "report.example.com" for r in routes_for(blue))


def test_a_pinned_target_runs_the_release_images_and_cannot_build(tmp_path: Path) -> None:
    base = production(tmp_path)
    images = {"backend": {"ref": "finance-report-backend:v1.0.45", "id": "sha256:ab", "built": True},
              "postgres": {"ref": "postgres:16", "id": "sha256:cd", "built": False}}
    target = pinned(base, "v1.0.45", images)
    services = render(target, tmp_path)["services"]
    assert services["backend"]["image"] == "finance-report-backend:v1.0.45"
    assert "build" not in services["backend"] and services["backend"]["pull_policy"] == "never"
    assert services["postgres"]["pull_policy"] == "missing"
    assert services["frontend"]["image"] == "busybox"  # not in the release: left as written
    assert services["backend"]["environment"]["ENVPLANE_RELEASE"] == "v1.0.45"
    assert services["frontend"]["environment"]["ENVPLANE_RELEASE"] == "v1.0.45"
    # The stateful one keeps its definition from release to release: no deploy recreates it.
    assert "ENVPLANE_RELEASE" not in services["postgres"]["environment"]
    assert "build" in base.compose.data["services"]["backend"]  # the original is untouched
