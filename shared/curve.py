"""CurveZMQ key files: loading and checking them, for the collector, filterd and sysmonctl.

Owns the one format we use (ZeroMQ's certificate files, as zmq.auth.create_certificates writes
them: `NAME.key` holds the public key, `NAME.key_secret` both keys) and the rules a key file
must pass before a daemon trusts it: a secret key readable by group or others is refused, like
ssh refuses a private key, and (for root) a directory of allowed client keys that someone else
could write to is refused, since adding a file there grants access to the event stream.
Pure file handling: no sockets here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
ZAP_DOMAIN = "sysmon"


def _load_certificate(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    from zmq.auth import load_certificate  # imported only where keys are used: it pulls in asyncio

    return load_certificate(path)


def _z85_decode(key: bytes) -> bytes:
    from zmq.utils import z85

    return z85.decode(key)


class CurveError(ValueError):
    """A key file or directory is missing, malformed or unsafe; the message says which and why."""


class KeyPair(NamedTuple):
    public: bytes  # Z85, 40 bytes
    secret: bytes


def _valid_z85(key: bytes | None) -> bool:
    if key is None or len(key) != 40:
        return False
    try:
        return len(_z85_decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def _load(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    try:
        public, secret = _load_certificate(path)
    except OSError as e:
        raise CurveError(f"{path}: cannot read key file: {e}") from None
    except ValueError as e:
        raise CurveError(f"{path}: not a ZeroMQ key file: {e}") from None
    if not _valid_z85(public) or (secret is not None and not _valid_z85(secret)):
        raise CurveError(f"{path}: malformed key (expected 40 Z85 characters)")
    return public, secret


def load_secret(path: str | os.PathLike[str]) -> KeyPair:
    """This daemon's own key pair from a `.key_secret` file, which only its owner may read."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise CurveError(f"{path}: cannot read secret key: {e.strerror}") from None
    if st.st_mode & 0o077:
        raise CurveError(
            f"{path}: secret key is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "chmod 600 it"
        )
    public, secret = _load(path)
    if secret is None:
        raise CurveError(f"{path}: holds no secret key (give the {SECRET_SUFFIX} file, not {PUBLIC_SUFFIX})")
    return KeyPair(public, secret)


def load_public(path: str | os.PathLike[str]) -> bytes:
    """A peer's public key from its `.key` file (a `.key_secret` works too: only the public part is used)."""
    return _load(path)[0]


def _check_not_writable_by_others(path: Path, st: os.stat_result) -> None:
    if os.geteuid() == 0 and st.st_uid != 0:
        raise CurveError(f"{path}: owned by uid {st.st_uid}, not root: whoever owns it can grant access")
    if st.st_mode & 0o022:
        raise CurveError(
            f"{path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
            "anyone who can write here can grant access"
        )


def load_client_keys(directory: str | os.PathLike[str]) -> frozenset[bytes]:
    """The public keys of the peers allowed to subscribe: every `*.key` file in `directory`."""
    d = Path(directory)
    try:
        st = d.stat()
    except OSError as e:
        raise CurveError(f"{d}: cannot read client key directory: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CurveError(f"{d}: not a directory (give the directory holding the filterd public keys)")
    _check_not_writable_by_others(d, st)
    keys = set()
    for f in sorted(d.glob("*" + PUBLIC_SUFFIX)):
        _check_not_writable_by_others(f, f.stat())
        keys.add(load_public(f))
    return frozenset(keys)


def directory_stamp(directory: str | os.PathLike[str]) -> tuple[float, ...]:
    """Changes when a key file in `directory` is added, removed or rewritten (cheap: stats only)."""
    d = Path(directory)
    try:
        return (d.stat().st_mtime, *sorted(f.stat().st_mtime for f in d.glob("*" + PUBLIC_SUFFIX)))
    except OSError:
        return (-1.0,)
