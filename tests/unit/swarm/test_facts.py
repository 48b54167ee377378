"""What the manager says, read purely: rollout progress, status rows, the swarm's proof, routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envplane.backends.routing.caddy import Route
from envplane.spec.load import load_project
from envplane.swarm import facts
from envplane.swarm import verify as proof
from envplane.swarm.apply import node_routes, pinned_ref
from envplane.target import resolve

LABELS = {"envplane.app": "shop", "envplane.env": "staging", "envplane.instance": "staging",
          "envplane.service": "web"}


def service(update: str = "completed", replicas: int = 2, image: str = "shop:envplane-2",
            secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"ID": "s1", "Spec": {"Name": "shop-staging_web", "Labels": LABELS,
                                 "Mode": {"Replicated": {"Replicas": replicas}},
                                 "TaskTemplate": {"ContainerSpec": {
                                     "Image": image, "Secrets": [{"SecretName": s} for s in secrets]}},
                                 "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 31150,
                                                             "Protocol": "tcp", "PublishMode": "host"}]}},
            "UpdateStatus": {"State": update, "Message": "update rolled back"}}


def task(slot: int, state: str = "running", desired: str = "running", image: str = "shop:envplane-2",
         node: str = "n1", err: str = "") -> dict[str, Any]:
    return {"ID": f"t{slot}{state}", "ServiceID": "s1", "Slot": slot, "NodeID": node, "DesiredState": desired,
            "Status": {"State": state, "Err": err}, "Spec": {"ContainerSpec": {"Image": image, "Labels": LABELS}}}


def progress(svc: dict[str, Any], tasks: list[dict[str, Any]]) -> facts.Progress:
    return facts.progress(facts.parse_services(json.dumps([svc])), facts.parse_tasks(json.dumps(tasks)))


def test_a_rollout_is_done_when_every_replica_runs_the_new_image_and_the_update_completed() -> None:
    assert progress(service(), [task(1), task(2)]).done
    assert progress(service(update=""), [task(1), task(2)]).done  # never updated: first deploy
    waiting = progress(service(), [task(1), task(2, "starting")])
    assert not waiting.done and waiting.waiting == ("web: 1/2 running",)
    old = progress(service(), [task(1), task(2, image="shop:envplane-1")])
    assert not old.done  # a task of the old image is not the rollout's
    assert not progress(service(update="updating"), [task(1), task(2)]).done
    history = [task(1), task(2), task(3, "shutdown", "shutdown", "shop:envplane-1")]
    assert progress(service(), history).done  # Swarm's history does not count


def test_a_rolled_back_update_fails_with_swarms_reason_and_task_errors_are_shown() -> None:
    found = progress(service(update="rollback_completed"), [task(1), task(2)])
    assert not found.done and "rollback completed (update rolled back)" in found.failed
    stuck = progress(service(), [task(1), task(2, "rejected", err="no suitable node")])
    assert stuck.waiting == ("web: 1/2 running (no suitable node)",)


def test_status_rows_are_the_current_tasks_with_their_node() -> None:
    services = facts.parse_services(json.dumps([service()]))
    tasks = facts.parse_tasks(json.dumps([task(1), task(2, "starting", node="n2"),
                                          task(3, "shutdown", "shutdown")]))
    rows = facts.as_containers(services, tasks, {"n1": "node1", "n2": "node2"})
    assert [(r.name, r.state, r.health) for r in rows] == [
        ("shop-staging_web.1@node1", "running", "healthy"), ("shop-staging_web.2@node2", "starting", None)]
    assert rows[0].ports == ((8080, 31150, "tcp"),) and rows[0].labels["envplane.env"] == "staging"


def test_nodes_and_the_swarm_state_are_read() -> None:
    nodes = facts.parse_nodes(json.dumps([{"ID": "a", "Description": {"Hostname": "h1"},
                                           "Status": {"State": "ready", "Addr": "10.0.0.1"},
                                           "Spec": {"Role": "manager", "Availability": "active"}}]))
    assert nodes == [facts.Node("a", "h1", "10.0.0.1", "ready", "active", True)]
    assert facts.parse_info('{"LocalNodeState":"active","ControlAvailable":true}') == ("active", True)
    assert facts.parse_info('{"LocalNodeState":"inactive","ControlAvailable":false}') == ("inactive", False)
    assert facts.own_node('{"NodeID":"a","LocalNodeState":"active"}') == "a"


def test_the_proof_finds_a_secret_of_another_instance_and_a_service_short_of_replicas() -> None:
    services = facts.parse_services(json.dumps([service(secrets=("mine", "theirs", "loose"))]))
    tasks = facts.parse_tasks(json.dumps([task(1)]))
    labelled = {"mine": dict(LABELS), "theirs": {**LABELS, "envplane.instance": "pr-3"}, "loose": {}}
    found = {(f.kind, f.subject) for f in proof.findings(services, tasks, labelled)}
    assert found == {("not converged", "service shop-staging_web"), ("shared secret", "theirs"),
                     ("shared secret", "loose")}
    assert proof.findings(facts.parse_services(json.dumps([service(secrets=("mine",))])),
                          facts.parse_tasks(json.dumps([task(1), task(2)])), labelled) == []


def test_routes_go_to_the_port_on_every_node_and_skip_one_that_refuses(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: shop:1\n    ports: ['8080:8080']\n")
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n"
                                            "services:\n  web: {public: 8080}\n"
                                            "environments:\n  staging: {runtime: swarm}\n")
    target = resolve(load_project(tmp_path / "envplane.yaml", {}), "staging")
    port = target.service("web").public_host_port
    [route] = node_routes(target, ["10.0.0.2", "10.0.0.1", "10.0.0.2"])
    assert (route.upstream, route.spares) == (f"10.0.0.1:{port}", (f"10.0.0.2:{port}",))
    handler = route.as_caddy()["handle"][0]
    assert [u["dial"] for u in handler["upstreams"]] == [f"10.0.0.1:{port}", f"10.0.0.2:{port}"]
    assert handler["load_balancing"]["try_duration"] == "5s"
    assert Route("x", ("h",), "/", "a:1").as_caddy()["handle"][0] == {"handler": "reverse_proxy",
                                                                      "upstreams": [{"dial": "a:1"}]}


def test_a_pinned_tag_names_one_image() -> None:
    assert pinned_ref("shop-web:v1.0.3", "sha256:" + "ab" * 32) == "shop-web:envplane-" + "ab" * 10
    assert pinned_ref("registry:5000/team/web", "sha256:cd") == "registry:5000/team/web:envplane-cd"
    assert pinned_ref("web@sha256:ff", "sha256:ee") == "web:envplane-ee"
