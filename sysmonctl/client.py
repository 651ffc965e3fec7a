"""Talking to a running filterd over its control socket (filterd/control.py has the protocol)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

# filterd's default (the systemd unit's RuntimeDirectory), then the `sysmon` supervisor's
CANDIDATES = ("/run/sysmon-filterd/control.sock", "/run/sysmon/filterd.ctl")


class ControlError(Exception):
    pass


def _connect(path: str, timeout: float | None) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise ControlError(f"cannot reach filterd at {path}: {e.strerror}") from None
    return s


def connect(path: str | None, timeout: float | None) -> socket.socket:
    """The given socket, or the first of CANDIDATES a filterd answers on (a stopped filterd
    may leave its socket behind)."""
    if path:
        return _connect(path, timeout)
    errors = []
    for p in CANDIDATES:
        try:
            return _connect(p, timeout)
        except ControlError as e:
            errors.append(str(e))
    raise ControlError("filterd is not running? " + "; ".join(errors))


def request(path: str | None, cmd: str, timeout: float = 60.0) -> dict[str, Any]:
    """One request, one reply (a dict with "ok")."""
    with connect(path, timeout) as s:
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        try:
            line = s.makefile("rb").readline()
        except TimeoutError:
            raise ControlError(f"filterd did not answer {cmd!r} within {timeout:.0f} s") from None
        except OSError as e:
            raise ControlError(f"filterd dropped the connection: {e.strerror}") from None
    if not line:
        raise ControlError("filterd closed the connection without an answer")
    return json.loads(line)


def tail(path: str | None) -> Iterator[dict[str, Any]]:
    """filterd's event stream: {"xml": ...} per written event, {"dropped": n} when we fell behind."""
    with connect(path, None) as s:
        s.sendall(b'{"cmd": "tail"}\n')
        for line in s.makefile("rb"):
            msg = json.loads(line)
            if msg.get("ok") is False:
                raise ControlError(f"filterd refused: {msg.get('error')}")
            yield msg
