"""Approvals the server signs for its users (issue 14): what they prove, and what they never do.

Real ssh-keygen signatures, as in test_signatures.py. The server's key is listed for each
user it may sign for, restricted to the namespace `envplane-server`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from envplane.release import signatures as sig
from envplane.release.gates import Facts, GateConfig, evaluate
from envplane.release.signatures import APPROVAL, SERVER, Approval, ServerVouch, SignatureError
from tests.support import need
from tests.unit.release.test_signatures import SUBJECT, Keys, environ

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """alice's, bob's and mallory's own keys; `ci` is the server's."""
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path_factory.mktemp("keys")
    for name in ("alice", "bob", "mallory", "ci"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)],
                       check=True)
    return Keys(folder)


def server_line(keys: Keys, *users: str, namespaces: str | None = SERVER) -> str:
    option = f' namespaces="{namespaces}"' if namespaces else ""
    return f"{','.join(users)}{option} {keys.public('ci')} envplane-server\n"


def signers_with(keys: Keys, tmp_path: Path, extra: str) -> sig.AllowedSigners:
    text = f"alice {keys.public('alice')}\nbob {keys.public('bob')}\n{extra}"
    path = tmp_path / "approvers"
    path.write_text(text)
    return sig.parse_allowed(text, path)


def vouched(keys: Keys, tmp_path: Path, signers: sig.AllowedSigners, user: str,
            action: str = "approve") -> sig.Signed:
    """What the server signs for `user` (its key is the test's `ci` key)."""
    return sig.sign(SUBJECT.payload(action, NOW, user), SERVER, keys.private("ci"), signers, environ(tmp_path))


def check(keys: Keys, tmp_path: Path, signers: sig.AllowedSigners, signed: sig.Signed) -> Approval:
    return sig.check_approval("someone", NOW, signed.payload, signed.signature, SUBJECT, signers,
                              environ(tmp_path), NOW)


def test_the_servers_signature_proves_the_user_it_names_and_only_them(keys: Keys, tmp_path: Path) -> None:
    signers = signers_with(keys, tmp_path, server_line(keys, "alice") + server_line(keys, "carol"))
    approval = check(keys, tmp_path, signers, vouched(keys, tmp_path, signers, "carol"))
    assert approval.problem is None
    assert approval.signer == sig.Signer(("carol",), keys.fingerprint("ci"), by_server=True)
    assert approval.signer.proof() == {"principal": "carol", "key": keys.fingerprint("ci"), "via": "server"}


def test_sign_vouched_refuses_a_user_the_file_does_not_list_and_says_which_line_to_add(
        keys: Keys, tmp_path: Path) -> None:
    signers = signers_with(keys, tmp_path, server_line(keys, "alice"))
    vouch = ServerVouch(keys.private("ci"), "dave")
    with pytest.raises(SignatureError) as caught:
        sig.sign_vouched(SUBJECT.payload("approve", NOW, "dave"), vouch, signers, environ(tmp_path))
    assert f"is not listed in {tmp_path / 'approvers'} for dave" in caught.value.message
    assert f'dave namespaces="envplane-server" {keys.public("ci")} envplane-server' in caught.value.hint
    _, signer = sig.sign_vouched(SUBJECT.payload("approve", NOW, "alice"),
                                 ServerVouch(keys.private("ci"), "alice"), signers, environ(tmp_path))
    assert signer.principals == ("alice",) and signer.by_server


def test_a_signature_moved_to_another_user_proves_nobody(keys: Keys, tmp_path: Path) -> None:
    # someone who can write the app's state store edits carol's approval to say alice
    signers = signers_with(keys, tmp_path, server_line(keys, "alice", "carol"))
    signed = vouched(keys, tmp_path, signers, "carol")
    edited = sig.Signed(signed.payload.replace('"user":"carol"', '"user":"alice"'), signed.signature)
    approval = check(keys, tmp_path, signers, edited)
    assert approval.signer.principals == ()
    assert "the server's signature" in str(approval.problem) and "for alice does not verify" in str(approval.problem)


def test_a_person_key_listed_without_the_server_namespace_cannot_vouch(keys: Keys, tmp_path: Path) -> None:
    # mallory's own key is listed for two names; she signs "as the server" for one of them
    signers = signers_with(keys, tmp_path, f"mallory,carol {keys.public('mallory')}\n")
    signed = sig.sign(SUBJECT.payload("approve", NOW, "carol"), SERVER, keys.private("mallory"), signers,
                      environ(tmp_path))
    assert check(keys, tmp_path, signers, signed).signer.principals == ()


def test_the_server_key_listed_for_every_namespace_vouches_for_nobody(keys: Keys, tmp_path: Path) -> None:
    signers = signers_with(keys, tmp_path, server_line(keys, "alice", namespaces=None))
    assert check(keys, tmp_path, signers, vouched(keys, tmp_path, signers, "alice")).signer.principals == ()


def test_the_server_key_cannot_sign_as_a_person(keys: Keys, tmp_path: Path) -> None:
    # a payload without a user, signed by the server's key under the approvals' namespace
    signers = signers_with(keys, tmp_path, server_line(keys, "alice"))
    signed = sig.sign(SUBJECT.payload("approve", NOW), APPROVAL, keys.private("ci"), signers, environ(tmp_path))
    assert check(keys, tmp_path, signers, signed).signer.principals == ()


def test_a_persons_own_signature_of_a_payload_naming_a_user_is_not_theirs_either(
        keys: Keys, tmp_path: Path) -> None:
    # bob signs, with his own key and namespace, a payload saying "user": "alice"
    signers = signers_with(keys, tmp_path, server_line(keys, "alice"))
    signed = sig.sign(SUBJECT.payload("approve", NOW, "alice"), APPROVAL, keys.private("bob"), signers,
                      environ(tmp_path))
    assert check(keys, tmp_path, signers, signed).signer.principals == ()


def test_a_payload_naming_a_user_still_has_to_name_this_release(keys: Keys, tmp_path: Path) -> None:
    signers = signers_with(keys, tmp_path, server_line(keys, "alice"))
    other = sig.Subject(SUBJECT.app, SUBJECT.env, "v1.0.46", SUBJECT.images)
    signed = sig.sign(other.payload("approve", NOW, "alice"), SERVER, keys.private("ci"), signers,
                      environ(tmp_path))
    approval = check(keys, tmp_path, signers, signed)
    assert approval.problem == "signed for version v1.0.46, not v1.0.45"
    assert json.loads(signed.payload)["user"] == "alice"


# --- the gate: who promotes and who approves ---------------------------------------------------

SERVER_KEY = "SHA256:server"
ALICE_VIA_SERVER = sig.Signer(("alice",), SERVER_KEY, by_server=True)
BOB_VIA_SERVER = sig.Signer(("bob",), SERVER_KEY, by_server=True)
ALICE_OWN_KEY = sig.Signer(("alice",), "SHA256:alice")
BOB_OWN_KEY = sig.Signer(("bob",), "SHA256:bob")


def approval_gate(promoter: sig.Signer, *approvers: sig.Signer) -> tuple[bool, str]:
    facts = Facts(version="v1.0.45", promoter="whoever", signer=promoter, previous_env="staging",
                  deployed_on_previous=True, healthy_on_previous=True,
                  approvals=[Approval(a.names, NOW, a) for a in approvers])
    [result] = [r for r in evaluate(GateConfig(), facts).results if r.gate == "approval"]
    return result.ok, result.detail


@pytest.mark.parametrize(("promoter", "approver", "counts"), [
    (ALICE_VIA_SERVER, BOB_VIA_SERVER, True),  # two users of the server: the shared key tells nothing
    (ALICE_VIA_SERVER, ALICE_VIA_SERVER, False),  # nobody approves their own promotion
    (ALICE_OWN_KEY, ALICE_VIA_SERVER, False),  # the same person, once by SSH and once in the dashboard
    (ALICE_VIA_SERVER, ALICE_OWN_KEY, False),
    (ALICE_OWN_KEY, BOB_VIA_SERVER, True),
    (BOB_VIA_SERVER, ALICE_OWN_KEY, True),
    (ALICE_OWN_KEY, sig.Signer(("alice2",), "SHA256:alice"), False),  # one person's key, two names
])
def test_the_promoter_and_the_approver_must_be_different_people(promoter: sig.Signer, approver: sig.Signer,
                                                               counts: bool) -> None:
    ok, detail = approval_gate(promoter, approver)
    assert ok is counts, detail
