"""#14: schemathesis against a real `envplane serve`, from its own /api/openapi.json: every
check, no 5xx, no answer outside the document (status, content type, headers, schema).

It runs with a token that may read: requests that would change something are refused (403)
before they start anything, so fuzzing never deploys. The streaming routes (a job's events,
a service's log) are left out: their answer is a stream without end, not a document.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.api_kit import make_world, serving

CONFIG = """\
[parameters]
"path.app" = "{app}"

# A request the schema admits can still name what this app does not have: env test's plan
# without its pull request (400, as the CLI), or env local when no service has a `dev`
# command (422, the app's spec).
[[operations]]
include-path = "/api/v1/apps/{{app}}/envs/{{env}}/plan"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "422"]
"""


def test_the_api_answers_every_request_as_its_document_says(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(app=world.app))
    with serving(world) as served:
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
             f"{served.base}/api/openapi.json", "--checks", "all", "--exclude-path-regex", "/events$|/logs/",
             "-H", f"Authorization: Bearer {world.tokens['reader']}", "--max-examples", "25", "--workers", "1",
             "--phases", "examples,coverage,fuzzing", "--seed", "14", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
        log = served.log.read_text()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in log, log[-4000:]
