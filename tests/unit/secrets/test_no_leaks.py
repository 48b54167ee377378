"""No secret value in an error message, a hint, a repr or a log line, whatever fails."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.file import DATA_FILE, KEY_ENV, FileSecretStore, key_path, new_key
from envplane.backends.secrets.sops import SopsConfig, SopsSecretStore
from envplane.backends.secrets.vault import VaultConfig, VaultSecretStore
from envplane.errors import EnvplaneError
from envplane.secret import Secret, mask_known, masking

VALUE = "hunter2-value-that-must-never-show"
PATH = "secret/data/finance-report/staging/backend"
APP = "finance-report"


def failures(tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Each way a store can fail while VALUE is in play."""
    key = new_key().reveal()
    good = FileSecretStore.open(tmp_path / "good", {KEY_ENV: key}, APP)
    good.write(PATH, {"DB_PASSWORD": Secret(VALUE)})

    def wrong_key() -> object:
        return FileSecretStore.open(tmp_path / "good", {KEY_ENV: new_key().reveal()}, APP).read(PATH)

    def open_key_file() -> object:
        environ = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
        FileSecretStore.open(tmp_path / "loose", environ, APP)
        os.chmod(key_path(APP, environ), 0o644)
        return FileSecretStore.open(tmp_path / "loose", environ, APP)

    def corrupt() -> object:
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / DATA_FILE).write_bytes(VALUE.encode())
        return FileSecretStore.open(tmp_path / "bad", {KEY_ENV: key}, APP).read(PATH)

    def key_is_the_value() -> object:
        return FileSecretStore.open(tmp_path / "k", {KEY_ENV: VALUE}, APP)

    def plain_string() -> object:
        good.write(PATH, {"DB_PASSWORD": VALUE})  # type: ignore[dict-item]
        return None

    def vault_unreachable() -> object:
        config = VaultConfig(addr="http://127.0.0.1:9", token=Secret(VALUE), timeout=2)
        VaultSecretStore(config).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    def sops_missing() -> object:
        config = SopsConfig(tmp_path / "sops", ("age1x",), {}, binary=str(tmp_path / "no-sops"))
        SopsSecretStore(config).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    def sops_no_recipient() -> object:
        SopsSecretStore(SopsConfig(tmp_path / "sops", (), {})).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    return {f.__name__: f for f in [wrong_key, open_key_file, corrupt, key_is_the_value, plain_string,
                                    vault_unreachable, sops_missing, sops_no_recipient]}


def test_no_value_in_errors_or_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name, fail in failures(tmp_path).items():
        with pytest.raises(EnvplaneError) as caught:
            fail()
        error = caught.value
        shown = f"{error} {error!r} {error.message} {error.hint} {[p.render() for p in error.problems]}"
        assert VALUE not in shown, name
        assert error.__cause__ is None or VALUE not in str(error.__cause__), name
    assert VALUE not in caplog.text


def test_returned_objects_print_masked(tmp_path: Path) -> None:
    environ = {KEY_ENV: new_key().reveal(), "VAULT_TOKEN": VALUE, "SOPS_AGE_RECIPIENTS": "age1x",
               "VAULT_SECRET_ID": VALUE}
    store = open_secret_store("file", tmp_path, environ, APP)
    store.write(PATH, {"DB_PASSWORD": Secret(VALUE)})
    read = store.read(PATH)
    objects: list[object] = [
        read, read["DB_PASSWORD"], store, store.list("finance-report"),
        open_secret_store("vault", tmp_path, environ, APP), VaultConfig.from_environ(environ),
        open_secret_store("sops", tmp_path, environ, APP), SopsConfig.from_environ(tmp_path, environ),
    ]
    for thing in objects:
        for shown in (str(thing), repr(thing), f"{thing}", f"{thing!r}"):
            assert VALUE not in shown and environ[KEY_ENV] not in shown
    assert "***" in repr(read) and f"{read['DB_PASSWORD']}" == "***"


# ---- what other programs print, and everything envplane writes and shows (#9.15)

HOSTILE = "p@ss w/rd$1&\"q\"é"  # changes under URL-, JSON- and Compose-escaping


def test_a_failing_process_that_prints_known_values_shows_the_mask() -> None:
    """The values come in through the environment, as a hook gets them; the process prints
    them as is, URL-encoded, JSON-escaped, with `$` doubled and one line of a longer value."""
    from urllib.parse import quote, quote_plus

    from envplane.errors import BackendError
    from envplane.run import run

    shown = {"RAW": VALUE, "RAW2": HOSTILE, "URL": quote(HOSTILE, safe=""), "PLUS": quote_plus(HOSTILE),
             "JSON": json.dumps(HOSTILE)[1:-1], "COMPOSE": HOSTILE.replace("$", "$$"), "LINE": "second-line-of-it"}
    with masking():
        made = [Secret(v) for v in (VALUE, HOSTILE, "first\nsecond-line-of-it")]  # remembered: made in masking()
        assert all(made)
        with pytest.raises(BackendError) as caught:
            run(["sh", "-c", " ; ".join(f'echo "{k}=${k}" >&2' for k in shown) + " ; exit 3"],
                env={"PATH": os.environ["PATH"], **shown}, what="a hook")
    message = caught.value.message
    assert message.startswith("a hook failed (exit 3): ")
    for name, value in shown.items():
        assert f"{name}=***" in message and value not in message, name


def test_nothing_is_remembered_outside_masking() -> None:
    Secret(VALUE)
    assert mask_known(f"x {VALUE} y") == f"x {VALUE} y"
    assert mask_known(f"x {VALUE} y", [Secret(VALUE)]) == "x *** y"
    with masking():
        Secret("ab")  # too short to mask in other programs' output: it would garble every message
        assert mask_known("tab ab") == "tab ab"


def test_envplane_folder_state_store_audit_log_and_cli_errors_hold_no_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from envplane.cli.output import report_error
    from envplane.errors import BackendError
    from envplane.provision import write_env_file
    from envplane.state import audit
    from envplane.state.db import open_store
    from tests.unit.state.stores import TEST_KEY

    environ = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    with masking():
        secrets = open_secret_store("file", tmp_path, environ, APP)
        secrets.write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        write_env_file(tmp_path / ".envplane" / "instances" / "staging" / "staging" / "backend.env",
                       secrets.read(PATH))
        store = open_store(tmp_path, audit_key=TEST_KEY)
        try:
            audit.record(store, "alice", "up", APP, "staging", "staging", "failed",
                         {"error": f"hook printed {VALUE}", "steps": [f"url=postgres://u:{VALUE}@h/db"]})
            rows = audit.entries(store)
        finally:
            store.close()
        failure = BackendError(f"a hook failed (exit 3): {VALUE}", f"hint with {VALUE}")
        assert report_error(failure, as_json=False) == 1
        assert report_error(failure, as_json=True) == 1
    shown = capsys.readouterr()
    assert "a hook failed (exit 3): ***" in shown.err and json.loads(shown.out)["error"]["problems"][0][
        "message"] == "a hook failed (exit 3): ***"
    assert VALUE not in shown.out + shown.err + repr(rows)
    assert rows[-1].detail == {"error": "hook printed ***", "steps": ["url=postgres://u:***@h/db"]}

    files = [p for p in (tmp_path / ".envplane").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {".gitignore", "state.db", "secrets.enc", "backend.env"}
    for path in files:
        if path.suffix != ".env":  # the env file is the one place meant to hold the value
            assert VALUE.encode() not in path.read_bytes(), path
