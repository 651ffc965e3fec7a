"""collector/watchdog.py against a real datagram socket: path and abstract names, rate limiting,
WATCHDOG_PID, a manager that is gone or not reading, and hostile NOTIFY_SOCKET values."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.watchdog import DEFAULT_INTERVAL, Notifier, ping_interval, socket_address


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Manager:
    """The service manager's end: a bound datagram socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def received(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[Manager, str]]:
    path = str(tmp_path / "notify")
    m = Manager(path)
    yield m, path
    m.sock.close()


def test_ready_then_pings_at_half_the_watchdog_period(manager: tuple[Manager, str]) -> None:
    m, path = manager
    clock = Clock()
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, clock)
    assert n.enabled and n.interval == 5.0
    n.ready("publishing")
    assert m.received() == ["READY=1\nSTATUS=publishing"]
    for _ in range(1000):  # every loop iteration, within the first interval
        n.ping()
        clock.now += 0.004
    assert m.received() == []
    clock.now += 1.0  # 5 s after READY
    n.ping()
    n.ping()
    assert m.received() == ["WATCHDOG=1"]
    clock.now += 4.9
    n.ping()
    assert m.received() == []
    clock.now += 0.2
    n.ping()
    n.stopping()
    assert m.received() == ["WATCHDOG=1", "STOPPING=1"]
    assert n.sent == 4 and n.failed == 0


def test_abstract_socket() -> None:
    name = f"sysmon-test-{uuid.uuid4().hex}"
    m = Manager("\0" + name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert m.received() == ["READY=1"]
    finally:
        m.sock.close()


def test_no_socket_is_inert() -> None:
    n = Notifier({})
    assert not n.enabled
    n.ready()
    n.ping()
    assert n.sent == n.failed == 0


def test_a_manager_that_is_gone_or_not_reading_costs_nothing(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    n.ready()
    assert n.failed == 1  # ENOENT, not raised
    m = Manager(str(tmp_path / "full"))  # never read: the queue fills, sendto must not block
    try:
        n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "full")})
        for _ in range(2000):
            n.notify("WATCHDOG=1")
        assert n.sent > 0 and n.failed > 0 and n.sent + n.failed == 2000
    finally:
        m.sock.close()


def test_watchdog_pid_of_another_process_disables_pings(manager: tuple[Manager, str]) -> None:
    m, path = manager
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, Clock())
    other.ready()
    other.ping()
    assert m.received() == ["READY=1"]  # READY is still ours to say; the pings are not
    mine = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.interval == 1.0


def test_from_environ_keeps_children_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n"))
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    n = Notifier.from_environ()
    assert n.interval == 2.0 and n.address == str(tmp_path / "n")
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    n.close()


@given(value=st.text(max_size=200), usec=st.text(max_size=30), pid=st.text(max_size=12))
def test_any_environment_is_accepted(value: str, usec: str, pid: str) -> None:
    address = socket_address(value)
    assert address is None or address.startswith(("/", "\0"))
    interval = ping_interval({"WATCHDOG_USEC": usec, "WATCHDOG_PID": pid})
    assert interval is None or interval > 0
    if not pid:
        assert interval is not None


@pytest.mark.parametrize(("usec", "interval"), [("", DEFAULT_INTERVAL), ("x", DEFAULT_INTERVAL),
                         ("0", DEFAULT_INTERVAL), ("-3", DEFAULT_INTERVAL), ("3000000", 1.5)])  # fmt: skip
def test_interval(usec: str, interval: float) -> None:
    assert ping_interval({"WATCHDOG_USEC": usec}) == interval
