"""#14: `envplane serve --install-unit` writes a systemd unit that runs the server, and no
secret of the environment goes into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cli

SECRETS = {"ENVPLANE_STATE_URL": "postgresql://envplane:pw-in-the-url-123@db/envplane",
           "GITHUB_WEBHOOK_SECRET": "hook-secret-456", "ENVPLANE_AUDIT_KEY": "YXVkaXQta2V5LTc4OQ=="}


def test_install_unit_writes_a_unit_without_secrets(tmp_path: Path) -> None:
    unit = tmp_path / "envplane.service"
    environ = {**SECRETS, "ENVPLANE_SERVER_HOME": str(tmp_path / "home")}
    done = cli("serve", "--install-unit", "--unit-file", str(unit), "--port", "9999", cwd=tmp_path, env=environ)
    assert done.returncode == 0, done.stderr
    text = unit.read_text()
    [start] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert start.endswith("-m envplane serve --host 127.0.0.1 --port 9999")
    assert f"Environment=ENVPLANE_SERVER_HOME={tmp_path / 'home'}" in text
    assert "EnvironmentFile=-/etc/envplane/serve.env" in text
    for value in SECRETS.values():
        assert value not in text and value not in done.stderr + done.stdout
    assert "systemctl" in done.stderr and "daemon-reload" in done.stderr
    assert cli("serve", "--install-unit", "--unit-file", str(unit), "--port", "9999", cwd=tmp_path,
               env=environ).returncode == 0  # the same unit again: nothing to object to


def test_a_different_unit_is_replaced_only_with_force(tmp_path: Path) -> None:
    unit = tmp_path / "envplane.service"
    unit.write_text("[Unit]\nDescription=mine\n")
    done = cli("serve", "--install-unit", "--unit-file", str(unit), cwd=tmp_path)
    assert done.returncode == 2 and "--force" in done.stderr
    assert unit.read_text() == "[Unit]\nDescription=mine\n"
    assert cli("serve", "--install-unit", "--unit-file", str(unit), "--force", cwd=tmp_path).returncode == 0
    assert "--port 8470" in unit.read_text()


def test_the_servers_log_lines_mask_every_secret_the_process_met(capfd: pytest.CaptureFixture[str]) -> None:
    """Ours and uvicorn's: a traceback or a message carrying a secret value printed it in
    clear to the journal; they are masked as the CLI masks its output."""
    import logging

    from envplane.cli import serve_commands
    from envplane.secret import Secret, masking

    value, hook = "leaked-value-0123456789", "hook-secret-from-the-env-456"
    names = ("envplane", "uvicorn", "uvicorn.error")
    before = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    try:
        with masking():
            Secret(value)
            serve_commands._log_to_stderr({"GITHUB_WEBHOOK_SECRET": hook})
            try:
                raise RuntimeError(f"could not use {value}")
            except RuntimeError:
                logging.getLogger("envplane.server").exception("job failed with %s", value)
            logging.getLogger("uvicorn.error").error("uvicorn saw %s and %s", value, hook)
        said = capfd.readouterr().err
    finally:
        for name, (handlers, propagate) in before.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
    assert "job failed with ***" in said and "RuntimeError: could not use ***" in said
    assert "uvicorn saw *** and ***" in said
    assert value not in said and hook not in said
