"""Pytest configuration shared by all tiers."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import support

_CONFIG_HOME = "XDG_CONFIG_HOME"
_DATA_HOME = "XDG_DATA_HOME"


def pytest_configure(config: pytest.Config) -> None:
    """Key files of the embedded secret store go to ~/.config/envplane/keys, backups without a
    store to ~/.local/share/envplane/backups: give this test run (and the CLI processes it
    starts) a config and a data home of its own, removed at the end."""
    config.stash[_config_home] = os.environ.get(_CONFIG_HOME)
    config.stash[_data_home] = os.environ.get(_DATA_HOME)
    os.environ[_CONFIG_HOME] = tempfile.mkdtemp(prefix="envplane-test-config-")
    os.environ[_DATA_HOME] = tempfile.mkdtemp(prefix="envplane-test-data-")
    # A server a test starts runs no scheduler (it would back up and collect the other tests'
    # instances); the scheduler's own tests run it with ENVPLANE_SCHEDULER=on.
    os.environ.setdefault("ENVPLANE_SCHEDULER", "off")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, key in ((_CONFIG_HOME, _config_home), (_DATA_HOME, _data_home)):
        shutil.rmtree(os.environ[name], ignore_errors=True)
        before = config.stash.get(key, None)
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


_config_home = pytest.StashKey[str | None]()
_data_home = pytest.StashKey[str | None]()


@pytest.fixture(autouse=True)
def _port_blocks_of_this_test() -> Iterator[None]:
    """Port blocks are handed out once per test: a test's teardown frees its blocks."""
    support.GIVEN_BLOCKS.clear()
    yield


def _proxy_address() -> dict[str, str]:
    """A free listen and admin address for a proxy `up` may start."""
    block = support.free_port_block(2)
    return {"ENVPLANE_CADDY_LISTEN": f"127.0.0.1:{block}", "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{block + 1}"}


def _stop_proxy(address: dict[str, str]) -> None:
    from envplane.backends.routing.caddy import CaddyAdmin

    caddy = CaddyAdmin(address["ENVPLANE_CADDY_ADMIN"])
    if caddy.answers():
        caddy.stop()


@pytest.fixture(scope="session", autouse=True)
def _proxy_of_this_session() -> Iterator[None]:
    """A module-scoped fixture brings its instance up before any test's own proxy address
    is set: it gets this session's, stopped at the end — never the default 8088/2019, which
    README's tour needs free (a leaked proxy there failed the tour in a full run)."""
    address = _proxy_address()
    before = {key: os.environ.get(key) for key in address}
    os.environ.update(address)
    yield
    _stop_proxy(address)
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _proxy_of_this_test(request: pytest.FixtureRequest, _port_blocks_of_this_test: None,
                        monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[None]:
    """`up` of a routed env starts the host's proxy when none answers: each test that runs
    the CLI gets a proxy address and an ENVPLANE_HOME of its own (a test may set its own
    instead), and the proxy it started is stopped after it."""
    if "unit" in Path(str(request.node.path)).parts:
        yield
        return
    address = _proxy_address()
    for key, value in address.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ENVPLANE_HOME", str(tmp_path_factory.mktemp("home")))
    yield
    _stop_proxy(address)
