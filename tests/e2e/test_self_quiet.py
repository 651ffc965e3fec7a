"""The monitor does not log itself: filterd's own file writes (its stats file, every second)
give no FileCreate even with a config that logs every file created, while the same write by
another process does. Its pid is known to the collector from the kernel (SO_PEERCRED of its
connection), and its events are dropped in the kernel."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

LOG_ALL_FILES = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><FileCreate onmatch="exclude"/></RuleGroup>
</EventFiltering></Sysmon>
"""


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    with running(LOG_ALL_FILES) as m:
        yield m


def test_stats_file_writes_are_not_logged(mon: Monitor, tmp_path: Path) -> None:
    writes = []
    deadline = time.monotonic() + 30
    while len(writes) < 3 and time.monotonic() < deadline:  # three stats writes by filterd
        st = mon.stats_path.stat().st_mtime_ns
        if not writes or writes[-1] != st:
            writes.append(st)
        time.sleep(0.1)
    assert len(writes) == 3
    marker = tmp_path / f"not-quiet-{uuid.uuid4().hex[:8]}.json.tmp"
    marker.write_text(json.dumps({"x": 1}))  # the same kind of write by a process that is not ours
    lines = mon.wait_events(lambda ls: any(marker.name in ln for ln in ls))
    creates = [ln for ln in lines if "<EventID>11<" in ln]
    assert any(marker.name in ln for ln in creates)
    ours = [ln for ln in creates if str(mon.stats_path) in ln]  # other monitors may run beside us
    assert not ours, ours[0][-700:]
