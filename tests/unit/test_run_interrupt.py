"""#10.11: Ctrl-C reaches envplane, not the command it runs: a `docker compose up` is let
finish instead of being stopped half-way through replacing a container (a second Ctrl-C
stops it). A terminal sends SIGINT to its whole foreground process group, as here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import envplane

SCRIPT = textwrap.dedent("""\
    import sys, time
    from envplane.run import run
    started = time.monotonic()
    try:
        run(["sh", "-c", "sleep " + sys.argv[1]], what="child")
        print("returned", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.0f} s", flush=True)
    """)


def start(tmp_path: Path, seconds: int) -> subprocess.Popen[str]:
    (tmp_path / "script.py").write_text(SCRIPT)
    src = str(Path(envplane.__file__).resolve().parents[1])  # the envplane under test
    return subprocess.Popen([sys.executable, str(tmp_path / "script.py"), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": src}, start_new_session=True)


def test_the_command_under_way_finishes_and_the_interrupt_goes_on_after_it(tmp_path: Path) -> None:
    proc = start(tmp_path, 4)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert out.splitlines() == ["interrupted after 4 s"]  # the child slept its 4 s out


def test_a_second_ctrl_c_stops_the_command_too(tmp_path: Path) -> None:
    proc = start(tmp_path, 60)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    [line] = out.splitlines()
    assert line.startswith("interrupted after ") and int(line.split()[2]) < 30, line
