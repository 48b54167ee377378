"""#10.5, #10.8: waiting for health says what it waits on, fails fast when the answer cannot
change, names the real command in its hints, and checks the public port.

The wait is driven here with a clock, a sleep and the engine's answers given as data (the
same loop runs against a real engine in tests/integration/test_up_progress.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from envplane.backends.runtime.facts import ContainerFact, parse_inspect
from envplane.backends.runtime.health import HealthCheck, checks_for, wait_healthy
from envplane.errors import BackendError
from envplane.secret import Secret, masking
from envplane.spec.load import load_project
from envplane.target import resolve


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fact(state: str = "running", health: str | None = None, exit_code: int = 0, restarts: int = 0,
         health_output: str = "") -> ContainerFact:
    return ContainerFact("c1", "shop-web-staging", state, health,
                         {"com.docker.compose.service": "web"}, exit_code=exit_code, restarts=restarts,
                         health_output=health_output)


def answers(*seq: tuple[bool, str]) -> Callable[[str], tuple[bool, str]]:
    """A probe that gives these answers in turn, then repeats the last one."""
    it: Iterator[tuple[bool, str]] = iter(seq)
    last = [seq[-1]]

    def probe(url: str) -> tuple[bool, str]:
        last[0] = next(it, last[0])
        return last[0]

    return probe


HTTP = HealthCheck("web", "http", "http://127.0.0.1:18080/health", logs="envplane logs staging web")


def test_a_404_on_every_try_fails_within_20_s_with_the_status_and_path_named() -> None:
    clock = Clock()
    seen: list[tuple[str, str]] = []
    with pytest.raises(BackendError) as failed:
        wait_healthy([HTTP], lambda: [fact()], 120, lambda s, d: seen.append((s, d)), clock, clock.sleep,
                     probe=answers((False, "HTTP 404")))
    assert 20 <= clock.now < 22
    assert failed.value.message == "web answers GET /health with HTTP 404 on every try for 20 s"
    assert failed.value.hint == ("is /health its health path? (services.web.health in envplane.yaml); "
                                 "see why: envplane logs staging web")
    assert ("web", "GET /health → HTTP 404") in seen


def test_a_404_that_turns_into_200_is_healthy() -> None:
    clock = Clock()
    wait_healthy([HTTP], lambda: [fact()], 120, clock=clock, sleep=clock.sleep,
                 probe=answers(*[(False, "HTTP 404")] * 10, (True, "HTTP 200")))
    assert clock.now < 20


def test_an_answer_that_can_change_waits_the_whole_timeout_and_names_the_real_command() -> None:
    clock = Clock()
    with pytest.raises(BackendError) as failed:
        wait_healthy([HTTP], lambda: [fact()], 60, clock=clock, sleep=clock.sleep,
                     probe=answers((False, "HTTP 503")))
    assert clock.now >= 60
    assert failed.value.message == "not healthy after 60 s: web (GET /health → HTTP 503)"
    assert failed.value.hint == "see why: envplane logs staging web"
    assert "ENV" not in failed.value.hint and "SERVICE" not in failed.value.hint


def test_a_container_that_exited_fails_at_once_with_its_code_and_last_lines_masked() -> None:
    clock = Clock()
    with masking():
        password = Secret("hunter2-and-more")
        tail = f"connecting with {password.reveal()}\nError: port 8080 in use\n"
        with pytest.raises(BackendError) as failed:
            wait_healthy([HTTP], lambda: [fact("exited", exit_code=3)], 120, clock=clock, sleep=clock.sleep,
                         probe=answers((False, "connection refused")), tail=lambda f: tail)
    assert clock.now < 1
    assert failed.value.message == ("web exited with code 3 before it was healthy; its last lines:\n"
                                    "  connecting with ***\n  Error: port 8080 in use")
    assert failed.value.hint == "see why: envplane logs staging web"


def test_a_container_restarting_in_a_loop_fails_without_waiting_the_timeout() -> None:
    clock = Clock()
    counts = iter([0, 0, 1, 1, 2, 2, 3])

    def containers() -> list[ContainerFact]:
        n = next(counts, 3)
        return [fact("restarting" if n % 2 else "running", exit_code=1, restarts=n)]

    with pytest.raises(BackendError) as failed:
        wait_healthy([HTTP], containers, 120, clock=clock, sleep=clock.sleep,
                     probe=answers((False, "connection refused")), tail=lambda f: "boom\n")
    assert clock.now < 10
    assert failed.value.message.startswith("web is restarting in a loop (2 restarts while waiting, "
                                           "last exit code 1); its last lines:\n  boom")


def test_an_unhealthy_healthcheck_names_its_last_output_masked() -> None:
    clock = Clock()
    check = HealthCheck("web", "healthcheck", logs="envplane logs staging web")
    with masking():
        token = Secret("tok-123456")
        with pytest.raises(BackendError) as failed:
            wait_healthy([check], lambda: [fact(health="unhealthy",
                                                health_output=f"curl: 401 with {token.reveal()}")],
                         30, clock=clock, sleep=clock.sleep)
    assert failed.value.message == "not healthy after 30 s: web (healthcheck: unhealthy — curl: 401 with ***)"


CLOSED = HealthCheck("web", "tcp", "tcp://127.0.0.1:18080", healthcheck=True, port=9090,
                     logs="envplane logs staging web")


def test_a_public_port_that_closes_every_connection_after_the_healthcheck_passed_fails_fast() -> None:
    clock = Clock()
    seen: list[str] = []
    with pytest.raises(BackendError) as failed:
        wait_healthy([CLOSED], lambda: [fact(health="healthy")], 120, lambda s, d: seen.append(d), clock,
                     clock.sleep, probe=answers((False, "closed at once")))
    assert 20 <= clock.now < 22
    assert failed.value.message == ("web is healthy but its public port 9090 (host port 18080) closes "
                                    "every connection: nothing listens on container port 9090")
    assert failed.value.hint == ("set services.web.public.port in envplane.yaml to the port web "
                                 "listens on; see why: envplane logs staging web")
    assert "port 18080 → closed at once" in seen


def test_the_public_port_is_not_probed_before_the_healthcheck_passes() -> None:
    clock = Clock()
    probed: list[str] = []
    states = iter(["starting", "starting", "healthy"])

    def probe(url: str) -> tuple[bool, str]:
        probed.append(url)
        return True, "accepts connections"

    wait_healthy([CLOSED], lambda: [fact(health=next(states, "healthy"))], 120, clock=clock,
                 sleep=clock.sleep, probe=probe)
    assert probed == ["tcp://127.0.0.1:18080"]


SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
services:
  web: {public: 8080, health: /health}
  admin: {public: {port: 9000, path: /admin}}
  api: {public: {port: 7000, path: /api}}
  worker: {}
environments:
  staging: {port_base: 18000}
"""
COMPOSE = """\
services:
  web: {image: app, ports: ["8080:8080"]}
  admin: {image: app, ports: ["9000:9000"]}
  api:
    image: app
    ports: ["7000:7000"]
    healthcheck: {test: [CMD, /bin/check]}
  worker: {image: app}
"""


def test_every_public_service_is_checked_on_its_public_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(SPEC)
    target = resolve(load_project(tmp_path / "envplane.yaml", {}), "staging")
    checks = {c.service: c for c in checks_for(target)}
    assert set(checks) == {"web", "admin", "api"}
    web_port = target.service("web").public_host_port
    admin_port = target.service("admin").public_host_port
    api_port = target.service("api").public_host_port
    assert checks["web"] == HealthCheck("web", "http", f"http://127.0.0.1:{web_port}/health", port=8080,
                                        logs="envplane logs staging web")
    # No health path: the port must accept connections.
    assert checks["admin"] == HealthCheck("admin", "tcp", f"tcp://127.0.0.1:{admin_port}", port=9000,
                                          logs="envplane logs staging admin")
    # A healthcheck first, then the public port.
    assert checks["api"] == HealthCheck("api", "tcp", f"tcp://127.0.0.1:{api_port}", healthcheck=True,
                                        port=7000, logs="envplane logs staging api")
    pr = resolve(load_project(tmp_path / "envplane.yaml", {}), "test", 7)
    assert {c.service: c.logs for c in checks_for(pr)}["web"] == "envplane logs test web --pr 7"


RECORDED = """[{"Id": "abc", "Name": "/shop-web-staging",
  "State": {"Status": "exited", "ExitCode": 3, "RestartCount": 2,
            "Health": {"Status": "unhealthy", "Log": [
               {"ExitCode": 1, "Output": "old"},
               {"ExitCode": 1, "Output": "curl: (7) Failed to connect\\n"}]}},
  "Config": {"Labels": {"com.docker.compose.service": "web"}}}]"""


def test_inspect_gives_exit_code_restarts_and_the_last_healthcheck_output() -> None:
    [parsed] = parse_inspect(RECORDED)
    assert (parsed.exit_code, parsed.restarts, parsed.health_output) == (3, 2, "curl: (7) Failed to connect")


PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:AA69 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3736070 1
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3736071 1
   2: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3736072 1
   3: 0200190A:1F90 0300190A:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 3736073 1
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 0
"""


def test_listening_ports_leave_out_loopback_and_connections() -> None:
    from envplane.backends.runtime.facts import listening

    # 127.0.0.11:43625 is Docker's DNS in every container; 127.0.0.1:9090 is reachable only inside.
    assert listening(PROC_TCP) == {8080}
    assert listening(PROC_TCP6) == {8081}


LISTENS_8080 = HealthCheck("web", "tcp", "tcp://127.0.0.1:18090", port=9090, logs="envplane logs staging web")


def test_a_container_that_listens_on_another_port_than_its_public_one_fails_within_20_s() -> None:
    clock = Clock()
    with pytest.raises(BackendError) as failed:
        wait_healthy([LISTENS_8080], lambda: [fact()], 120, clock=clock, sleep=clock.sleep,
                     probe=answers((False, "closed at once")), listens=lambda f: {8080})
    assert 20 <= clock.now < 22
    assert failed.value.message == "web listens on port 8080, not on its public port 9090"
    assert failed.value.hint == ("set services.web.public.port to 8080 in envplane.yaml (or make web "
                                 "listen on 9090); see why: envplane logs staging web")


def test_a_container_that_listens_on_nothing_yet_is_still_starting() -> None:
    clock = Clock()
    with pytest.raises(BackendError, match="not healthy after 60 s: web"):
        wait_healthy([LISTENS_8080], lambda: [fact()], 60, clock=clock, sleep=clock.sleep,
                     probe=answers((False, "closed at once")), listens=lambda f: set())


def test_an_unpublished_public_port_is_probed_on_the_container_address() -> None:
    clock = Clock()
    check = HealthCheck("web", "tcp", "tcp://{container}:9090", port=9090)
    asked: list[str] = []

    def probe(url: str) -> tuple[bool, str]:
        asked.append(url)
        return True, "accepts connections"

    running = ContainerFact("c1", "shop-web-staging", "running", None, {"com.docker.compose.service": "web"},
                            ips=("172.25.0.2",))
    wait_healthy([check], lambda: [running], 60, clock=clock, sleep=clock.sleep, probe=probe)
    assert asked == ["tcp://172.25.0.2:9090"]


def test_every_health_failure_ends_with_the_containers_last_log_lines_masked() -> None:
    """#10.5: the error shows why, not only where to look."""
    with masking():
        token = Secret("tok-987654321")
        logs = f"GET /healthz 404\nstarted with {token.reveal()}\n"
        clock = Clock()
        with pytest.raises(BackendError) as settled:
            wait_healthy([HTTP], lambda: [fact()], 120, clock=clock, sleep=clock.sleep,
                         probe=answers((False, "HTTP 404")), tail=lambda f: logs)
        clock = Clock()
        with pytest.raises(BackendError) as timed_out:
            wait_healthy([HTTP], lambda: [fact()], 30, clock=clock, sleep=clock.sleep,
                         probe=answers((False, "HTTP 503")), tail=lambda f: logs)
    assert settled.value.message == ("web answers GET /health with HTTP 404 on every try for 20 s; its last "
                                     "lines:\n  GET /healthz 404\n  started with ***")
    assert timed_out.value.message == ("not healthy after 30 s: web (GET /health → HTTP 503)\n"
                                       "web's last lines:\n  GET /healthz 404\n  started with ***")
    assert timed_out.value.hint == "see why: envplane logs staging web"
