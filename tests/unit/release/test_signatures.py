"""Signed approvals: the allowed-signers file, the payload, and real ssh-keygen signatures.

ssh-keygen is a local tool (OpenSSH), not a service: these tests sign and verify for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envplane.errors import SpecError, UsageError
from envplane.release import signatures as sig
from envplane.release.signatures import APPROVAL, REQUEST, AllowedSigners, SignatureError, Subject
from tests.support import need

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
IMAGES = {"backend": {"ref": "shop-backend:v1.0.45", "id": "sha256:" + "a" * 64},
          "db": {"ref": "postgres:16", "id": None}}
SUBJECT = sig.subject_of("shop", "production", "v1.0.45", IMAGES)


@dataclass(frozen=True)
class Keys:
    folder: Path

    def private(self, name: str) -> Path:
        return self.folder / name

    def public(self, name: str) -> str:
        """`ssh-ed25519 AAAA…`: the first two fields of NAME.pub."""
        return " ".join((self.folder / f"{name}.pub").read_text().split()[:2])

    def fingerprint(self, name: str) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-f", str(self.folder / f"{name}.pub")],
                             capture_output=True, text=True, check=True).stdout
        return out.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path_factory.mktemp("keys")
    for name in ("alice", "bob", "mallory", "ci"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)],
                       check=True)
    return Keys(folder)


def allowed(keys: Keys, tmp_path: Path, extra: str = "") -> AllowedSigners:
    text = (f"# who may approve\nalice {keys.public('alice')}\n\nbob {keys.public('bob')} bob@laptop\n"
            + extra)
    path = tmp_path / "approvers"
    path.write_text(text)
    return sig.parse_allowed(text, path)


def environ(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}


# --- the allowed-signers file ---------------------------------------------------------------

def test_git_allowed_signers_lines_parse_with_options_comments_and_several_principals(
    keys: Keys, tmp_path: Path
) -> None:
    signers = allowed(keys, tmp_path, f'carol,carol@example.com namespaces="envplane-request" '
                                      f'{keys.public("ci")}\n')
    assert [(e.principals, e.key_type, e.line) for e in signers.entries] == [
        (("alice",), "ssh-ed25519", 2), (("bob",), "ssh-ed25519", 4),
        (("carol", "carol@example.com"), "ssh-ed25519", 5)]


@pytest.mark.parametrize(("line", "field", "message"), [
    ("*@example.com ssh-ed25519 {alice}", "principals",
     "'*@example.com' is not a principal name: letters, digits and ._@+- only (no patterns: name each person)"),
    ("dave", "key", "needs a key type and a base64 key after the principals"),
    ("dave ssh-dss AAAAB3NzaC1kc3MAAACBAP", "options",
     "unknown option 'ssh-dss' (known: namespaces, valid-after, valid-before); or an unknown key type"),
    ("dave ssh-ed25519 not-base64!", "key", "is not a ssh-ed25519 public key"),
    ("dave ssh-rsa {alice_blob}", "key", "is not a ssh-rsa public key"),
    ("dave cert-authority ssh-ed25519 {alice_blob}", "options",
     "cert-authority is not supported: list each person's own key"),
    ('dave namespaces="git ssh-ed25519 {alice_blob}', "options", "has an unclosed double quote"),
    ("dave namespaces=git ssh-ed25519 {alice_blob}", "options", 'namespaces needs a quoted value: namespaces="…"'),
])
def test_a_bad_line_is_named_with_file_line_and_field(keys: Keys, tmp_path: Path, line: str, field: str,
                                                      message: str) -> None:
    path = tmp_path / "approvers"
    text = f"alice {keys.public('alice')}\n" + line.format(alice=keys.public("alice"),
                                                         alice_blob=keys.public("alice").split()[1])
    with pytest.raises(SpecError) as caught:
        sig.parse_allowed(text, path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field, problem.message) == (path, 2, field, message)


def test_a_file_that_names_nobody_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="names nobody"):
        sig.parse_allowed("# nobody yet\n\n", tmp_path / "approvers")


def test_a_spec_without_approvers_says_how_to_set_them_up(tmp_path: Path) -> None:
    from envplane.spec.load import load_project

    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\n")
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    project = load_project(tmp_path / "envplane.yaml", {})
    with pytest.raises(UsageError) as caught:
        sig.approvers(project, "production")
    assert caught.value.message == ("env production needs an approval, and approvals are signed with SSH "
                                    "keys, but envplane.yaml names no `approvers:` file")
    assert "alice ssh-ed25519 AAAA" in caught.value.hint and "approvers: approvers" in caught.value.hint
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n"
                                            "approvers: people/approvers\n")
    with pytest.raises(SpecError) as missing:
        sig.approvers(load_project(tmp_path / "envplane.yaml", {}))
    [problem] = missing.value.problems
    assert (problem.field, problem.line, problem.file) == ("approvers", 4, tmp_path / "envplane.yaml")
    assert problem.message.startswith(f"cannot read {tmp_path / 'people' / 'approvers'}")


# --- payloads ---------------------------------------------------------------------------------

def test_the_payload_names_app_env_version_images_and_time_canonically() -> None:
    assert SUBJECT.payload("approve", NOW) == (
        '{"action":"approve","app":"shop","at":"2026-11-30T12:00:00Z","env":"production",'
        '"images":{"backend":{"id":"sha256:' + "a" * 64 + '","ref":"shop-backend:v1.0.45"},'
        '"db":{"id":null,"ref":"postgres:16"}},"version":"v1.0.45"}')
    assert sig.check_payload(SUBJECT.payload("approve", NOW), SUBJECT, "approve", NOW) is None


@pytest.mark.parametrize(("other", "action", "signed_at", "reason"), [
    (Subject("shop", "production", "v1.0.44", SUBJECT.images), "approve", NOW,
     "signed for version v1.0.44, not v1.0.45"),
    (Subject("shop", "staging", "v1.0.45", SUBJECT.images), "approve", NOW,
     "signed for env staging, not production"),
    (Subject("shed", "production", "v1.0.45", SUBJECT.images), "approve", NOW,
     "signed for app shed, not shop"),
    (sig.subject_of("shop", "production", "v1.0.45", {**IMAGES, "backend": {"ref": "shop-backend:v1.0.45",
                                                                            "id": "sha256:" + "b" * 64}}),
     "approve", NOW, "signed for other images than those of v1.0.45"),
    (SUBJECT, "promote", NOW, "signed for 'promote', not 'approve'"),
    (SUBJECT, "approve", NOW - timedelta(hours=25),
     "signed at 2026-11-29T11:00:00Z, more than 24 h ago: approve again"),
    (SUBJECT, "approve", NOW + timedelta(minutes=10), "signed for a time to come (2026-11-30T12:10:00Z)"),
])
def test_a_payload_for_anything_else_does_not_count(other: Subject, action: str, signed_at: datetime,
                                                    reason: str) -> None:
    assert sig.check_payload(other.payload(action, signed_at), SUBJECT, "approve", NOW) == reason


def test_an_approval_within_the_window_and_the_clock_skew_counts() -> None:
    for at in (NOW - timedelta(hours=23, minutes=59), NOW + timedelta(minutes=4)):
        assert sig.check_payload(SUBJECT.payload("approve", at), SUBJECT, "approve", NOW) is None
    assert sig.check_payload("not json", SUBJECT, "approve", NOW) == "the signed payload is not an envplane approval"


# --- signing and verifying with ssh-keygen ---------------------------------------------------------

def test_a_signature_proves_the_listed_principal_and_its_key(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path)
    payload = SUBJECT.payload("approve", NOW)
    signed, signer = sig.sign_listed(payload, APPROVAL, keys.private("bob"), signers, environ(tmp_path))
    assert signer == sig.Signer(("bob",), keys.fingerprint("bob"))
    assert sig.fingerprint(sig.signature_key(signed.signature)) == keys.fingerprint("bob")
    assert signed.payload == payload and signed.signature.startswith("-----BEGIN SSH SIGNATURE-----")


def test_a_signature_over_other_bytes_or_in_another_namespace_proves_nobody(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path)
    signed = sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("bob"), signers, environ(tmp_path))
    edited = sig.Signed(signed.payload.replace("v1.0.45", "v1.0.46"), signed.signature)
    assert sig.verify(edited, APPROVAL, signers, environ(tmp_path)).principals == ()
    assert sig.verify(signed, REQUEST, signers, environ(tmp_path)).principals == ()
    assert sig.verify(sig.Signed(signed.payload, "garbage"), APPROVAL, signers, environ(tmp_path)).principals == ()


def test_a_key_not_in_the_file_is_refused_by_its_fingerprint(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path)
    with pytest.raises(SignatureError) as caught:
        sig.sign_listed(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("mallory"), signers,
                        environ(tmp_path))
    assert caught.value.message == (f"key {keys.fingerprint('mallory')} is not among the approvers in "
                                    f"{tmp_path / 'approvers'}")


def test_one_key_listed_under_two_names_proves_both(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path, f"alice2 {keys.public('alice')}\n")
    _, signer = sig.sign_listed(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("alice"), signers,
                                environ(tmp_path))
    assert signer.principals == ("alice", "alice2")


def test_a_namespaces_option_keeps_a_bots_key_from_approving(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path, f'ci namespaces="{REQUEST}" {keys.public("ci")}\n')
    _, signer = sig.sign_listed(SUBJECT.payload("promote", NOW), REQUEST, keys.private("ci"), signers,
                                environ(tmp_path))
    assert signer.principals == ("ci",)
    with pytest.raises(SignatureError, match=r"listed in .* as ci, but its envplane-approval signature "
                                             "does not verify"):
        sig.sign_listed(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("ci"), signers,
                        environ(tmp_path))


def test_without_key_the_default_is_home_ssh_id_ed25519(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path)
    with pytest.raises(UsageError, match="no SSH key to sign with"):
        sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, None, signers, environ(tmp_path))
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    for suffix in ("", ".pub"):
        shutil.copy(keys.private("alice").with_name("alice" + suffix), ssh / f"id_ed25519{suffix}")
    signed = sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, None, signers, environ(tmp_path))
    assert sig.verify(signed, APPROVAL, signers, environ(tmp_path)).principals == ("alice",)
    with pytest.raises(UsageError, match="no key file"):
        sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, tmp_path / "nope", signers, environ(tmp_path))


@pytest.fixture()
def agent(keys: Keys, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An ssh-agent of this test holding mallory's key, then bob's."""
    socket = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-a", str(socket)], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    env = {**environ(tmp_path), "SSH_AUTH_SOCK": str(socket)}
    try:
        for name in ("mallory", "bob"):
            subprocess.run(["ssh-add", "-q", str(keys.private(name))], env=env, check=True, capture_output=True)
        yield env
    finally:
        os.kill(pid, 15)


def test_without_key_the_agents_first_listed_key_signs(keys: Keys, tmp_path: Path,
                                                       agent: dict[str, str]) -> None:
    signers = allowed(keys, tmp_path)
    _, signer = sig.sign_listed(SUBJECT.payload("approve", NOW), APPROVAL, None, signers, agent)
    assert signer == sig.Signer(("bob",), keys.fingerprint("bob"))  # mallory's comes first, unlisted


def test_a_stored_approval_is_checked_again_against_todays_file(keys: Keys, tmp_path: Path) -> None:
    signers = allowed(keys, tmp_path)
    signed = sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("bob"), signers, environ(tmp_path))
    check = sig.check_approval("bob", NOW, signed.payload, signed.signature, SUBJECT, signers,
                               environ(tmp_path), NOW)
    assert (check.signer.principals, check.problem) == (("bob",), None)
    without_bob = tmp_path / "later" / "approvers"
    without_bob.parent.mkdir()
    without_bob.write_text(f"alice {keys.public('alice')}\n")
    removed = sig.check_approval("bob", NOW, signed.payload, signed.signature, SUBJECT,
                                 sig.parse_allowed(without_bob.read_text(), without_bob), environ(tmp_path), NOW)
    assert removed.problem == (f"the signature (key {keys.fingerprint('bob')}) does not verify for anyone in "
                               f"{without_bob}")
    unsigned = sig.check_approval("bob", NOW, None, None, SUBJECT, signers, environ(tmp_path), NOW)
    assert unsigned.problem == "not signed (recorded by an envplane before signed approvals)"
