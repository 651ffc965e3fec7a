"""Nothing is lost across a restart: `kill -9` of filterd or of the collector in the middle of a
burst of processes, then a restart; every marker process is logged (once, but for the one batch
a filterd killed between writing to syslog and saving its position writes again).

Why it holds: the collector releases ring space only for records a filterd acknowledged
(collector/stream.py), keeps batches while no filterd listens and resends them; the programs
are pinned, so while the collector is down the kernel ring keeps what happens; filterd skips
records it already wrote by their stream numbers (filterd/state/streams.py).
"""

from __future__ import annotations

import re
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

N, AT = 301, 100  # prime total, so a lost or doubled batch cannot hide in a round number
CONFIG = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">
<CommandLine condition="contains">restart-marker-</CommandLine>
</ProcessCreate></RuleGroup>
</EventFiltering></Sysmon>
"""


@pytest.fixture
def mon() -> Iterator[Monitor]:
    with running(CONFIG) as m:
        yield m


def burst(tag: str, kill: object) -> None:
    for i in range(N):
        if i == AT:
            kill()  # type: ignore[operator]
        subprocess.run(["/bin/true", f"restart-marker-{tag}-{i}"], check=True)


def logged(m: Monitor, tag: str) -> Counter[str]:
    pat = re.compile(rf"restart-marker-{tag}-(\d+)<")
    return Counter(x for line in m.events() if "<EventID>1<" in line for x in pat.findall(line))


def wait_all(m: Monitor, tag: str) -> Counter[str]:
    m.wait_events(lambda ls: len(logged(m, tag)) >= N, timeout=60)
    return logged(m, tag)


def test_kill_filterd(mon: Monitor) -> None:
    tag = uuid.uuid4().hex[:8]

    def kill() -> None:
        assert mon.filterd is not None
        mon.filterd.send_signal(signal.SIGKILL)
        mon.filterd.wait()
        mon.start_filterd()

    burst(tag, kill)
    seen = wait_all(mon, tag)
    assert len(seen) == N, sorted(set(map(str, range(N))) - set(seen))
    # At least once: a kill between the syslog send and the position write repeats that one
    # batch (storing the position first would lose it instead). Never more than one batch.
    doubled = sorted(int(k) for k, v in seen.items() if v > 1)
    assert max(seen.values()) <= 2 and (not doubled or doubled[-1] - doubled[0] < 64), doubled
    assert not [ln for ln in mon.events() if "<EventID>255<" in ln and "lost" in ln.lower()]


def test_kill_collector(mon: Monitor) -> None:
    tag = uuid.uuid4().hex[:8]

    def kill() -> None:
        assert mon.collector is not None
        mon.collector.send_signal(signal.SIGKILL)
        mon.collector.wait()
        mon.start_collector()

    burst(tag, kill)
    seen = wait_all(mon, tag)
    assert len(seen) == N and max(seen.values()) == 1, seen.most_common(3)
    lost = [ln for ln in mon.events() if "<EventID>255<" in ln and "lost" in ln.lower()]
    assert not lost


def reported_lost(lines: list[str]) -> int:
    found = (
        re.search(r"(\d+) records? from \S+ lost in transit", ln) for ln in lines if "<EventID>255<" in ln
    )
    return sum(int(m.group(1)) for m in found if m)


def test_buffer_overflow_while_filterd_is_away_is_reported() -> None:
    """With a 1 MiB buffer and filterd stopped, a burst overflows the collector's buffer; the
    returning filterd logs every record it still gets, and its loss reports add up to exactly
    the collector's own overflow count."""
    with running(CONFIG, extra_collector=("--buffer-mb", "1")) as m:
        tag = uuid.uuid4().hex[:8]
        assert m.filterd is not None
        m.filterd.send_signal(signal.SIGKILL)
        m.filterd.wait()
        big = "x" * 700  # 1500 execs of ~1 KiB records overflow 1 MiB; a 512-record batch fits in it
        for i in range(1500):
            subprocess.run(["/bin/true", big, f"restart-marker-{tag}-{i}"], check=True)
        m.start_filterd()

        def overflow() -> int:
            return sum(h.get("buffer_overflow_records", 0) for h in m.stats().get("hosts", {}).values())

        m.wait_events(lambda ls: reported_lost(ls) > 0 and reported_lost(ls) == overflow(), 30)
        lost = reported_lost(m.events())
        m.wait_events(lambda ls: 1500 - len(logged(m, tag)) <= lost, 30)  # each missing one is counted
        seen = logged(m, tag)
        assert seen and max(seen.values()) == 1
