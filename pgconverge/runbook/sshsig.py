"""SSH signatures of sign-off files, by ``ssh-keygen -Y`` (the convention git uses for signed commits).

A signature is made for one namespace, ``pgconverge-signoff``: a signature made for git
(namespace ``git``) or for any other purpose cannot be passed off as a sign-off. Who may sign is
an ``allowed_signers`` file (ssh-keygen's format: ``principal [options] key-type key``), kept in
the repository and reviewed like code; the signer's identity is the principal it names for the key.

The private key only ever reaches ssh-keygen, as the path after ``-f``: this module never reads it,
and never prints or logs the path's content. A key with a passphrase asks for it on the terminal
(ssh-keygen's own prompt), and ``-f`` may name a public key whose private half is in ssh-agent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "pgconverge-signoff"
_FINGERPRINT = re.compile(r"\bkey (SHA256:\S+)")


class SignatureError(Exception):
    """A signature could not be made, or does not hold. ``kind`` says which refusal it is:
    ``missing-tool``, ``unsigned``, ``no-signers``, ``tampered``, ``unknown-key``, ``refused``, ``sign``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Signer:
    """Who signed: the principal allowed_signers names for the key, and the key's fingerprint."""

    principal: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.principal} (key {self.fingerprint})"


def ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise SignatureError("missing-tool", "ssh-keygen is not installed: install OpenSSH's client tools "
                                             "(Debian: apt-get install -y openssh-client, or `make setup`)")
    return found


def signature_path(path: str | os.PathLike) -> Path:
    """Where the signature of a file lives: next to it, with ``.sig`` appended (ssh-keygen's own name)."""
    return Path(f"{os.fspath(path)}.sig")


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    """ssh-keygen reading `data` on stdin (checks read the signed bytes there); no key is involved."""
    if data is None:
        return subprocess.run([ssh_keygen(), *args], stdin=subprocess.DEVNULL, capture_output=True)
    return subprocess.run([ssh_keygen(), *args], input=data, capture_output=True)


def _said(done: subprocess.CompletedProcess) -> str:
    text = (done.stderr or b"").decode(errors="replace").strip() or (done.stdout or b"").decode(errors="replace").strip()
    return text.splitlines()[-1] if text else f"ssh-keygen exited {done.returncode}"


def sign(key: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Sign the file at `path` with the private key at `key` (or a public key held by ssh-agent);
    writes and returns ``<path>.sig``, replacing an older one."""
    key_path = Path(key).expanduser()
    if not key_path.is_file():
        raise SignatureError("sign", f"no SSH key at {key_path}: pass --key with your signing key "
                                     "(e.g. ~/.ssh/id_ed25519, or its .pub when the key is in ssh-agent)")
    sig = signature_path(path)
    sig.unlink(missing_ok=True)  # ssh-keygen would ask before overwriting it
    done = subprocess.run([ssh_keygen(), "-Y", "sign", "-q", "-f", str(key_path), "-n", NAMESPACE, os.fspath(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0 or not sig.is_file():
        raise SignatureError("sign", f"ssh-keygen could not sign {path} with {key_path}: {_said(done)}")
    return sig


def verify(data: bytes, sig: str | os.PathLike, allowed_signers: str | os.PathLike, what: str) -> Signer:
    """The signer of `data` (the bytes of the file `what`) by its signature at `sig`, checked
    against `allowed_signers`. Raises SignatureError naming the file and the reason."""
    sig = Path(sig)
    allowed = Path(allowed_signers)
    if not sig.is_file():
        raise SignatureError("unsigned", f"{what} is not signed: there is no signature at {sig}")
    if not allowed.is_file():
        raise SignatureError("no-signers", f"there is no allowed signers file at {allowed}, so no signature of "
                                           f"{what} can be trusted: add one (reviewed like code) listing the "
                                           "approvers' keys")
    # First: is it a good signature of these very bytes, by whatever key it carries?
    checked = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], data)
    if checked.returncode != 0:
        raise SignatureError("tampered", f"the signature {sig} does not match {what}: the file was changed after "
                                         f"it was signed, or the signature is not a {NAMESPACE} signature "
                                         f"({_said(checked)})")
    said = (checked.stdout or b"").decode(errors="replace") + (checked.stderr or b"").decode(errors="replace")
    m = _FINGERPRINT.search(said)
    fingerprint = m.group(1) if m else "unknown"
    # Then: whose key is it?
    found = _run(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)])
    principals = [p for p in (found.stdout or b"").decode(errors="replace").split() if p]
    if found.returncode != 0 or not principals:
        # find-principals also leaves out a key whose valid-after/valid-before excludes today
        raise SignatureError("unknown-key", f"{what} is signed by a key that is not in {allowed}, or not valid "
                                            f"there today (key {fingerprint}): only the keys listed there may "
                                            "sign off")
    # Last: the full check for that principal (validity dates, namespaces= options of allowed_signers)
    principal = principals[0]
    verified = _run(["-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE, "-s", str(sig)], data)
    if verified.returncode != 0:
        raise SignatureError("refused", f"{allowed} does not accept the signature of {what} by {principal}: "
                                        f"{_said(verified)}")
    return Signer(principal, fingerprint)


def public_line(key: str | os.PathLike) -> str | None:
    """The public half of `key` (``type base64``), for the line an approver adds to allowed_signers."""
    key_path = Path(key).expanduser()
    pub = key_path if key_path.suffix == ".pub" else Path(f"{key_path}.pub")
    if pub.is_file():
        parts = pub.read_text().split()
        return " ".join(parts[:2]) if len(parts) >= 2 else None
    # derive it from the private key (a key with a passphrase asks for it)
    done = subprocess.run([ssh_keygen(), "-y", "-f", str(key_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = (done.stdout or b"").decode(errors="replace").split()
    return " ".join(parts[:2]) if done.returncode == 0 and len(parts) >= 2 else None
