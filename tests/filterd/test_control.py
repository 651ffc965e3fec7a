"""filterd/control.py in process: the protocol, its bounds, tail with drops, socket permissions."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from filterd import control
from filterd.control import ControlServer


class Loop:
    """A ControlServer polled by a background thread, as filterd's main loop would."""

    def __init__(self, path: str, handlers: dict[str, Any]) -> None:
        self.tail_calls: list[bool] = []
        self.server = ControlServer(path, os.getgid(), handlers, self.tail_calls.append)
        self.running = True
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            with self.lock:
                self.server.poll()
            time.sleep(0.005)

    def call(self, f: Callable[[], Any]) -> Any:
        with self.lock:
            return f()

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.server.close()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    calls: list[dict[str, Any]] = []
    handlers = {
        "status": lambda req: {"ok": True, "pid": os.getpid()},
        "boom": lambda req: 1 / 0,
        "echo": lambda req: (calls.append(req), {"ok": True, "req": req})[1],
    }
    lp = Loop(str(tmp_path / "ctl" / "filterd.ctl"), handlers)
    try:
        yield lp
    finally:
        lp.stop()


def connect(lp: Loop) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(lp.server.path)
    return s


def ask(lp: Loop, raw: bytes) -> dict[str, Any]:
    with connect(lp) as s:
        s.sendall(raw)
        return json.loads(s.makefile("rb").readline())


def test_socket_mode_and_owner(loop: Loop) -> None:
    st = os.stat(loop.server.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == (0 if os.geteuid() == 0 else os.getuid()) and st.st_gid == os.getgid()


def test_requests(loop: Loop) -> None:
    assert ask(loop, b'{"cmd": "status"}\n') == {"ok": True, "pid": os.getpid()}
    assert ask(loop, b'{"cmd": "echo", "x": 1}\n')["req"] == {"cmd": "echo", "x": 1}
    assert ask(loop, b'{"cmd": "nope"}\n') == {"ok": False, "error": "unknown request 'nope'"}
    assert ask(loop, b"not json\n") == {"ok": False, "error": "request is not JSON"}
    assert ask(loop, b"[1]\n")["ok"] is False
    r = ask(loop, b'{"cmd": "boom"}\n')
    assert r["ok"] is False and "ZeroDivisionError" in r["error"]


def test_request_in_pieces(loop: Loop) -> None:
    with connect(loop) as s:
        s.sendall(b'{"cmd": ')
        time.sleep(0.05)
        s.sendall(b'"status"}\n')
        assert json.loads(s.makefile("rb").readline())["ok"]


def test_oversized_and_silent_clients_are_cut_off(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ask(loop, b"x" * (control.MAX_REQUEST + 10)) == {"ok": False, "error": "request too long"}
    monkeypatch.setattr(control, "REQUEST_TIMEOUT_S", 0.2)
    with connect(loop) as s:
        s.sendall(b'{"cmd": "sta')
        assert s.recv(100) == b""  # closed without an answer once the time is up
    assert loop.call(lambda: len(loop.server.clients)) == 0


def test_client_limit(loop: Loop) -> None:
    held = [connect(loop) for _ in range(control.MAX_CLIENTS)]
    try:
        deadline = time.monotonic() + 30  # a wait, not a speed test: the machine may be busy
        while loop.call(lambda: len(loop.server.clients)) < control.MAX_CLIENTS:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with connect(loop) as extra:  # refused: told so and closed at once
            assert json.loads(extra.makefile("rb").readline())["error"] == "too many control clients"
        assert loop.server.refused >= 1
    finally:
        for s in held:
            s.close()
    assert ask(loop, b'{"cmd": "status"}\n')["ok"]  # served again once they are gone


def test_clients_that_left_make_room_before_a_refusal(loop: Loop) -> None:
    """The accept loop can see a newcomer before this poll saw the others hang up."""
    held = [connect(loop) for _ in range(control.MAX_CLIENTS)]
    deadline = time.monotonic() + 30
    while loop.call(lambda: len(loop.server.clients)) < control.MAX_CLIENTS:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with loop.lock:  # the main loop is between its poll and its accept
        for s in held:
            s.close()
        newcomer = connect(loop)
        loop.server._accept()
        assert loop.server.refused == 0 and len(loop.server.clients) == 1
    with newcomer:
        newcomer.sendall(b'{"cmd": "status"}\n')
        assert json.loads(newcomer.makefile("rb").readline())["ok"]


def test_tail_streams_and_reports_drops(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = loop.server.hub
    s = connect(loop)
    s.sendall(b'{"cmd": "tail"}\n')
    deadline = time.monotonic() + 30
    while not loop.tail_calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert loop.tail_calls == [True]
    f = s.makefile("rb")
    loop.call(lambda: hub.send_many(["<Event>a\nb</Event>", "<Event>2</Event>"]))
    assert json.loads(f.readline()) == {"xml": "<Event>a\nb</Event>"}  # newlines survive
    assert json.loads(f.readline()) == {"xml": "<Event>2</Event>"}
    # a reader that falls behind: events beyond the buffer are dropped, counted and reported
    monkeypatch.setattr(control, "TAIL_BUFFER", 100)

    def burst() -> None:
        c = hub.clients[0]
        c.wbuf += b" " * 100  # as if the socket were full
        hub.send_many(["<Event>3</Event>"] * 5)
        del c.wbuf[:100]
        hub.send("<Event>4</Event>")

    loop.call(burst)
    assert json.loads(f.readline()) == {"dropped": 5}  # where they went missing
    assert json.loads(f.readline()) == {"xml": "<Event>4</Event>"}
    assert hub.dropped == 5
    f.close()
    s.close()
    deadline = time.monotonic() + 30
    while loop.tail_calls != [True, False]:
        assert time.monotonic() < deadline, loop.tail_calls
        time.sleep(0.01)
    assert not hub.clients


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "filterd.ctl"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(path))
    old.close()  # a socket file nobody listens on, as a stopped filterd leaves it
    lp = Loop(str(path), {"status": lambda req: {"ok": True}})
    try:
        assert ask(lp, b'{"cmd": "status"}\n') == {"ok": True}
    finally:
        lp.stop()
    assert not path.exists()


def test_refuses_to_replace_anything_but_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        ControlServer(str(path), os.getgid(), {}, lambda on: None)
    assert path.read_text() == "keep me"
