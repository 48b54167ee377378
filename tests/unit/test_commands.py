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
