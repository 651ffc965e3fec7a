"""A stopped collector is not a quiet host: filterd says so in the log, and says when it is back."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest

from tests.harness.daemons import Monitor

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]
REPORT = re.compile(r'<Data Name="ID">(Collector\w+)</Data><Data Name="Description">([^<]*)<')


@pytest.fixture
def mon() -> Iterator[Monitor]:
    m = Monitor()
    try:
        yield m.start()
    finally:
        if m.collector is not None and m.collector.poll() is None:
            m.collector.send_signal(signal.SIGCONT)
        m.stop()
        m.cleanup()


def health(lines: list[str]) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for x in lines if "<EventID>255<" in x for m in [REPORT.search(x)] if m]


def test_a_stopped_collector_is_reported_silent_then_resumed(mon: Monitor) -> None:
    assert mon.collector is not None
    mon.collector.send_signal(signal.SIGSTOP)  # its heartbeats stop: 3 periods of 2 s, then reported
    lines = mon.wait_events(lambda ls: any(i == "CollectorSilent" for i, _ in health(ls)), timeout=20)
    (silent,) = [d for i, d in health(lines) if i == "CollectorSilent"]
    assert re.fullmatch(r"no heartbeat from the collector of \S+ for \d+\.\d s", silent), silent
    assert float(silent.split()[-2]) >= 6.0  # printed to 0.1 s: the threshold itself may show
    mon.collector.send_signal(signal.SIGCONT)
    lines = mon.wait_events(lambda ls: any(i == "CollectorResumed" for i, _ in health(ls)), timeout=20)
    (resumed,) = [d for i, d in health(lines) if i == "CollectorResumed"]
    assert re.fullmatch(r"the collector of \S+ is back after \d+\.\d s of silence", resumed), resumed
    assert mon.filterd is not None and mon.filterd.poll() is None
