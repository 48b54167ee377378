"""run.Pipeline is `a | b | c` under pipefail: the first stage that failed is named, its
stderr masked; a stage killed by another's exit (SIGPIPE) is not blamed."""

from __future__ import annotations

import pytest

from envplane.errors import BackendError
from envplane.run import Pipeline, Stage
from envplane.secret import Secret


def test_bytes_flow_through_every_stage() -> None:
    with Pipeline([["cat"], ["tr", "a-z", "A-Z"]], feed=True) as pipe:
        assert pipe.stdin is not None and pipe.stdout is not None
        pipe.stdin.write(b"hello")
        pipe.stdin.close()
        assert pipe.stdout.read() == b"HELLO"
        pipe.finish()


def test_a_failing_first_stage_fails_the_pipeline_though_the_last_one_ended_well() -> None:
    password = Secret("hunter2-hunter2")
    stage = Stage(("sh", "-c", "echo partial; echo \"bad $PGPASSWORD\" >&2; exit 3"),
                  {"PGPASSWORD": password.reveal()})
    with Pipeline([stage, ["cat"]], secrets=[password], what="backup of postgres") as pipe:
        assert pipe.stdout is not None
        assert pipe.stdout.read() == b"partial\n"
        with pytest.raises(BackendError) as info:
            pipe.finish()
    assert info.value.message == "backup of postgres: sh failed (exit 3): bad ***"


def test_the_stage_that_went_first_is_named_not_the_one_it_broke() -> None:
    with Pipeline([["yes"], ["sh", "-c", "head -c 10 >/dev/null; exit 4"]], what="p") as pipe:
        assert pipe.stdout is not None
        pipe.stdout.read()
        with pytest.raises(BackendError, match=r"p: sh failed \(exit 4\)"):
            pipe.finish()


def test_a_missing_program_is_named() -> None:
    with pytest.raises(BackendError, match="no-such-tool-xyz is not installed"), \
            Pipeline([["cat"], ["no-such-tool-xyz"]]):
        pass
