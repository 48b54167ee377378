"""#10.2: envplane refuses at plan time what Compose (or the engine, on `up`) refuses.

The table is compose_verdicts.yaml; tests/integration/test_compose_agreement.py checks its
`compose` column against docker compose itself. Each refusal names file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envplane.compose.load import build_model
from envplane.errors import SpecError
from tests.support import cli
from tests.unit.compose.helpers import doc
from tests.unit.compose.verdicts import JUDGES, case_id, cases, compose_text

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_envplane_refuses_what_compose_refuses(case: dict[str, Any]) -> None:
    assert case["judge"] in JUDGES
    expected = case.get("envplane", case["compose"])
    if expected != case["compose"]:
        assert case.get("why"), "a case where envplane and Compose differ says why"
    try:
        build_model([doc(compose_text(case))], {}, ())
    except SpecError as exc:
        problem = exc.problems[0]
        assert not expected, f"refused: {problem.render()}"
        assert problem.file is not None and problem.line is not None, problem.render()
        assert problem.field.startswith("services.w."), problem.render()
        assert problem.hint, problem.render()
        assert case.get("message", "") in problem.message, problem.render()
        return
    assert expected, "accepted"


def test_the_table_holds_every_grammar() -> None:
    keys = {key for case in CASES for key in case["service"]}
    assert {"ports", "stop_grace_period", "healthcheck", "mem_limit", "shm_size", "restart",
            "cpus", "stop_signal", "extra_hosts"} <= keys
    assert sum(1 for c in CASES if c["compose"]) > 30 and sum(1 for c in CASES if not c["compose"]) > 60


def test_plan_refuses_the_port_typo_of_the_issue_with_file_line_and_field(tmp_path: Path) -> None:
    """#10.2: `ports: ["8080/8080"]` passed `plan` (the port silently dropped) and `up` then
    stopped the running web container. Now `plan` refuses it (exit 2) and says what was meant."""
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox:stable\n    ports:\n      - \"8080/8080\"\n")
    done = cli("plan", "staging", "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    problem = json.loads(done.stdout)["error"]["problems"][0]
    assert problem["file"].endswith("compose.yaml") and problem["line"] == 5
    assert problem["field"] == "services.web.ports[0]"
    assert problem["message"] == "invalid protocol '8080' in '8080/8080': tcp, udp or sctp"
    assert problem["hint"] == 'a host port maps to a container port with a colon: "8080:8080"'
