"""ssh-keygen / ssh-add command lines for signed approvals: data, never run here.

The same mechanism git uses for SSH-signed commits (`ssh-keygen -Y`): the data to sign or
verify goes on standard input, the signature is armored text.
"""

from __future__ import annotations


def sign(key_file: str, namespace: str) -> list[str]:
    """Sign stdin; the signature goes to stdout. `key_file` may be a public key whose
    private half is held by ssh-agent."""
    return ["ssh-keygen", "-Y", "sign", "-f", key_file, "-n", namespace]


def verify(allowed_signers: str, principal: str, namespace: str, signature_file: str) -> list[str]:
    """Exit 0 when the signature over stdin is `principal`'s, by the allowed-signers file."""
    return ["ssh-keygen", "-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", namespace,
            "-s", signature_file]


def agent_keys() -> list[str]:
    """The public keys ssh-agent holds, one per line."""
    return ["ssh-add", "-L"]


def generate(key_file: str, comment: str) -> list[str]:
    """A new ed25519 key pair without a passphrase at key_file (and key_file.pub)."""
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key_file]


def public_of(key_file: str) -> list[str]:
    """The public key of a private key file, on stdout."""
    return ["ssh-keygen", "-y", "-f", key_file]
