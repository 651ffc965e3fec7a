"""sysmonctl against a real running monitor: status, stats, reload (collector untouched), tail."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

NAMED = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup name="" groupRelation="or"><ProcessCreate onmatch="include">
<Image name="true-runs" condition="end with">/true</Image>
<Image name="sleeps" condition="end with">/sleep</Image>
</ProcessCreate></RuleGroup></EventFiltering></Sysmon>"""
ONLY_SLEEP = NAMED.replace('<Image name="true-runs" condition="end with">/true</Image>\n', "")


def sysmonctl(*args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sysmonctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    with running(NAMED) as m:
        yield m


def test_status(mon: Monitor) -> None:
    r = sysmonctl("status", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    pids = [line.split()[1] for line in r.stdout.splitlines() if line.split()[:1] == ["pid"]]
    assert pids == [str(mon.filterd.pid), str(mon.collector.pid)]
    assert "config hash      SHA256=" in r.stdout and f"config file      {mon.config}" in r.stdout
    s = json.loads(sysmonctl("status", "--json", "--control", mon.control).stdout)
    f, (c,) = s["filterd"], s["collectors"].values()
    assert f["uid"] != 0 and f["endpoints"] == [mon.endpoint] and f["sandbox"].startswith("landlock ABI")
    assert c["pid"] == mon.collector.pid and c["version"] != "-" and c["uptime_s"] > 0


def test_stats_and_rule_hits(mon: Monitor) -> None:
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
    mon.drain()  # every event of those three is handled and counted

    def kernel_counted() -> bool:  # the collector's counters arrive with its next heartbeat
        j = json.loads(sysmonctl("stats", "--json", "--control", mon.control).stdout)
        return any(c.get("published", {}).get("records") for c in j["collectors"].values())

    deadline = time.monotonic() + 30
    while not kernel_counted():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = sysmonctl("stats", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    for label in ("kernel emitted PROCESS_EXEC", "kernel dropped PROCESS_EXEC", "published records",
                  "batches received", "batches lost", "records decoded", "events included", "events excluded",
                  "events written", "sink SyslogSink sent"):  # fmt: skip
        assert label in r.stdout, r.stdout
    hits = {
        line.split()[-1]: int(line.split()[0])
        for line in r.stdout.split("rule hits", 1)[1].splitlines()[1:]
        if line.strip()
    }
    assert hits["true-runs"] >= 3
    j = json.loads(sysmonctl("stats", "--json", "--control", mon.control).stdout)
    assert j["rule_hits"]["true-runs"] >= hits["true-runs"]
    assert j["filterd"]["written"] >= j["filterd"]["included"] >= 3


def test_reload_keeps_the_collector_and_rejects_bad_configs(mon: Monitor) -> None:
    pid, started = mon.collector.pid, start_time(mon.collector.pid)
    cfg = Path(mon.config)
    cfg.write_text(ONLY_SLEEP)
    r = sysmonctl("reload", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(ONLY_SLEEP.encode()).hexdigest().upper()
    assert f"SHA256={digest}" in r.stdout.upper()  # the hash of the very bytes now in force
    mon.wait_events(lambda ls: any("<EventID>16<" in x and digest in x.upper() for x in ls))  # event 16
    cfg.write_text(
        "<Sysmon schemaversion='4.90'><EventFiltering><ProcessCreate onmatch='include'>"
        "<Image condition='sounds like'>x</Image></ProcessCreate></EventFiltering></Sysmon>"
    )
    r = sysmonctl("reload", "--control", mon.control)
    assert r.returncode == 1 and "Unknown condition" in r.stderr
    marker = f"after-reload-{uuid.uuid4().hex[:8]}"
    subprocess.run([marker, "0.01"], executable="/usr/bin/sleep", check=True)
    subprocess.run([marker], executable="/bin/true", check=True)
    lines = mon.wait_events(lambda ls: any(marker in x and "/usr/bin/sleep<" in x for x in ls))
    assert not any(marker in x and "/usr/bin/true<" in x for x in lines)  # ONLY_SLEEP still in force
    assert mon.collector.pid == pid and start_time(pid) == started and mon.collector.poll() is None
    cfg.write_text(NAMED)
    assert sysmonctl("reload", "--control", mon.control).returncode == 0


def tail_clients(mon: Monitor) -> int:
    return json.loads(sysmonctl("stats", "--json", "--control", mon.control).stdout)["tail"].get("clients", 0)


def test_tail_follows_events_with_filters(mon: Monitor) -> None:
    argv = ["tail", "--control", mon.control, "-e", "1", "-f", "Image=*/SLEEP", "-f", "CommandLine=tailed-*"]
    p = subprocess.Popen(
        [sys.executable, "-m", "sysmonctl", *argv],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 15
        while tail_clients(mon) != 1:
            assert time.monotonic() < deadline, "tail never connected"
            time.sleep(0.2)
        marker = f"tailed-{uuid.uuid4().hex[:8]}"
        subprocess.run([marker], executable="/bin/true", check=True)  # filtered out by -f Image
        subprocess.run(["other", "0.01"], executable="/usr/bin/sleep", check=True)  # by -f CommandLine
        subprocess.run([marker, "0.01"], executable="/usr/bin/sleep", check=True)
        line = p.stdout.readline()  # the first line shown must be the one event that passes
        assert marker in line and "[1 ProcessCreate]" in line and "Image=/usr/bin/sleep" in line, line
    finally:
        p.terminate()
        p.wait()
    deadline = time.monotonic() + 5
    while tail_clients(mon):
        assert time.monotonic() < deadline, "filterd kept a gone tail client"
        time.sleep(0.2)
    assert mon.filterd.poll() is None
