"""Real collector and filterd processes for tests, wired to a private rsyslog.

Everything lives under /run/sysmon-test-<id>/ (not /tmp's 0700 pytest dirs) because filterd
drops to the `sysmon` user and must still reach its sockets and state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.rsyslog import Rsyslog

ROOT = Path(__file__).resolve().parents[2]
TEST_PIN_PREFIX = f"/sys/fs/bpf/sysmon-test-{os.getpid()}-"  # this pytest session's pins


def remove_pins(pin_dir: str) -> None:
    """Detach a test collector's programs (pinned links keep them attached after it exits)."""
    from collector.pins import remove_tree

    remove_tree(Path(pin_dir))


DRAIN_SENTINEL = "sysmon-test-drain-"  # Monitor.drain()'s own syslog lines, left out of events()


def _events(lines: list[str]) -> list[str]:
    return [x for x in lines if not x.startswith(DRAIN_SENTINEL)]


class Monitor:
    """collector + filterd + rsyslog, started in that order, stopped in reverse."""

    def __init__(
        self,
        config: str | None = None,
        extra_filterd: tuple[str, ...] = (),
        extra_collector: tuple[str, ...] = (),
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sysmon-test-", dir="/run"))
        os.chmod(self.dir, 0o755)
        self.endpoint = f"ipc://{self.dir}/ipc/collector.sock"
        self.pin_dir = f"{TEST_PIN_PREFIX}{self.dir.name}"  # pinned programs outlive the collector
        self.stats_path = self.dir / "state" / "stats.json"
        self.config = config
        self.extra_filterd = extra_filterd
        self.extra_collector = extra_collector
        self.rsyslog = Rsyslog(self.dir / "rsyslog")
        self.collector: subprocess.Popen[bytes] | None = None
        self.filterd: subprocess.Popen[bytes] | None = None

    def _spawn(self, module: str, *args: str, log: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = open(self.dir / log, "ab")  # noqa: SIM115 (lives as long as the process; restarts append)
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def start(self) -> Monitor:
        self.rsyslog.start()
        for p in (self.dir / "rsyslog", Path(self.rsyslog.socket_path).parent):
            os.chmod(p, 0o755)
        self.collector = self.start_collector()
        sock = Path(self.endpoint[len("ipc://") :])
        self._wait(lambda: sock.exists(), 120, "collector socket")
        self.control = str(self.dir / "filterd.ctl")
        self.start_filterd()
        self._wait(lambda: any(h for h in self.stats().get("hosts", {}).values()), 60, "host context")
        return self

    def start_filterd(self) -> subprocess.Popen[bytes]:
        args = [
            "--control-socket",
            self.control,
            "--endpoint",
            self.endpoint,
            "--syslog-socket",
            self.rsyslog.socket_path,
            "--state-dir",
            str(self.dir / "state"),
            "--stats-file",
            str(self.stats_path),
        ]
        if self.config:
            args += ["--config", self.config]
        self.filterd = self._spawn("filterd", *args, *self.extra_filterd, log="filterd.log")
        return self.filterd

    def start_collector(self) -> subprocess.Popen[bytes]:
        self.collector = self._spawn(
            "collector",
            "--endpoint",
            self.endpoint,
            "--pin-dir",
            self.pin_dir,
            *self.extra_collector,
            log="collector.log",
        )
        return self.collector

    def _wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            for name, proc in (("collector", self.collector), ("filterd", self.filterd)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}) waiting for {what}:\n{self.logs()}"
                    )
            time.sleep(0.05)
        raise TimeoutError(f"no {what} after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("collector.log", "filterd.log"):
            p = self.dir / name
            if p.exists():
                out.append(f"--- {name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def events(self) -> list[str]:
        return _events(self.rsyslog.lines("msg"))

    def wait_events(self, predicate: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        return _events(self.rsyslog.wait_for(lambda ls: predicate(_events(ls)), timeout=timeout))

    def drain(self, timeout: float = 30.0) -> list[str]:
        """Wait until every event of what the kernel saw before this call is in rsyslog's file;
        return the events. filterd asks the collector for a drain marker (control request
        `mark`); once filterd has handled it (its `markers` in `stats`), every event before it has
        been sent to rsyslog; then a sentinel datagram sent after them shows up in the file after
        them (one socket, one queue worker). A test that must see that something did NOT happen
        waits on this, never on a sleep."""
        from sysmonctl.client import request

        token = request(self.control, "mark")["token"]
        handled = lambda: token in request(self.control, "stats").get("markers", {}).values()  # noqa: E731
        self._wait(handled, timeout, "drain marker")
        sentinel = f"{DRAIN_SENTINEL}{token}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"<14>{sentinel}: {sentinel}".encode(), self.rsyslog.socket_path)
        lines = self.rsyslog.wait_for(lambda ls: sentinel in ls, timeout=timeout)
        return _events(lines)

    def kernel_counters(self, name: str = "kernel_emitted") -> dict[int, int]:
        """Per-kind kernel counters (`kernel_emitted` or `kernel_dropped`) of the newest host
        context filterd has (control `stats`), summed over collectors."""
        from sysmonctl.client import request

        out: dict[int, int] = {}
        for c in request(self.control, "stats")["collectors"].values():
            for k, v in c.get(name, {}).items():
                out[int(k)] = out.get(int(k), 0) + v
        return out

    def drain_counters(self) -> None:
        """Make kernel_counters() include everything done before the call: after a drain marker,
        the next heartbeat (a larger collector uptime) was sent after the marker, so it counts it all."""
        from sysmonctl.client import request

        self.drain()
        uptime = lambda: max(c["uptime_s"] for c in request(self.control, "status")["collectors"].values())  # noqa: E731
        seen = uptime()
        self._wait(lambda: uptime() > seen, 15, "a heartbeat after the drain marker")

    def stop(self) -> None:
        for proc in (self.filterd, self.collector):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        remove_pins(self.pin_dir)
        self.rsyslog.stop()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running(config_xml: str | None = None, **kwargs: Any) -> Iterator[Monitor]:
    """A started Monitor with this Sysmon config text (written into the monitor's own 0755
    directory, where filterd, running as `sysmon`, can read it); stopped and removed after."""
    m = Monitor(**kwargs)
    try:
        if config_xml is not None:
            cfg = m.dir / "config.xml"
            cfg.write_text(config_xml)
            cfg.chmod(0o644)
            m.config = str(cfg)
        yield m.start()
    finally:
        m.stop()
        m.cleanup()


@pytest.fixture(scope="module")
def monitor() -> Iterator[Monitor]:
    """A running monitor with the built-in config, shared by a module's tests (start-up
    compiles the BPF programs, which takes seconds)."""
    m = Monitor()
    try:
        yield m.start()
    finally:
        m.stop()
        m.cleanup()
