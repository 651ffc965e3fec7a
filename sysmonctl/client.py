"""Talking to a running filterd over its control socket (filterd/control.py has the protocol)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

# filterd's default (systemd unit's RuntimeDirectory), then the `sysmon` supervisor's
CANDIDATES = ("/run/sysmon-filterd/control.sock", "/run/sysmon/filterd.ctl")


class ControlError(Exception):
    pass


def find_socket(path: str | None) -> str:
    if path:
        return path
    for p in CANDIDATES:
        if os.path.exists(p):
            return p
    raise ControlError("filterd is not running (no control socket in " + ", ".join(CANDIDATES) + ")")


def _connect(path: str, timeout: float | None) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise ControlError(f"cannot reach filterd at {path}: {e.strerror}") from None
    return s


def request(path: str, cmd: str, timeout: float = 35.0) -> dict[str, Any]:
    with _connect(path, timeout) as s:
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        line = s.makefile("rb").readline()
    if not line:
        raise ControlError("filterd closed the connection without an answer")
    return json.loads(line)


def tail(path: str) -> Iterator[str]:
    """Each event's XML as filterd writes it, until interrupted."""
    with _connect(path, None) as s:
        s.sendall(b'{"cmd": "tail"}\n')
        for line in s.makefile("rb"):
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text:
                yield text
