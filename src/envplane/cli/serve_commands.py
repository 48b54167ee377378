"""`envplane serve`: the server (HTTP API, webhook, dashboard, MCP) in one process."""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from envplane.cli.main import app
from envplane.cli.output import err
from envplane.errors import EnvplaneError, UsageError
from envplane.private import write_in_place
from envplane.secret import MaskedFormatter, Secret

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (keep 127.0.0.1 behind a "
                                      "reverse proxy that terminates TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8470,
    install_unit: Annotated[bool, typer.Option(
        "--install-unit", help="Write a systemd unit that runs this server, instead of running it.")] = False,
    unit_file: Annotated[Path | None, typer.Option(
        "--unit-file", help="Where --install-unit writes (default: /etc/systemd/system/envplane.service "
        "as root, else ~/.config/systemd/user/envplane.service).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="--install-unit: replace a different unit.")] = False,
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /api/openapi.json), /healthz and GitHub's
    webhooks for the apps registered with `envplane apps add`."""
    if install_unit:
        _install_unit(host, port, unit_file, force)
        return
    import uvicorn

    from envplane.server.app import create_app

    if host not in LOOPBACK:
        err.print(f"[yellow]warning:[/] serving on {host}: tokens and passwords travel in clear unless a "
                  "reverse proxy terminates TLS in front (README: envplane serve)")
    _log_to_stderr(os.environ)
    application = create_app(os.environ)
    # Bound here, before saying where it serves: uvicorn would log a bind failure in its own
    # words after that line and exit 3.
    listening = _listen(host, port)
    err.print(f"envplane serve: http://{_url_host(host)}:{port}/ (API /api/v1, OpenAPI /api/openapi.json)")
    # log_config=None: uvicorn's lines go through the masked handler of _log_to_stderr.
    config = uvicorn.Config(application, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            lifespan="on", log_config=None)
    with listening:
        uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        raise EnvplaneError(f"cannot serve on {host}:{port}: {error.strerror or error}",
                            "pick another --port, or stop what listens there") from None


# The server's own secrets, given in its environment: remembered so its log masks them too
# (a Vault token is remembered by the Vault store when it is used).
SECRET_VARIABLES = ("GITHUB_WEBHOOK_SECRET", "ENVPLANE_AUDIT_KEY", "ENVPLANE_SECRET_KEY")


def _log_to_stderr(environ: Mapping[str, str]) -> None:
    """The server's own lines (webhook deliveries and refusals, jobs that failed) and
    uvicorn's, masked, on stderr, which systemd's journal keeps; uvicorn's access log stays off."""
    for name in SECRET_VARIABLES:
        if environ.get(name):
            Secret(environ[name])  # remembered while the command masks (cli.main.run)
    try:
        password = urlsplit(environ.get("ENVPLANE_STATE_URL", "")).password
    except ValueError:  # a URL the store will refuse, in its own words
        password = None
    if password:
        Secret(password)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskedFormatter("%(message)s"))
    for name in ("envplane", "uvicorn"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False  # once: a library's root handler (the MCP SDK's) would print each twice
    logging.getLogger("envplane").setLevel(logging.INFO)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def unit_text(host: str, port: int, environ: dict[str, str], python: str = sys.executable) -> str:
    """A systemd unit running `envplane serve` with this Python, as this user, with the
    server's home and state URL taken from an environment file (never written into the unit)."""
    home = environ.get("ENVPLANE_SERVER_HOME", "")
    command = shlex.join([python, "-m", "envplane", "serve", "--host", host, "--port", str(port)])
    return "\n".join([
        "[Unit]",
        "Description=envplane server (API, webhooks, dashboard, MCP)",
        "After=network-online.target docker.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={command}",
        # Secrets (GITHUB_WEBHOOK_SECRET, ENVPLANE_STATE_URL with its password, ENVPLANE_AUDIT_KEY)
        # go in this root-owned 0600 file, not in the unit, which anyone may read.
        "EnvironmentFile=-/etc/envplane/serve.env",
        *([f"Environment={shlex.quote('ENVPLANE_SERVER_HOME=' + home)}"] if home else []),
        "Restart=on-failure",
        "RestartSec=5",
        # Running deploys get this long to end before systemd stops the server.
        "TimeoutStopSec=620",
        "KillMode=mixed",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target" if os.geteuid() == 0 else "WantedBy=default.target",
        "",
    ])


def _install_unit(host: str, port: int, unit_file: Path | None, force: bool) -> None:
    root = os.geteuid() == 0
    path = unit_file or (Path("/etc/systemd/system/envplane.service") if root
                         else Path.home() / ".config/systemd/user/envplane.service")
    text = unit_text(host, port, dict(os.environ))
    if path.exists() and path.read_text(encoding="utf-8") != text and not force:
        raise UsageError(f"{path} exists and differs from the unit this would write",
                         "pass --force to replace it, or --unit-file PATH to write elsewhere")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_in_place(path, text)
    except OSError as error:
        raise EnvplaneError(f"cannot write {path}: {error.strerror or error}",
                            "run as root for /etc/systemd/system, or pass --unit-file PATH") from None
    user = "" if root else " --user"
    err.print(f"wrote {path}; start it with: systemctl{user} daemon-reload && "
              f"systemctl{user} enable --now {path.stem}")
