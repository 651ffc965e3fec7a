"""filterd's control socket: `sysmonctl reload|reopen|status|stats|tail` talk to the running daemon here.

An AF_UNIX stream socket made before the privilege drop: mode 0660, owner root, group sysmon
(filterd's own group), so only root and that group can reconfigure or read the monitor; filterd,
once unprivileged, cannot loosen the mode. Started by systemd as the unprivileged user, the
socket is that user's, still 0660.

Protocol: one JSON request line per connection, {"cmd": "status"|"stats"|"reload"|"reopen"|"tail"}, and
one JSON reply line {"ok": true, ...} or {"ok": false, "error": "..."}. `tail` instead answers with
a stream of JSON lines, {"xml": "<Event>..."} per written event and {"dropped": n} when the client
fell behind, until the client hangs up. `record` answers with the raw frames filterd receives,
in the binary layout of filterd/recording.py, until the client sends "stop" (or hangs up); a
"state" line from it asks for the context a new file of the recording starts with.

No threads: the main loop calls poll() between ZeroMQ polls, so requests (a reload above all) run
where the pipeline lives and never race it. All sockets are non-blocking; a slow or stuck client
can delay nobody. Bounds: MAX_CLIENTS connections, MAX_REQUEST bytes per request, REQUEST_TIMEOUT
to send it, TAIL_BUFFER bytes queued per tail client (the excess is dropped and counted).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filterd.recording import RecordHub

MAX_CLIENTS = 16
MAX_REQUEST = 4096
REQUEST_TIMEOUT_S = 10.0
TAIL_BUFFER = 4 << 20
REPLY_BUFFER = 64 << 20  # a reply is never dropped, but a client that reads nothing is cut off

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _Client:
    __slots__ = ("sock", "rbuf", "wbuf", "deadline", "tail", "record", "dropped", "reported", "done")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.deadline = time.monotonic() + REQUEST_TIMEOUT_S
        self.tail = False
        self.record = False  # a `record` client (filterd/recording.py)
        self.dropped = 0  # events this tail client missed (frames, for a record client)
        self.reported = 0  # of which it has been told
        self.done = False  # close once wbuf is sent


def report_drops(c: _Client) -> None:
    """Tell a tail client how many events it missed, once there is room again."""
    if c.dropped > c.reported and len(c.wbuf) < TAIL_BUFFER:
        c.wbuf += json.dumps({"dropped": c.dropped - c.reported}).encode() + b"\n"
        c.reported = c.dropped


class TailHub:
    """The sink that feeds every `tail` client; in the pipeline's sink list only while one is
    connected. Events are queued as JSON lines, never blocking the pipeline."""

    def __init__(self) -> None:
        self.clients: list[_Client] = []
        self.sent = 0
        self.dropped = 0

    def send(self, xml: str) -> None:
        self.send_many((xml,))

    def send_many(self, xmls: list[str] | tuple[str, ...]) -> None:
        lines = [json.dumps({"xml": x}).encode() + b"\n" for x in xmls]
        for c in self.clients:
            for line in lines:
                if len(c.wbuf) >= TAIL_BUFFER:
                    c.dropped += 1
                    self.dropped += 1
                    continue
                report_drops(c)  # where the gap is, before the next event
                c.wbuf += line
                self.sent += 1

    def close(self) -> None:
        pass


class ControlServer:
    def __init__(
        self,
        path: str,
        gid: int,
        handlers: dict[str, Handler],
        on_tail: Callable[[bool], None],
        recorder: RecordHub | None = None,
    ) -> None:
        """Bind `path` (replacing a stale socket). `on_tail(True)` is called when the first tail
        client arrives and `on_tail(False)` when the last one leaves: the daemon then adds or
        removes `self.hub` from its sinks."""
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):  # never remove anything but a stale socket
                raise FileExistsError(f"{path} exists and is not a socket")
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        old = os.umask(0o117)  # the socket is born 0660: no window with a wider mode
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        if os.geteuid() == 0:
            os.chown(path, 0, gid, follow_symlinks=False)
        self.sock.listen(MAX_CLIENTS)
        self.handlers = handlers
        self.on_tail = on_tail
        self.hub = TailHub()
        self.recorder = recorder
        self.clients: dict[int, _Client] = {}
        self.refused = 0

    # -- main loop ---------------------------------------------------------------------------
    def poll(self) -> None:
        """Accept, read, answer and stream what can be done now, without blocking."""
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        for fd, c in self.clients.items():
            p.register(fd, select.POLLIN | (select.POLLOUT if c.wbuf else 0))
        ready = p.poll(0)
        for fd, ev in ready:  # clients first: those that left make room for new ones
            c = self.clients.get(fd)
            if c is not None and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._read(c)
        if any(fd == self.sock.fileno() for fd, _ in ready):
            self._accept()
        now = time.monotonic()
        for c in list(self.clients.values()):
            if c.tail:
                report_drops(c)
            elif c.record:
                if self.recorder is not None:
                    self.recorder.catch_up(c)
            elif not c.done and now > c.deadline:
                self._drop(c)
                continue
            if c.wbuf:
                self._write(c)
            if c.done and not c.wbuf:
                self._drop(c)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the connection waits in the backlog
            if len(self.clients) >= MAX_CLIENTS:
                self._reap_hung_up()
            if len(self.clients) >= MAX_CLIENTS:
                self.refused += 1
                with contextlib.suppress(OSError):
                    conn.setblocking(False)
                    conn.send(b'{"ok": false, "error": "too many control clients"}\n', socket.MSG_NOSIGNAL)
                conn.close()
                continue
            conn.setblocking(False)
            self.clients[conn.fileno()] = _Client(conn)

    def _reap_hung_up(self) -> None:
        """Clients that left since this poll began make room before a newcomer is refused."""
        p = select.poll()
        for fd in self.clients:
            p.register(fd, select.POLLIN)
        for fd, ev in p.poll(0):
            c = self.clients.get(fd)
            if c is not None and ev & (select.POLLHUP | select.POLLERR):
                self._drop(c)

    def _read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # hung up
            self._drop(c)
            return
        if c.record and not c.done:
            self._record_lines(c, data)
            return
        if c.tail or c.done:
            return  # nothing more is expected from this client
        c.rbuf += data
        if b"\n" not in c.rbuf:
            if len(c.rbuf) >= MAX_REQUEST:
                self._reply(c, {"ok": False, "error": "request too long"})
            return
        line, rest = bytes(c.rbuf).split(b"\n", 1)
        self._handle(c, line)
        if c.record:
            c.rbuf.clear()
            self._record_lines(c, rest)

    def _record_lines(self, c: _Client, data: bytes) -> None:
        """A record client's lines ("state", "stop"); anything else is ignored, bounded."""
        c.rbuf += data
        while b"\n" in c.rbuf and not c.done and self.recorder is not None:
            line, rest = bytes(c.rbuf).split(b"\n", 1)
            c.rbuf[:] = rest
            self.recorder.request(c, line.strip())
        if len(c.rbuf) >= MAX_REQUEST or c.done:
            c.rbuf.clear()

    def _handle(self, c: _Client, line: bytes) -> None:
        try:
            req = json.loads(line)
            cmd = req.get("cmd") if isinstance(req, dict) else None
        except ValueError:
            self._reply(c, {"ok": False, "error": "request is not JSON"})
            return
        if cmd == "tail":
            c.tail = True
            if not self.hub.clients:
                self.on_tail(True)
            self.hub.clients.append(c)
            return
        if cmd == "record" and self.recorder is not None:
            refused = self.recorder.start(c, req)
            if refused is not None:
                self._reply(c, refused)
            return
        handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            self._reply(c, {"ok": False, "error": f"unknown request {cmd!r}"})
            return
        try:
            reply = handler(req)
        except Exception as e:  # noqa: BLE001 (a failing request must not stop the daemon)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        self._reply(c, reply)

    def _reply(self, c: _Client, reply: dict[str, Any]) -> None:
        c.wbuf += json.dumps(reply, default=str).encode() + b"\n"
        c.done = True

    def _write(self, c: _Client) -> None:
        while c.wbuf:
            try:
                n = c.sock.send(c.wbuf[: 1 << 16], socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(c)
                return
            del c.wbuf[:n]
        if len(c.wbuf) > REPLY_BUFFER:
            self._drop(c)

    def _drop(self, c: _Client) -> None:
        fd = c.sock.fileno()
        if self.clients.get(fd) is not c:
            return  # already dropped (a closed socket's fileno() is -1)
        del self.clients[fd]
        c.sock.close()
        if c.tail:
            self.hub.clients.remove(c)
            if not self.hub.clients:
                self.on_tail(False)
        if c.record and self.recorder is not None:
            self.recorder.remove(c)

    def close(self) -> None:
        for c in list(self.clients.values()):
            self._drop(c)
        self.sock.close()
        with contextlib.suppress(OSError):  # denied once sandboxed; the next start replaces it
            os.unlink(self.path)


def uptime(started_monotonic: float) -> float:
    return round(time.monotonic() - started_monotonic, 1)
