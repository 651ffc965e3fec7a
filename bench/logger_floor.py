"""What the system logger alone costs the workload: the floor under bench/pipeline.py's ratios.

Why: every event a Sysmon logs is one syslog datagram that rsyslog must receive, parse and write
(twice with Debian's rules: syslog and user.log). On a 2-core machine that work, done while the
next phase of the workload runs, slows it whoever sends the messages. These rounds run the same
workload with the monitor off while a trivial sender hands a private rsyslogd exactly the XML
filterd would send for each phase (rendered up front by the real pipeline, bench/replay.py's
records), at the time filterd would: the exec phase's events spread over the phase, the file
phase's as fast as rsyslog takes them. The ratio floor/off is what no syslog-writing monitor can
go below on this machine; on/floor is the monitor's own share.

Sender, as bench/pipeline.py starts it (prints "ready", sends once a line comes on stdin):
    python bench/logger_floor.py SOCKET MESSAGES_FILE SPREAD_SECONDS
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay import batches, run_round  # noqa: E402

TICK_S = 0.010  # the collector's drain period: events reach filterd in such slices
BURST = 512  # the collector's batch when it is behind


class _Capture:
    """A sink that keeps the rendered events."""

    def __init__(self) -> None:
        self.xml: list[str] = []
        self.dropped = 0

    def send(self, xml: str) -> None:
        self.xml.append(xml)

    def send_many(self, xmls: list[str]) -> None:
        self.xml.extend(xmls)

    def close(self) -> None:
        pass


def rendered(config: Any, workload: str, n: int) -> list[str]:
    """The XML filterd renders for `n` operations of the workload ("exec" or "file") under
    `config`: only what the config logs."""
    sink = _Capture()
    with tempfile.TemporaryDirectory(prefix="sysmon-floor-") as tmp:
        run_round(config, batches(workload, n), [sink], Path(tmp))
    return sink.xml


class Floor:
    """One sender per phase and round against `socket_path`, all started (and past Python's own
    start-up) before the first round: `before(phase)` only tells the next one to go."""

    def __init__(
        self, socket_path: str, messages: dict[str, list[str]], spread_s: dict[str, float], rounds: int
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sysmon-floor-"))
        self.files = {}
        for phase, xml in messages.items():
            self.files[phase] = self.dir / f"{phase}.msgpack"
            self.files[phase].write_bytes(msgpack.packb(xml))
        self.ready: dict[str, list[subprocess.Popen[bytes]]] = {phase: [] for phase in messages}
        self.started: list[subprocess.Popen[bytes]] = []
        for _ in range(rounds):
            for phase in messages:
                argv = [sys.executable, __file__, socket_path, str(self.files[phase]), str(spread_s[phase])]
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                assert p.stdout is not None
                p.stdout.readline()  # "ready": imported and connected
                self.ready[phase].append(p)

    def before(self, phase: str) -> None:
        """Called as the phase starts: its events begin to flow now, as the monitor's would."""
        p = self.ready[phase].pop(0)
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
        self.started.append(p)

    def wait(self, timeout: float = 120.0) -> None:
        for p in self.started:
            if p.wait(timeout):
                raise RuntimeError(f"logger floor sender exited with {p.returncode}")
        self.started.clear()

    def cleanup(self) -> None:
        for p in (*self.started, *(q for qs in self.ready.values() for q in qs)):
            p.kill()
            p.wait()
        for f in self.files.values():
            f.unlink(missing_ok=True)
        self.dir.rmdir()


def send(socket_path: str, xml: list[str], spread_s: float) -> None:
    """Through filterd's own sink (sendmmsg, blocking when rsyslog's queue is full), once told
    to go on stdin."""
    from filterd.sink.syslog import SyslogSink

    sink = SyslogSink(socket_path)
    ticks = max(1, int(spread_s / TICK_S))
    per = BURST if spread_s <= 0 else max(1, math.ceil(len(xml) / ticks))
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    for i, start in enumerate(range(0, len(xml), per)):
        if spread_s > 0:
            time.sleep(max(0.0, t0 + i * TICK_S - time.monotonic()))
        sink.send_many(xml[start : start + per])
    sink.close()
    if sink.dropped:
        raise SystemExit(f"logger floor: {sink.dropped} messages dropped")


if __name__ == "__main__":
    sock, messages, spread = sys.argv[1:4]
    send(sock, msgpack.unpackb(Path(messages).read_bytes()), float(spread))
