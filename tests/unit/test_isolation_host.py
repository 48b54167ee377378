"""#9.19: what a service takes from the host itself is checked between instances too.

`network_mode`, `pid` or `ipc: host` and a host folder outside the instance's data path
(`${PLEX_MEDIA_PATH}:/media`) are shared by every instance of a host group that runs
the service; the plan refuses them, naming both sides, unless the spec declares them
under `shared:`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import actions, isolation
from envplane.compose.render import render
from envplane.errors import IsolationError, SpecError
from envplane.names import Instance
from envplane.spec.load import Project, load_project

SPEC = "app: plex\ndomain: example.com\ncompose: compose.yaml\n"


def project(tmp_path: Path, compose: str, spec: str = SPEC, environ: dict[str, str] | None = None) -> Project:
    (tmp_path / "compose.yaml").write_text(compose)
    (tmp_path / "envplane.yaml").write_text(spec)
    return load_project(tmp_path / "envplane.yaml", environ or {})


def refused(p: Project, env: str, **kw: object) -> list[str]:
    with pytest.raises(IsolationError) as caught:
        actions.resolve_checked(p, env, **kw)  # type: ignore[arg-type]
    return [problem.message for problem in caught.value.problems]


@pytest.mark.parametrize(("key", "kind"), [
    ("network_mode", "host network"), ("pid", "host PID namespace"), ("ipc", "host IPC namespace"),
])
def test_a_host_namespace_is_a_clash_between_instances_of_one_host_group(
    tmp_path: Path, key: str, kind: str
) -> None:
    p = project(tmp_path, f"services:\n  plex:\n    image: plex\n    {key}: host\n")
    messages = refused(p, "staging")
    assert (f"{kind} ({key}: host) is claimed by both staging (services.plex.{key}) "
            f"and production (services.plex.{key})") in messages


def test_a_host_namespace_on_another_machine_is_no_clash(tmp_path: Path) -> None:
    p = project(tmp_path, "services:\n  plex:\n    image: plex\n    network_mode: host\n",
                SPEC + "environments:\n  staging:\n    host: staging-box\n  docker:\n    host: laptop\n")
    actions.resolve_checked(p, "staging")  # alone on its host, staging-box
    actions.resolve_checked(p, "production")  # test PRs are its neighbours, and none runs yet
    messages = refused(p, "production", known=actions.Known((Instance("test", pr=4),)))
    assert ("host network (network_mode: host) is claimed by both production "
            "(services.plex.network_mode) and test pr-4 (services.plex.network_mode)") in messages


def test_the_workstation_and_the_server_are_one_machine_until_the_spec_says_otherwise(tmp_path: Path) -> None:
    """#10.3: docker (host group workstation) and staging (server) took the same host ports on
    the one machine of the tour. What belongs to a machine is compared per engine."""
    p = project(tmp_path, "services:\n  plex:\n    image: plex\n    network_mode: host\n")
    assert ("host network (network_mode: host) is claimed by both docker (services.plex.network_mode) "
            "and production (services.plex.network_mode)") in refused(p, "docker")


PLEX = "services:\n  plex:\n    image: plex\n    volumes: ['${PLEX_MEDIA_PATH}:/media:ro']\n"


def test_an_absolute_bind_shared_by_staging_and_production_is_a_clash(tmp_path: Path) -> None:
    p = project(tmp_path, PLEX, environ={"PLEX_MEDIA_PATH": "/srv/media"})
    assert ("host path /srv/media is claimed by both staging (services.plex.volumes[0]) "
            "and production (services.plex.volumes[0])") in refused(p, "staging")


def test_a_bind_above_another_instances_data_path_is_a_clash(tmp_path: Path) -> None:
    p = project(tmp_path, "services:\n  plex:\n    image: plex\n    volumes: ['/data:/everything']\n")
    messages = refused(p, "staging")
    assert any(m.startswith("host path /data / /data/plex/production is claimed by both staging "
                            "(services.plex.volumes[0]) and production") for m in messages), messages


def test_long_syntax_and_home_folders_count_too(tmp_path: Path) -> None:
    compose = ("services:\n  plex:\n    image: plex\n    volumes:\n"
               "      - {type: bind, source: /srv/media/, target: /media}\n"
               "      - ~/config:/config\n")
    messages = refused(project(tmp_path, compose), "staging")
    assert any(m.startswith("host path /srv/media is claimed") for m in messages), messages
    assert any(m.startswith("host path ~/config is claimed") for m in messages), messages


@pytest.mark.parametrize("volume", [
    "${DATA_PATH}/library:/library",  # the instance's own data
    "./config:/config:ro",  # the app's own files, beside its spec
    "library:/library",  # a named volume: each instance gets its own
    "/cache",  # an anonymous volume
])
def test_binds_of_the_instance_itself_are_no_clash(tmp_path: Path, volume: str) -> None:
    compose = f"services:\n  plex:\n    image: plex\n    volumes: ['{volume}']\nvolumes:\n  library: {{}}\n"
    p = project(tmp_path, compose)
    for env in ("staging", "production"):
        actions.resolve_checked(p, env)


SHARED = SPEC + "shared:\n  binds: ['${PLEX_MEDIA_PATH}']\n  host_network: [plex]\n"


def test_declared_sharing_passes_and_is_labelled_for_verify(tmp_path: Path) -> None:
    compose = PLEX + "    network_mode: host\n"
    p = project(tmp_path, compose, SHARED, environ={"PLEX_MEDIA_PATH": "/srv/media"})
    targets = [actions.resolve_checked(p, env) for env in ("staging", "production")]
    assert isolation.violations(targets) == []
    labels = render(targets[0], tmp_path)["services"]["plex"]["labels"]
    assert labels["envplane.shared"] == "network_mode:host;bind:/srv/media"


def test_a_declared_bind_covers_the_folders_under_it_only(tmp_path: Path) -> None:
    compose = ("services:\n  plex:\n    image: plex\n"
               "    volumes: ['/srv/media/movies:/movies', '/srv/other:/other']\n")
    p = project(tmp_path, compose, SPEC + "shared:\n  binds: [/srv/media]\n")
    messages = refused(p, "staging")
    assert {m.split(" is ")[0] for m in messages} == {"host path /srv/other"}


def test_shared_names_compose_services_and_absolute_folders(tmp_path: Path) -> None:
    p = project(tmp_path, "services:\n  plex:\n    image: plex\n",
                SPEC + "shared:\n  binds: [media, '${NOWHERE}']\n  host_pid: [plx]\n")
    with pytest.raises(SpecError) as caught:
        actions.resolve(p, "staging")
    found = {(problem.field, problem.line, problem.message) for problem in caught.value.problems}
    assert ("shared.binds[0]", 5, "must be an absolute host path (or start with ~), not 'media'") in found
    assert ("shared.binds[1]", 5, "must be an absolute host path (or start with ~), not ''") in found
    assert ("shared.host_pid[0]", 6, "no service 'plx' in the Compose files") in found


def test_an_unknown_kind_of_sharing_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"shared.networks: unknown key \(.*envplane.yaml:5\)"):
        project(tmp_path, "services:\n  plex:\n    image: plex\n",
                SPEC + "shared:\n  networks: [x]\n")


def test_docker_and_staging_on_the_same_ports_are_refused(tmp_path: Path) -> None:
    """#10.3: `up staging` failed only at its port check, after provisioning, because docker
    (workstation) and staging (server) were never compared: now the plan names both."""
    p = project(tmp_path, "services:\n  web:\n    image: web\n    ports: ['8000:8000']\n",
                SPEC + "environments:\n  docker:\n    port_offset: 10000\n")
    assert "host port 18000/tcp is claimed by both staging and docker" in refused(p, "staging")
    for env in ("docker", "staging", "production", "local"):  # the defaults never meet
        actions.resolve_checked(project(tmp_path, "services:\n  web:\n    image: web\n    ports: ['8000:8000']\n"),
                                env)


def test_the_example_s_docker_and_staging_take_different_host_ports_on_one_machine() -> None:
    """#10.3: the tour's `up docker` then `up staging` of the example failed with `host port
    18000/tcp of backend is taken by container finance-report-backend-docker`, after staging's
    database, bucket and Redis user were made. Their default host ports never meet now, and
    the plan of either passes with the other running."""
    example = Path(__file__).resolve().parents[2] / "examples" / "finance-report" / "envplane.yaml"
    p = load_project(example, {})

    def published(env: str) -> set[tuple[int, str]]:
        return {(port.published, port.protocol) for s in actions.resolve(p, env).services
                for port in s.ports if port.published is not None}

    docker, staging, production = published("docker"), published("staging"), published("production")
    assert docker and staging and production
    assert not docker & staging and not docker & production and not staging & production
    actions.resolve_checked(p, "staging", known=actions.Known((Instance("docker"),)))
    actions.resolve_checked(p, "docker", known=actions.Known((Instance("staging"),)))


def test_one_instance_among_many_is_refused_for_its_own_clash_only(tmp_path: Path) -> None:
    """With 60 previews known, the check of one still finds the preview recorded inside its
    data path, and leaves a clash between two other previews to their own checks (#11 scale)."""
    p = project(tmp_path, "services:\n  plex:\n    image: plex\n")
    others = tuple(Instance.from_id("test", f"pr-{n}") for n in range(2, 62))
    known = actions.Known(others, {Instance.from_id("test", "pr-61"): "/data/test/plex-pr-1/old",
                                   Instance.from_id("test", "pr-40"): "/data/test/plex-pr-41"})
    messages = refused(p, "test", pr=1, known=known)
    assert len(messages) == 1, messages
    assert messages[0].startswith("data path /data/test/plex-pr-1 / /data/test/plex-pr-1/old is claimed "
                                  "by both test pr-1"), messages
    assert "test pr-61" in messages[0]
    actions.resolve_checked(p, "test", 7, known=known)  # pr-40 and pr-41 clash; pr-7 does not
