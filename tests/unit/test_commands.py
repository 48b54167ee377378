"""Command builders return exact argument lists (STYLE.md: commands are data)."""

from __future__ import annotations

from envplane.commands import compose, docker


def test_compose_commands_name_the_project_and_the_rendered_file() -> None:
    assert compose.up("shop-pr-7", "/x/compose.yaml") == [
        "docker", "compose", "--project-name", "shop-pr-7", "--file", "/x/compose.yaml",
        "up", "--detach", "--remove-orphans"]
    assert compose.build("shop-pr-7", "/x/compose.yaml")[-1] == "build"


def test_docker_observation_goes_by_the_instance_labels() -> None:
    assert docker.networks("shop", "pr-7") == [
        "docker", "network", "ls", "--filter", "label=envplane.app=shop",
        "--filter", "label=envplane.instance=pr-7", "--format", "{{.Name}}"]
    assert docker.remove_volumes(["a", "b"]) == ["docker", "volume", "rm", "--force", "a", "b"]
    assert docker.publishing(30000, "tcp")[:5] == ["docker", "ps", "--all", "--filter", "publish=30000/tcp"]


def test_blue_green_keeps_orphans_until_the_switch_and_joins_a_running_stateful_service() -> None:
    assert compose.up("shop", "/x/stateful.yaml", remove_orphans=False) == [
        "docker", "compose", "--project-name", "shop", "--file", "/x/stateful.yaml", "up", "--detach"]
    assert compose.exec_in("shop", "/x/stateful.yaml", "db", "psql -c 'select 1'") == [
        "docker", "compose", "--project-name", "shop", "--file", "/x/stateful.yaml",
        "exec", "--no-TTY", "db", "sh", "-c", "psql -c 'select 1'"]
    assert docker.stop_containers(["a1", "b2"]) == ["docker", "stop", "--time", "30", "a1", "b2"]


def test_the_pre_flight_creates_a_trial_and_never_starts_builds_or_pulls_in_it() -> None:
    assert compose.create("shop-staging-trial", "/x/trial/compose.yaml") == [
        "docker", "compose", "--project-name", "shop-staging-trial", "--file", "/x/trial/compose.yaml",
        "create", "--pull", "never", "--no-build"]
    assert compose.build("shop-staging", "/x/trial/compose.yaml", ("web",))[-2:] == ["build", "web"]
    assert compose.containers("shop-staging-trial") == [
        "docker", "ps", "--all", "--no-trunc", "--filter", "label=com.docker.compose.project=shop-staging-trial",
        "--format", "{{json .}}"]
    assert compose.networks("shop-staging-trial")[:5] == [
        "docker", "network", "ls", "--filter", "label=com.docker.compose.project=shop-staging-trial"]
    assert docker.copy_out("c1", "/bin/sh", "/tmp/probe") == ["docker", "cp", "c1:/bin/sh", "/tmp/probe"]
    assert docker.pull("busybox:stable") == ["docker", "pull", "--quiet", "busybox:stable"]
