"""sysmonctl against a real running monitor: status, stats, reload (collector untouched), tail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import Monitor

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
    d = Path(f"/run/sysmon-test-ctl-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o755)
    cfg = d / "config.xml"
    cfg.write_text(NAMED)
    cfg.chmod(0o644)
    m = Monitor(config=str(cfg))
    try:
        yield m.start()
    finally:
        m.stop()
        m.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def test_status(mon: Monitor) -> None:
    r = sysmonctl("status", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    assert f"pid                    {mon.filterd.pid}" in r.stdout
    assert f"pid                    {mon.collector.pid}" in r.stdout
    assert "config hash            SHA256=" in r.stdout


def test_stats_and_rule_hits(mon: Monitor) -> None:
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
    time.sleep(3)
    r = sysmonctl("stats", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    assert "events written" in r.stdout and "kernel dropped" in r.stdout
    hits = {
        line.split()[-1]: int(line.split()[0])
        for line in r.stdout.split("rule hits", 1)[1].splitlines()
        if line.strip()
    }
    assert hits["true-runs"] >= 3


def test_reload_keeps_the_collector_and_rejects_bad_configs(mon: Monitor) -> None:
    pid, started = mon.collector.pid, start_time(mon.collector.pid)
    cfg = Path(mon.config)
    cfg.write_text(ONLY_SLEEP)
    r = sysmonctl("reload", "--control", mon.control)
    assert r.returncode == 0, r.stderr
    assert "SHA256=" in r.stdout
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


def test_tail_follows_events(mon: Monitor) -> None:
    p = subprocess.Popen(
        [sys.executable, "-m", "sysmonctl", "tail", "--control", mon.control, "-e", "1", "-f", "Image=sleep"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        time.sleep(1.0)
        marker = f"tailed-{uuid.uuid4().hex[:8]}"
        subprocess.run([marker, "0.01"], executable="/usr/bin/sleep", check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if marker in line:
                assert "[1]" in line and "Image=/usr/bin/sleep" in line
                break
        else:
            raise AssertionError("no tailed event")
    finally:
        p.terminate()
        p.wait()
