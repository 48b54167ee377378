"""The isolation proof's analysis, on facts as the engine reports them."""

from __future__ import annotations

from envplane.verify import Resource, admin_digests, analyse, container_resource


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


# #9.19: what containers take from the host itself.

def shares(*items: str) -> dict[str, str]:
    return {"envplane.shared": ";".join(items)}


def test_the_host_network_of_two_instances_is_a_violation_unless_both_declare_it() -> None:
    found = analyse([owned("staging", host_modes=("network_mode",)),
                     owned("production", host_modes=("network_mode",))]).findings
    assert [(f.kind, f.subject, f.detail) for f in found] == [
        ("shared host network", "(network_mode: host)", "used by shop/test/production and shop/test/staging")]
    report = analyse([owned("staging", host_modes=("network_mode",), labels=shares("network_mode:host")),
                      owned("production", host_modes=("network_mode",), labels=shares("network_mode:host"))])
    assert report.ok and [f.kind for f in report.shared] == ["declared host network"]
    one_side = analyse([owned("staging", host_modes=("pid",), labels=shares("pid:host")),
                        owned("production", host_modes=("pid",))])
    assert [f.kind for f in one_side.findings] == ["shared host PID namespace"]


def test_a_host_folder_of_two_instances_is_a_violation_unless_both_declare_it() -> None:
    assert kinds([owned("staging", binds=("/srv/media",)),
                  owned("production", binds=("/srv/media/movies",))]) == ["shared host path"]
    report = analyse([owned("staging", binds=("/srv/media",), labels=shares("bind:/srv/media")),
                      owned("production", binds=("/srv/media/movies",), labels=shares("bind:/srv/media"))])
    assert report.ok
    assert [(f.kind, f.subject) for f in report.shared] == [
        ("declared host path", "/srv/media / /srv/media/movies")]
    assert kinds([owned("staging", binds=("/srv/media",), labels=shares("bind:/srv/media")),
                  owned("production", binds=("/srv/media",))]) == ["shared host path"]


def test_the_apps_own_files_are_listed_as_shared_not_as_violations() -> None:
    report = analyse([owned("staging", binds=("/home/me/shop/conf",), labels=shares("app:/home/me/shop/conf")),
                      owned("production", binds=("/home/me/shop/conf",), labels=shares("app:/home/me/shop/conf"))])
    assert report.ok and [f.kind for f in report.shared] == ["app files"]


def test_a_bind_above_another_instances_volume_folder_is_a_violation_even_if_declared() -> None:
    found = analyse([owned("staging", binds=("/data",), labels=shares("bind:/data")),
                     owned("production", kind="volume", name="v", paths=("/data/shop/production/db",))])
    assert [(f.kind, f.subject) for f in found.findings] == [
        ("shared host path", "/data/shop/production/db / /data")]


def test_the_engine_report_gives_host_namespaces_and_bind_sources() -> None:
    item = {"Name": "/plex-staging", "State": {"Status": "running"},
            "Config": {"Labels": {"envplane.app": "plex"}},
            "HostConfig": {"NetworkMode": "host", "PidMode": "", "IpcMode": "host"},
            "Mounts": [{"Type": "bind", "Source": "/srv/media", "Destination": "/media"},
                       {"Type": "volume", "Name": "plex-staging_db", "Source": "/var/lib/docker/x"}]}
    resource = container_resource(item)
    assert resource.host_modes == ("network_mode", "ipc")
    assert resource.binds == ("/srv/media",)
    assert resource.volumes == ("plex-staging_db",)


def test_a_credential_held_by_two_instances_or_an_admin_one_is_a_violation() -> None:
    """#9.3: verify proves on the live host that no credential reaches two instances."""
    admin_env = {"ENVPLANE_S3_ACCESS_KEY": "admin-key", "ENVPLANE_S3_SECRET_KEY": "admin-secret",
                 "ENVPLANE_POSTGRES_URL": "postgresql://envplane:pg-admin-pw@db:5432/postgres"}
    pr1 = ["S3_ACCESS_KEY_ID=AK1", "S3_SECRET_ACCESS_KEY=s1", "DATABASE_URL=postgresql://shop_pr_1:pw1@db/shop_pr_1",
           "PATH=/bin", "REDIS_URL=redis://shop%3Apr-1:rpw1@cache:6379/0"]
    pr2 = ["S3_ACCESS_KEY_ID=AK2", "S3_SECRET_ACCESS_KEY=s2", "DATABASE_URL=postgresql://shop_pr_2:pw2@db/shop_pr_2",
           "PATH=/bin", "REDIS_URL=redis://shop%3Apr-2:rpw2@cache:6379/0"]

    def report(env1: list[str], env2: list[str]) -> list[tuple[str, str, str]]:
        resources = [container_resource({"Name": f"/c-{i}", "State": {"Status": "running"}, "Config": {
            "Env": env, "Labels": {"envplane.app": "shop", "envplane.env": "test", "envplane.instance": i}}})
            for i, env in (("pr-1", env1), ("pr-2", env2))]
        return [(f.kind, f.subject, f.detail) for f in analyse(resources, admin_digests(admin_env)).findings]

    assert report(pr1, pr2) == []
    leaked = [e if not e.startswith("S3_SECRET") else "S3_SECRET_ACCESS_KEY=s1" for e in pr2]
    assert report(pr1, leaked) == [
        ("shared credential", "S3_SECRET_ACCESS_KEY", "held by shop/test/pr-1 and shop/test/pr-2")]
    admin = [e if not e.startswith("S3_ACCESS") else "S3_ACCESS_KEY_ID=admin-key" for e in pr2]
    assert report(pr1, admin) == [
        ("admin credential", "S3_ACCESS_KEY_ID of container c-pr-2", "shop/test/pr-2 holds an admin credential")]
    admin_url = [*pr2, "LEGACY_DB=postgresql://envplane:pg-admin-pw@db:5432/postgres"]
    assert [k for k, _, _ in report(pr1, admin_url)] == ["admin credential"]
    digests = container_resource({"Config": {"Env": pr1}}).credentials
    assert [name for name, _ in digests] == ["DATABASE_URL", "REDIS_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]
    assert "pw1" not in repr(container_resource({"Config": {"Env": pr1}}))


def test_a_container_compose_left_under_its_temporary_name_is_flagged() -> None:
    """#10.11: `57017a931882_myapp-web-staging`, left by an interrupted recreate."""
    found = analyse([owned("pr-4", name="57017a931882_shop-web-test-pr-4"),
                     owned("pr-4", name="shop-web-test-pr-4"),
                     owned("pr-5", name="shop_web-test-pr-5")]).findings
    assert [(f.kind, f.subject, f.detail) for f in found] == [
        ("half-replaced", "container 57017a931882_shop-web-test-pr-4",
         "shop/test/pr-4: left by an interrupted Compose recreate; the next `envplane up test --pr 4` "
         "puts it right")]
