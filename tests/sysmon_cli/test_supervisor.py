"""The supervisor's watchdog with stand-in daemons: real processes, real notify socket.

The supervisor runs for real (sysmon_cli/supervisor.py, private paths from tests/sysmon_cli/
helpers.py) with two small scripts in place of the daemons: a collector that pings through the
real collector/watchdog.py, and a filterd that only reports itself ready. Checked: a stopped
collector is killed and restarted and the kill is counted, the restarted one is watched again,
filterd is not touched; messages from other processes are counted and ignored; a collector that
never says READY=1 is not watched; the notify socket takes hostile datagrams without harm.
tests/sysmon_cli/test_supervisor_watchdog.py does the same with the real BPF collector.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysmon_cli.supervisor import NOTIFY_BURST, Child, NotifySocket
from tests.sysmon_cli.helpers import ROOT, Sandbox

WATCHDOG = 1.5  # seconds, for the stand-ins (the real one is 10)

DRIVER = r"""
import sys
from sysmon_cli import supervisor as sv
from sysmon_cli.paths import Paths
sv.WATCHDOG_S = float(sys.argv[1])
sup = sv.Supervisor(Paths.from_env())
sup.collector.argv = [sys.executable, "-c", sys.argv[2], sys.argv[4]]
sup.filterd.argv = [sys.executable, "-c", sys.argv[3]]
raise SystemExit(sup.run())
"""
COLLECTOR = r"""
import os, signal, sys, time
from collector.watchdog import Notifier
run = os.environ["SYSMON_RUN_DIR"]
open(os.path.join(run, "collector.sock"), "a").close()  # what the supervisor waits for
n = Notifier.from_environ()
print("collector", os.getpid(), "interval", n.interval, file=sys.stderr, flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if sys.argv[1] == "ready":
    n.ready()
while True:
    n.ping()
    time.sleep(0.02)
"""
FILTERD = r"""
import json, os, signal, sys, time
d = os.path.join(os.environ["SYSMON_RUN_DIR"], "filterd")
with open(os.path.join(d, "stats.json"), "w") as f:
    json.dump({"hosts": {"stand-in": {}}}, f)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(1)
"""


class Running:
    def __init__(self, box: Sandbox, proc: subprocess.Popen[bytes]) -> None:
        self.box, self.proc = box, proc

    def status(self) -> dict:
        try:
            return json.loads((self.box.run_dir / "supervisor.json").read_text())
        except (OSError, ValueError):
            return {}

    def daemon(self, name: str) -> dict:
        return self.status().get("daemons", {}).get(name, {})

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.proc.poll() is None, f"supervisor exited: {self.log()}"
            assert time.monotonic() < deadline, f"{what}: {self.status()}\n{self.log()}"
            time.sleep(0.05)

    def log(self) -> str:
        return (self.box.dir / "supervisor.log").read_text(errors="replace")


def start(box: Sandbox, collector_mode: str) -> Running:
    box.run_dir.mkdir(parents=True)
    env = dict(box.env, PYTHONPATH=str(ROOT))
    with open(box.dir / "supervisor.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(WATCHDOG), COLLECTOR, FILTERD, collector_mode],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    r = Running(box, proc)
    r.wait(lambda: r.status().get("state") == "running", "supervisor running")
    return r


@pytest.fixture
def box() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the supervisor hands a directory to the sysmon user)")
    b = Sandbox()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def supervise(box: Sandbox) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(collector_mode: str = "ready") -> Running:
        started.append(start(box, collector_mode))
        return started[-1]

    yield run
    for r in started:
        r.proc.send_signal(signal.SIGTERM)
        try:
            r.proc.wait(30)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait()


def test_a_stopped_collector_is_killed_and_restarted(box: Sandbox, supervise: Callable[..., Running]) -> None:
    r = supervise()
    r.wait(lambda: r.daemon("collector").get("ready") is True, "collector READY")
    old, filterd = r.daemon("collector")["pid"], r.daemon("filterd")["pid"]
    notify = box.run_dir / "collector.notify"
    assert notify.stat().st_mode & 0o777 == 0o600 and notify.stat().st_uid == 0
    assert f"collector {old} interval {WATCHDOG / 2}" in r.log()  # WATCHDOG_USEC handed down

    os.kill(old, signal.SIGSTOP)  # alive, same pid, silent: only a watchdog can tell
    r.wait(lambda: r.daemon("collector").get("pid") not in (None, old), "a new collector")
    c = r.daemon("collector")
    assert c["watchdog_kills"] == 1 and c["exits"] == [-signal.SIGKILL] and c["restarts"] == 1
    assert not Path(f"/proc/{old}").exists() or "Z" in Path(f"/proc/{old}/stat").read_text().split()[2]
    assert "collector silent for" in r.log()
    assert r.daemon("filterd")["pid"] == filterd  # filterd was not touched

    # the new one is watched too
    r.wait(lambda: r.daemon("collector").get("ready") is True, "new collector READY")
    new = r.daemon("collector")["pid"]
    os.kill(new, signal.SIGSTOP)
    r.wait(lambda: r.daemon("collector").get("watchdog_kills") == 2, "second watchdog kill")


def test_other_senders_are_ignored_and_counted(box: Sandbox, supervise: Callable[..., Running]) -> None:
    """A process that is not the collector cannot keep a hung collector alive with pings."""
    r = supervise()
    r.wait(lambda: r.daemon("collector").get("ready") is True, "collector READY")
    old = r.daemon("collector")["pid"]
    os.kill(old, signal.SIGSTOP)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        deadline = time.monotonic() + 30
        while r.daemon("collector").get("pid") == old:
            s.sendto(b"WATCHDOG=1", str(box.run_dir / "collector.notify"))
            assert time.monotonic() < deadline, r.status()
            time.sleep(0.05)
    assert r.daemon("collector")["watchdog_kills"] == 1
    assert r.status()["notify_rejected"] > 0


def test_unprivileged_processes_cannot_reach_the_socket(
    box: Sandbox, supervise: Callable[..., Running]
) -> None:
    r = supervise()
    send = (
        "import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', sys.argv[1])"
    )
    p = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", send,
         str(box.run_dir / "collector.notify")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode != 0 and "PermissionError" in p.stderr
    assert r.status()["notify_rejected"] == 0


def test_a_collector_that_never_says_ready_is_not_watched() -> None:
    c = Child("collector", ["true"])
    c.proc = subprocess.Popen(["sleep", "30"])
    try:
        c.last_ping = 0.0
        c.heard({"WATCHDOG=1"}, 5.0)  # pings before READY=1 do not arm it
        assert not c.ready and c.silent_for(1e9) == 0.0
        c.heard({"READY=1"}, 7.0)
        assert c.ready and c.silent_for(10.0) == 3.0
        c.heard({"WATCHDOG=1", "STATUS=x"}, 9.0)
        assert c.silent_for(10.0) == 1.0
        c.killed = True
        assert c.silent_for(1e9) == 0.0  # killed once, never again while it dies
    finally:
        c.proc.kill()
        c.proc.wait()


@given(datagrams=st.lists(st.binary(max_size=5000), max_size=40))
@settings(max_examples=40, deadline=None)
def test_notify_socket_takes_anything(
    tmp_path_factory: pytest.TempPathFactory, datagrams: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("notify") / "n"
    ns = NotifySocket(path)
    got: list[tuple[int, set[str]]] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for d in datagrams:  # the queue holds only max_dgram_qlen datagrams: read when full
                while True:
                    try:
                        s.sendto(d, socket.MSG_DONTWAIT, str(path))
                        break
                    except BlockingIOError:
                        got += ns.messages()
        while batch := list(ns.messages()):
            assert len(batch) <= NOTIFY_BURST
            got += batch
        assert len(got) == len(datagrams)
        assert all(pid == os.getpid() and all("=" in f for f in fields) for pid, fields in got)
    finally:
        ns.close()
    assert not path.exists()
