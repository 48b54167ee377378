"""Who approves and who promotes is proven by an SSH signature, not claimed by a name.

An approval is `ssh-keygen -Y sign -n envplane-approval` over a small JSON payload naming
the app, the env, the version, the image of every service and the time; a promote or
rollback request is the same under `-n envplane-request`. The spec's `approvers:` file (an
allowed-signers file as git uses it) maps keys to people; `ssh-keygen -Y verify` against
it decides who signed. The gate counts an approval only when its payload names exactly
the release being promoted, it is fresh (APPROVAL_MAX_AGE), and its signer is neither the
promoter's principal nor the promoter's key. ENVPLANE_USER stays a display name.

`envplane serve` signs for the users it authenticated (server/approvals.py): the same payload
with a `user` field, under the namespace `envplane-server`, with the server's own key. Such
a signature proves that user only when the approvers file lists the server's key for that
principal on a line restricted to that namespace (`alice namespaces="envplane-server"
ssh-ed25519 AAAA…`): a person's own key, listed without that restriction, cannot vouch for
anyone, and the server's key, listed with it, cannot sign as a person. Many users share the
server's key, so for them the gate tells people apart by principal only.

Parsing the allowed-signers file, the signature's key and the payload are pure; signing
and verifying run ssh-keygen through `run`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from envplane.commands import ssh_keygen
from envplane.errors import EnvplaneError, Problem, SpecError, UsageError
from envplane.run import run
from envplane.spec.load import Project

APPROVAL = "envplane-approval"  # the ssh-keygen namespace of approvals
REQUEST = "envplane-request"  # ... of promote and rollback requests
SERVER = "envplane-server"  # ... of approvals and requests the server signs for its users
APPROVAL_MAX_AGE = timedelta(hours=24)  # an approval older than this no longer counts
CLOCK_SKEW = timedelta(minutes=5)  # a signature dated later than now + this does not count
KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
OPTIONS = frozenset({"namespaces", "valid-after", "valid-before"})
PRINCIPAL = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
SETUP = ("name the people who may approve in an allowed-signers file (git's format), one per "
         "line: `alice ssh-ed25519 AAAA…` (the first two fields of their ~/.ssh/id_ed25519.pub), "
         "and add `approvers: approvers` to envplane.yaml (README: Releases)")


class SignatureError(EnvplaneError):
    """A signature could not be made, or does not prove a listed person."""


@dataclass(frozen=True)
class Entry:
    principals: tuple[str, ...]
    key_type: str
    blob: bytes
    line: int
    namespaces: frozenset[str] | None = None  # namespaces="…"; None: every namespace


@dataclass(frozen=True)
class AllowedSigners:
    path: Path
    entries: tuple[Entry, ...]

    def principals_of(self, blob: bytes) -> tuple[str, ...]:
        found = [p for entry in self.entries if entry.blob == blob for p in entry.principals]
        return tuple(dict.fromkeys(found))

    def vouches(self, blob: bytes, user: str) -> bool:
        """Whether the file lets the key `blob` sign for `user` as a server: a line naming
        them with that key, restricted to the server's namespace and nothing else."""
        return any(entry.blob == blob and user in entry.principals and entry.namespaces == frozenset({SERVER})
                   for entry in self.entries)


@dataclass(frozen=True)
class Signer:
    """What a signature proved: the listed principals it verifies for, and its key;
    `by_server`: the server's key, signing for the one user it authenticated."""

    principals: tuple[str, ...]
    fingerprint: str
    by_server: bool = False

    @property
    def names(self) -> str:
        return ", ".join(self.principals) or "nobody listed"

    def same_person(self, other: Signer) -> bool:
        """One principal, or one person's key: a second name on one key is still one person.
        The server's key signs for many users, so it tells nobody apart by itself."""
        one_key = self.fingerprint == other.fingerprint and not (self.by_server or other.by_server)
        return one_key or bool(set(self.principals) & set(other.principals))

    def proof(self) -> dict[str, str]:
        via = {"via": "server"} if self.by_server else {}
        return {"principal": self.names, "key": self.fingerprint, **via}


@dataclass(frozen=True)
class ServerVouch:
    """The server signing for a user it authenticated: its private key file, the user's name."""

    key: Path
    user: str


@dataclass(frozen=True)
class Signed:
    payload: str
    signature: str


@dataclass(frozen=True)
class Subject:
    """What a signature is about: one release of an app, going to one env."""

    app: str
    env: str
    version: str
    images: Mapping[str, Mapping[str, Any]]  # service -> {"ref", "id"}

    def payload(self, action: str, at: datetime, user: str | None = None) -> str:
        """What is signed; `user` only in what the server signs for one of its users."""
        return canonical({"action": action, "app": self.app, "env": self.env, "version": self.version,
                          "images": self.images, "at": _timestamp(at), **({"user": user} if user else {})})


@dataclass(frozen=True)
class Approval:
    """A stored approval as checked now: who signed it, and why it does not count (if so)."""

    display_name: str
    at: datetime
    signer: Signer
    problem: str | None = None


def subject_of(app: str, env: str, version: str, images: Mapping[str, Mapping[str, Any]]) -> Subject:
    return Subject(app, env, version, {service: {"ref": image.get("ref"), "id": image.get("id")}
                                       for service, image in sorted(images.items())})


def canonical(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the allowed-signers file (pure) -------------------------------------------------------

def approvers(project: Project, env: str | None = None) -> AllowedSigners:
    """The spec's allowed-signers file, validated. Without one nobody can approve."""
    named = project.spec.approvers
    if named is None:
        where = f"env {env} needs an approval, and approvals" if env else "approvals"
        raise UsageError(f"{where} are signed with SSH keys, but envplane.yaml names no `approvers:` file",
                         SETUP)
    path = project.root / named
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problem = project.doc.problem(("approvers",), f"cannot read {path}: {reason}", SETUP)
        raise SpecError([problem]) from None
    return parse_allowed(text, path)


def parse_allowed(text: str, path: Path) -> AllowedSigners:
    """git's allowed-signers format: `principals [options] key-type base64-key [comment]`."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(_entry(line, number))
        except ValueError as exc:
            field, message = exc.args
            problems.append(Problem(message, path, number, field, "one line per person: "
                                    "`alice ssh-ed25519 AAAA…` (git's allowed-signers format)"))
    if not entries and not problems:
        problems.append(Problem("names nobody: add one line per person who may approve", path, None, "",
                                "`alice ssh-ed25519 AAAA…`"))
    if problems:
        raise SpecError(problems)
    return AllowedSigners(path, tuple(entries))


def _entry(line: str, number: int) -> Entry:
    words = _words(line)
    principals = words[0].split(",")
    for name in principals:
        if not PRINCIPAL.match(name):
            raise ValueError("principals", f"{name!r} is not a principal name: letters, digits and "
                             "._@+- only (no patterns: name each person)")
    rest = words[1:]
    namespaces = None
    if rest and rest[0] not in KEY_TYPES:
        named = _options(rest[0]).get("namespaces")
        namespaces = frozenset(n.strip() for n in named.split(",")) if named is not None else None
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError("key", "needs a key type and a base64 key after the principals")
    key_type, key = rest[0], rest[1]
    if key_type not in KEY_TYPES:
        raise ValueError("key type", f"unknown key type {key_type!r}")
    blob = _key_blob(key)
    if blob is None or _first_string(blob) != key_type.encode():
        raise ValueError("key", f"is not a {key_type} public key")
    return Entry(tuple(principals), key_type, blob, number, namespaces)


def _words(line: str) -> list[str]:
    """Split at blanks outside double quotes (an option's value may hold a blank)."""
    if line.count('"') % 2:
        raise ValueError("options", "has an unclosed double quote")
    return re.findall(r'(?:[^\s"]|"[^"]*")+', line)


def _options(text: str) -> dict[str, str]:
    """The options field checked; each option's value without its quotes."""
    found = {}
    for option in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        name, _, value = option.partition("=")
        if name.lower() == "cert-authority":
            raise ValueError("options", "cert-authority is not supported: list each person's own key")
        if name.lower() not in OPTIONS:
            raise ValueError("options", f"unknown option {name!r} (known: {', '.join(sorted(OPTIONS))}); "
                             "or an unknown key type")
        if not (value.startswith('"') and value.endswith('"') and len(value) >= 2):
            raise ValueError("options", f'{name} needs a quoted value: {name}="…"')
        found[name.lower()] = value[1:-1]
    return found


def _key_blob(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _first_string(blob: bytes) -> bytes | None:
    strings = _strings(blob, 1)
    return strings[0] if strings else None


def _strings(blob: bytes, count: int) -> list[bytes] | None:
    """The first `count` SSH wire-format strings (uint32 length + bytes) of blob."""
    found, at = [], 0
    for _ in range(count):
        if at + 4 > len(blob):
            return None
        size = int.from_bytes(blob[at:at + 4], "big")
        if at + 4 + size > len(blob):
            return None
        found.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    return found


# --- signatures and payloads (pure) -------------------------------------------------------

def signature_key(signature: str) -> bytes:
    """The public key blob inside an armored SSH signature (SSHSIG); ValueError if none."""
    lines = [line.strip() for line in signature.strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN SSH SIGNATURE-----" \
            or lines[-1] != "-----END SSH SIGNATURE-----":
        raise ValueError("not an armored SSH signature")
    blob = _key_blob("".join(lines[1:-1]))
    if blob is None or not blob.startswith(b"SSHSIG") or len(blob) < 10:
        raise ValueError("not an SSH signature")
    strings = _strings(blob[10:], 1)  # after the magic and the uint32 version
    if not strings or not strings[0]:
        raise ValueError("an SSH signature without a public key")
    return strings[0]


def fingerprint(blob: bytes) -> str:
    """The key's fingerprint as ssh-keygen -l prints it: SHA256:base64, no padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_payload(payload: str, expected: Subject, action: str, now: datetime) -> str | None:
    """Why a signed payload does not count for `expected` now; None when it does."""
    try:
        data = json.loads(payload)
        at = datetime.strptime(data["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError):
        return "the signed payload is not an envplane approval"
    if data.get("action") != action:
        return f"signed for {data.get('action')!r}, not {action!r}"
    for field in ("app", "env", "version"):
        if data.get(field) != getattr(expected, field):
            return f"signed for {field} {data.get(field)}, not {getattr(expected, field)}"
    if canonical({"images": data.get("images")}) != canonical({"images": expected.images}):
        return f"signed for other images than those of {expected.version}"
    if at > now + CLOCK_SKEW:
        return f"signed for a time to come ({_timestamp(at)})"
    if now - at > APPROVAL_MAX_AGE:
        hours = APPROVAL_MAX_AGE.total_seconds() / 3600
        return f"signed at {_timestamp(at)}, more than {hours:.0f} h ago: approve again"
    return None


# --- signing and verifying (ssh-keygen) ----------------------------------------------------

def sign_listed(payload: str, namespace: str, key: Path | None, signers: AllowedSigners,
                environ: Mapping[str, str]) -> tuple[Signed, Signer]:
    """Sign with the person's key and check that it proves someone listed."""
    signed = sign(payload, namespace, key, signers, environ)
    signer = verify(signed, namespace, signers, environ)
    if not signer.principals:
        listed = signers.principals_of(signature_key(signed.signature))
        if listed:
            raise SignatureError(
                f"key {signer.fingerprint} is listed in {signers.path} as {', '.join(listed)}, but its "
                f"{namespace} signature does not verify",
                "check that line's namespaces=, valid-after= and valid-before= options")
        raise SignatureError(f"key {signer.fingerprint} is not among the approvers in {signers.path}",
                             "sign with your own key (--key PATH), or ask to be added to that file: "
                             "`NAME ssh-ed25519 AAAA…`")
    return signed, signer


def sign(payload: str, namespace: str, key: Path | None, signers: AllowedSigners,
         environ: Mapping[str, str]) -> Signed:
    with _folder() as folder:
        key_file = _key_file(key, signers, environ, folder)
        done = run(ssh_keygen.sign(str(key_file), namespace), input=payload, env=environ, check=False,
                   what="ssh-keygen -Y sign")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in done.stdout:
        reason = (done.stderr.strip().splitlines() or ["no signature"])[-1]
        raise SignatureError(f"could not sign with {key_file}: {reason}",
                             "pass --key PATH: your private key, or its .pub when ssh-agent holds it")
    return Signed(payload, done.stdout)


def verify(signed: Signed, namespace: str, signers: AllowedSigners,
           environ: Mapping[str, str]) -> Signer:
    """The listed principals the signature verifies for (none: not valid, or not listed)."""
    try:
        blob = signature_key(signed.signature)
    except ValueError:
        return Signer((), "not a signature")
    verified = []
    with _folder() as folder:
        signature_file = folder / "payload.sig"
        signature_file.write_text(signed.signature, encoding="ascii", errors="replace")
        for principal in signers.principals_of(blob):
            done = run(ssh_keygen.verify(str(signers.path), principal, namespace, str(signature_file)),
                       input=signed.payload, env=environ, check=False, what="ssh-keygen -Y verify")
            if done.returncode == 0:
                verified.append(principal)
    return Signer(tuple(verified), fingerprint(blob))


def payload_user(payload: str) -> str | None:
    """The user a payload names: set only in what the server signs for one of its users."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    user = data.get("user") if isinstance(data, dict) else None
    return user if isinstance(user, str) else None


def sign_vouched(payload: str, vouch: ServerVouch, signers: AllowedSigners,
                 environ: Mapping[str, str]) -> tuple[Signed, Signer]:
    """The server signs for the user it authenticated, and checks that the file lets it."""
    if payload_user(payload) != vouch.user:
        raise ValueError("the payload must name the user the server signs for")
    signed = sign(payload, SERVER, vouch.key, signers, environ)
    signer = verify_vouched(signed, signers, environ)
    if not signer.principals:
        public = run(ssh_keygen.public_of(str(vouch.key)), env=environ, what="ssh-keygen -y").stdout
        raise SignatureError(
            f"the server's key {signer.fingerprint} is not listed in {signers.path} for {vouch.user}",
            f"add the line `{approver_line(vouch.user, public)}` to that file "
            f"(`envplane users approver-line {vouch.user}` prints it)")
    return signed, signer


def approver_line(user: str, public_key: str) -> str:
    """The approvers-file line that lets the server's key sign for `user`, and only as the server."""
    key_type, key = public_key.split()[:2]
    return f'{user} namespaces="{SERVER}" {key_type} {key} envplane-server'


def verify_vouched(signed: Signed, signers: AllowedSigners, environ: Mapping[str, str]) -> Signer:
    """What a signature of the server proves: the one user its payload names, when the file
    lists the server's key for that user, restricted to the server's namespace, and the
    signature verifies as theirs in that namespace. Else nobody."""
    try:
        blob = signature_key(signed.signature)
    except ValueError:
        return Signer((), "not a signature", by_server=True)
    user = payload_user(signed.payload)
    if user is None or not signers.vouches(blob, user):
        return Signer((), fingerprint(blob), by_server=True)
    with _folder() as folder:
        signature_file = folder / "payload.sig"
        signature_file.write_text(signed.signature, encoding="ascii", errors="replace")
        done = run(ssh_keygen.verify(str(signers.path), user, SERVER, str(signature_file)),
                   input=signed.payload, env=environ, check=False, what="ssh-keygen -Y verify")
    return Signer((user,) if done.returncode == 0 else (), fingerprint(blob), by_server=True)


def verify_any(signed: Signed, namespace: str, signers: AllowedSigners, environ: Mapping[str, str]) -> Signer:
    """A person's signature under `namespace`, or, when the payload names a user, the server's."""
    if payload_user(signed.payload) is not None:
        return verify_vouched(signed, signers, environ)
    return verify(signed, namespace, signers, environ)


def check_approval(display_name: str, at: datetime, payload: str | None, signature: str | None,
                   expected: Subject, signers: AllowedSigners, environ: Mapping[str, str],
                   now: datetime) -> Approval:
    """A stored approval checked now against the release and today's approvers file: a
    person's own signature, or the server's for the user it names."""
    if payload is None or signature is None:
        return Approval(display_name, at, Signer((), "none"),
                        "not signed (recorded by an envplane before signed approvals)")
    problem = check_payload(payload, expected, "approve", now)
    signer = verify_any(Signed(payload, signature), APPROVAL, signers, environ)
    if problem is None and not signer.principals:
        if signer.by_server:
            problem = (f"the server's signature (key {signer.fingerprint}) for {payload_user(payload)} "
                       f"does not verify: {signers.path} lists no such key for them with "
                       f'namespaces="{SERVER}"')
        else:
            problem = f"the signature (key {signer.fingerprint}) does not verify for anyone in {signers.path}"
    return Approval(display_name, at, signer, problem)


def _key_file(key: Path | None, signers: AllowedSigners, environ: Mapping[str, str], folder: Path) -> Path:
    """--key, else the first ssh-agent key that is listed (else its first), else ~/.ssh/id_ed25519."""
    if key is not None:
        if not key.is_file():
            raise UsageError(f"no key file {key}", "--key takes a private key, or its .pub when "
                             "ssh-agent holds the private half")
        return key
    if environ.get("SSH_AUTH_SOCK"):
        listed = run(ssh_keygen.agent_keys(), env=environ, check=False, what="ssh-add -L")
        keys = [line for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []
        if keys:
            chosen = next((k for k in keys if signers.principals_of(_line_blob(k))), keys[0])
            public = folder / "agent.pub"
            public.write_text(chosen + "\n", encoding="utf-8")
            return public
    default = Path(environ.get("HOME") or Path.home()) / ".ssh" / "id_ed25519"
    if default.is_file():
        return default
    raise UsageError("no SSH key to sign with: ssh-agent holds none and there is no ~/.ssh/id_ed25519",
                     "pass --key PATH (your private key, or its .pub when ssh-agent holds it)")


def _line_blob(line: str) -> bytes:
    words = line.split()
    return (_key_blob(words[1]) if len(words) > 1 else None) or b""


@contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="envplane-sig-") as name:
        yield Path(name)
