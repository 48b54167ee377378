"""The isolation proof's analysis, on facts as the engine reports them."""

from __future__ import annotations

from envplane.verify import Resource, analyse


def owned(instance: str, **kw: object) -> Resource:
    labels = {"envplane.app": "shop", "envplane.env": "test", "envplane.instance": instance}
    labels.update(kw.pop("labels", {}))  # type: ignore[arg-type]
    return Resource(kind=str(kw.pop("kind", "container")), name=str(kw.pop("name", f"c-{instance}")),
                    labels=labels, state=str(kw.pop("state", "running")), **kw)  # type: ignore[arg-type]


def kinds(resources: list[Resource]) -> list[str]:
    return [f.kind for f in analyse(resources).findings]


def test_separate_instances_pass() -> None:
    report = analyse([owned("pr-1", networks=("n1",), volumes=("v1",), ports=("30000/tcp",)),
                      owned("pr-2", networks=("n2",), volumes=("v2",), ports=("30010/tcp",))])
    assert report.ok and report.instances == {"shop/test/pr-1", "shop/test/pr-2"}


def test_shared_network_volume_port_and_domain_are_named() -> None:
    rule = {"traefik.http.routers.x.rule": "Host(`shop.example.com`)"}
    found = analyse([
        owned("pr-1", networks=("n",), volumes=("v",), ports=("80/tcp",), labels=rule),
        owned("pr-2", networks=("n",), volumes=("v",), ports=("80/tcp",), labels=rule),
    ]).findings
    assert {(f.kind, f.subject) for f in found} == {
        ("shared network", "n"), ("shared volume", "v"), ("shared host port", "80/tcp"),
        ("shared domain", "shop.example.com"),
    }
    assert all(f.detail == "used by shop/test/pr-1 and shop/test/pr-2" for f in found)


def test_nested_data_paths_clash() -> None:
    assert kinds([owned("a", kind="volume", name="va", paths=("/data/shop",)),
                  owned("b", kind="volume", name="vb", paths=("/data/shop/staging",))]) == ["shared data path"]


def test_missing_labels_and_unhealthy_containers() -> None:
    stray = Resource(kind="network", name="n", labels={"envplane.app": "shop"})
    assert kinds([stray, owned("pr-1", state="exited"), owned("pr-2", health="unhealthy")]) == [
        "unowned", "not running", "unhealthy"]
