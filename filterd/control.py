"""filterd's control socket: `sysmonctl reload|status|stats|tail` talk to the running daemon here.

An AF_UNIX stream socket made before the privilege drop, mode 0660, owner sysmon and group
sysmon (root passes anyway): nobody else can reconfigure or read the monitor. One JSON request
line per connection, one JSON reply line; `tail` instead streams every written event's XML, one
line each, until the client goes away. Requests are served by one thread; anything that changes
the daemon (reload) is handed to the main loop, which owns the pipeline.

Requests: {"cmd": "status"} | {"cmd": "stats"} | {"cmd": "reload"} | {"cmd": "tail"}
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST = 4096
TAIL_QUEUE = 10000


class Tap:
    """A bounded queue of XML lines for one `tail` client; overflow is counted, never blocks."""

    def __init__(self) -> None:
        self.q: queue.Queue[str] = queue.Queue(TAIL_QUEUE)
        self.dropped = 0

    def send(self, xml: str) -> None:
        try:
            self.q.put_nowait(xml)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        pass


class ControlServer:
    def __init__(
        self,
        path: str,
        uid: int,
        gid: int,
        handlers: dict[str, Callable[[], dict[str, Any]]],
        add_tap: Callable[[Tap], None],
        remove_tap: Callable[[Tap], None],
    ) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
        self.sock.listen(8)
        self.handlers = handlers
        self.add_tap, self.remove_tap = add_tap, remove_tap
        self.thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                line = conn.makefile("rb").readline(MAX_REQUEST)
                req = json.loads(line)
                cmd = req.get("cmd") if isinstance(req, dict) else None
            except (OSError, ValueError):
                return
            if cmd == "tail":
                self._tail(conn)
                return
            handler = self.handlers.get(cmd)
            reply = handler() if handler else {"ok": False, "error": f"unknown request {cmd!r}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")

    def _tail(self, conn: socket.socket) -> None:
        tap = Tap()
        self.add_tap(tap)
        try:
            while True:
                try:
                    xml = tap.q.get(timeout=1.0)
                except queue.Empty:
                    conn.sendall(b"\n")  # keep-alive; finds a vanished client
                    continue
                conn.sendall(xml.encode("utf-8", "surrogateescape") + b"\n")
        except OSError:
            pass
        finally:
            self.remove_tap(tap)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class Reload:
    """A reload asked for by a control client, done by the main loop, answered to the client."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] = {}

    def wait(self, timeout: float = 30.0) -> dict[str, Any]:
        if not self.done.wait(timeout):
            return {"ok": False, "error": "filterd did not answer in time"}
        return self.result


def uptime(started_monotonic: float) -> float:
    return round(time.monotonic() - started_monotonic, 1)
