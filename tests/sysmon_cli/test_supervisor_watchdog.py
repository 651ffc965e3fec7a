"""A hung collector is detected without systemd: `sysmon -i` for real, the collector SIGSTOPped.

A stopped process keeps its pid, so only the watchdog can tell: the supervisor kills it after
WATCHDOG_S without a ping, restarts it with the usual backoff, counts the kill in
supervisor.json, leaves filterd alone, and events flow again once the new collector is ready.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from sysmon_cli.supervisor import BACKOFF_MAX, START_TIMEOUT, WATCHDOG_S
from tests.sysmon_cli.test_lifecycle import Instance, marker_event, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]


@pytest.fixture
def inst() -> Iterator[Instance]:
    i = Instance()
    i.start_syslog()
    try:
        yield i
    finally:
        i.close()


def test_a_stopped_collector_is_killed_and_restarted(inst: Instance) -> None:
    r = inst.sysmon("-i")
    assert r.code == 0, (r, (inst.box.run_dir / "sysmon.log").read_text(errors="replace"))
    wait_until(lambda: inst.status()["daemons"]["collector"]["ready"], 60, "collector READY=1")
    collector, filterd = inst.pid("collector"), inst.pid("filterd")
    marker_event(inst)

    os.kill(collector, signal.SIGSTOP)
    daemons = lambda: inst.status()["daemons"]  # noqa: E731
    wait_until(
        lambda: daemons()["collector"]["pid"] not in (None, collector),
        WATCHDOG_S + BACKOFF_MAX + 10,  # a bound, not a speed claim: detection + the longest backoff
        "the watchdog's restart",
    )
    c = daemons()["collector"]
    assert c["watchdog_kills"] == 1 and c["exits"] == [-signal.SIGKILL], c
    assert inst.pid("filterd") == filterd  # filterd kept running and reconnects by itself
    log = (inst.box.run_dir / "sysmon.log").read_text(errors="replace")
    assert "collector silent for" in log

    # the new collector compiles its programs, says READY=1, and events reach syslog again
    wait_until(lambda: daemons()["collector"]["ready"], START_TIMEOUT, "new collector READY=1")
    marker_event(inst)
    assert daemons()["filterd"]["restarts"] == 0
