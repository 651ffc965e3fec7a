"""Record and replay with the real daemons: `sysmonctl record` while a workload runs (23 marker
processes, files created), then `sysmonctl replay` of the recording with two other configs.

The live config logs the markers' ProcessCreate only; the recorder asks for FileCreate records
too (--events 11), which the live config never logs. A replay with a markers-only config gives
exactly the 23 markers, each the XML rsyslog got from the live filterd except what differs by
nature (EventRecordID, TimeCreated); a replay with a FileCreate-only config gives exactly the
files. The markers' parent (this test process) started before the recording: its image and
command line come from the context filterd writes at the start of the recording.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import records
from sysmonctl.record import parts, read_part
from tests.harness.daemons import Monitor
from tests.harness.sysmon_json import differences, expected

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

ROOT = Path(__file__).resolve().parents[2]
MARK = f"recmark{uuid.uuid4().hex[:8]}"
MARKERS, FILES = 23, 7
LIVE = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">
  <CommandLine name="live-markers" condition="contains">{mark}</CommandLine></ProcessCreate></RuleGroup>
</EventFiltering></Sysmon>"""
ONLY_MARKERS = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">
  <CommandLine name="live-markers" condition="contains">{mark}</CommandLine></ProcessCreate></RuleGroup>
<ProcessTerminate onmatch="include"/>
</EventFiltering></Sysmon>"""
ONLY_FILES = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><FileCreate onmatch="include">
  <TargetFilename name="work-files" condition="begin with">{work}/</TargetFilename></FileCreate></RuleGroup>
<ProcessCreate onmatch="include"/><ProcessTerminate onmatch="include"/>
</EventFiltering></Sysmon>"""
MAKE_FILES = """import sys
for i in range(int(sys.argv[2])):
    open(f"{sys.argv[1]}/f{i}.txt", "w").close()
"""


def sysmonctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sysmonctl", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[Monitor, Path]]:
    work = Path(f"/run/sysmon-test-rec-{uuid.uuid4().hex[:8]}")
    work.mkdir(mode=0o755)
    for name, text in (("live.xml", LIVE), ("markers.xml", ONLY_MARKERS), ("files.xml", ONLY_FILES)):
        (work / name).write_text(text.format(mark=MARK, work=work / "files"))
    (work / "files").mkdir()
    mon = Monitor(config=str(work / "live.xml"))
    try:
        mon.start()
        yield mon, work
    finally:
        mon.stop()
        mon.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def wait_until(cond: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        time.sleep(0.05)


def file_create_enabled(mon: Monitor) -> bool:
    hosts = mon.stats().get("hosts", {})
    return any(records.FILE_CREATE.kind in h.get("enabled_kinds", ()) for h in hosts.values())


def normalised(xml: str) -> str:
    """What differs by nature between a live event and its replay: the record id, the time."""
    xml = re.sub(r"<EventRecordID>\d+</EventRecordID>", "<EventRecordID/>", xml)
    return re.sub(r'<TimeCreated SystemTime="[^"]*"/>', "<TimeCreated/>", xml)


def data(xml: str, name: str) -> str:
    m = re.search(f'<Data Name="{name}">([^<]*)</Data>', xml)
    return m.group(1) if m else ""


def test_record_then_replay_with_two_configs(setup: tuple[Monitor, Path]) -> None:
    mon, work = setup
    rec = work / "rec" / "stream.rec.gz"
    rec.parent.mkdir()
    assert not file_create_enabled(mon)  # the live config needs no FileCreate records
    recorder = subprocess.Popen(
        [sys.executable, "-m", "sysmonctl", "record", str(rec), "--control", mon.control, "--events", "11"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert recorder.stderr is not None
        assert "recording to" in recorder.stderr.readline()
        wait_until(lambda: file_create_enabled(mon), "FileCreate records switched on for the recorder")
        stats = json.loads(sysmonctl("stats", "--json", "--control", mon.control).stdout)
        assert stats["record"]["clients"] == 1
        # files first, then the markers: once the last marker is in syslog, the files' records
        # (earlier in the kernel ring) went through filterd, and so to the recorder
        subprocess.run([sys.executable, "-c", MAKE_FILES, str(work / "files"), str(FILES)], check=True)
        pids = []
        for i in range(MARKERS):
            p = subprocess.Popen([f"{MARK}-{i}", "arg"], executable="/bin/true")
            p.wait()
            pids.append(p.pid)
        live = mon.wait_events(lambda ls: sum(MARK in x for x in ls) >= MARKERS, timeout=30)
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(60) == 0
        summary = recorder.stderr.read()
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    assert " 0 frames" not in summary and "lost" not in summary, summary
    wait_until(lambda: not file_create_enabled(mon), "FileCreate records switched off after the recording")
    assert parts(rec) == [rec] and rec.stat().st_mode & 0o777 == 0o600
    entries = list(read_part(rec))  # whole and closed: reading it raises nothing
    assert entries[-1].info.get("note") == "end"

    # -- config 1: the markers, exactly, as the live filterd logged them --------------------------
    r = sysmonctl("replay", str(rec), "--config", str(work / "markers.xml"))
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
    replayed = r.stdout.splitlines()
    assert len(replayed) == MARKERS, [x[:300] for x in replayed]
    assert sorted(int(data(x, "ProcessId")) for x in replayed) == sorted(pids)
    live_by_pid = {data(x, "ProcessId"): x for x in live if MARK in x}
    for x in replayed:
        assert normalised(x) == normalised(live_by_pid[data(x, "ProcessId")])
    assert data(replayed[0], "ParentCommandLine") != "-"  # the parent from the recording's context
    assert re.search(rf"\b{MARKERS}\s+live-markers\b", r.stderr), r.stderr
    assert "events written: 23" in r.stderr

    # the same events as JSON lines
    j = sysmonctl("replay", str(rec), "--config", str(work / "markers.xml"), "--format", "json")
    assert j.returncode == 0, j.stderr
    objs = [json.loads(line) for line in j.stdout.splitlines()]
    assert len(objs) == MARKERS
    for o, x in zip(objs, replayed, strict=True):
        assert differences(o, expected(x)) == [] or all(
            "TimeCreated" in d for d in differences(o, expected(x))
        ), differences(o, expected(x))

    # -- config 2: the files, exactly, and no process ------------------------------------------
    r = sysmonctl("replay", str(rec), "--config", str(work / "files.xml"))
    assert r.returncode == 0, r.stderr
    replayed = r.stdout.splitlines()
    names = sorted(data(x, "TargetFilename") for x in replayed)
    assert names == sorted(f"{work}/files/f{i}.txt" for i in range(FILES)), [x[:300] for x in replayed]
    assert all("<EventID>11</EventID>" in x for x in replayed)
    assert re.search(rf"\b{FILES}\s+work-files\b", r.stderr), r.stderr
