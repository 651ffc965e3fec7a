"""End to end, the JSON sink beside syslog: real collector, filterd (sandboxed, as `sysmon`) and
rsyslog. filterd gets its JSON file from an outputs file (`--outputs`, as the `sysmon` command
passes it), in a directory it has to make. Every JSON line is compared field by field with the
XML rsyslog received for the same EventRecordID; `sysmonctl reopen` after a rename sends the
next events to a new file.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.harness.daemons import Monitor
from tests.harness.sysmon_json import differences, expected

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
MARK = f"jsonwl{uuid.uuid4().hex[:8]}"
EXE = os.path.realpath(sys.executable)
CONFIG = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">
  <CommandLine condition="contains">{mark}</CommandLine></ProcessCreate></RuleGroup>
<RuleGroup groupRelation="or"><ProcessTerminate onmatch="include">
  <Image condition="is">{exe}</Image></ProcessTerminate></RuleGroup>
<RuleGroup groupRelation="or"><NetworkConnect onmatch="include">
  <DestinationPort condition="is">{port}</DestinationPort></NetworkConnect></RuleGroup>
<RuleGroup groupRelation="or"><FileCreate onmatch="include">
  <TargetFilename condition="begin with">{work}/</TargetFilename></FileCreate></RuleGroup>
<RuleGroup groupRelation="or"><FileDelete onmatch="include">
  <TargetFilename condition="begin with">{work}/</TargetFilename></FileDelete></RuleGroup>
</EventFiltering></Sysmon>"""
# creates and deletes a file, connects to the test's listener; argv has a tab and non-ASCII text
WORKLOAD = """
import os, socket, sys
work, tag, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = os.path.join(work, tag + ".txt")
with open(path, "w") as f:
    f.write("x")
os.unlink(path)
socket.create_connection(("127.0.0.1", port)).close()
"""


class Setup:
    def __init__(self, mon: Monitor, work: Path, listener: socket.socket) -> None:
        self.mon = mon
        self.work = work
        self.listener = listener
        self.json_path = mon.dir / "json" / "events.json"

    def run_workload(self, tag: str) -> int:
        p = subprocess.Popen(
            [EXE, "-c", WORKLOAD, str(self.work), tag, str(self.listener.getsockname()[1]), f"{MARK}\tcafé"]
        )
        conn, _ = self.listener.accept()
        conn.close()
        assert p.wait(30) == 0
        return p.pid


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    work = Path(f"/run/sysmon-test-json-{uuid.uuid4().hex[:8]}")
    work.mkdir(mode=0o755)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    cfg = work / "config.xml"
    cfg.write_text(CONFIG.format(mark=MARK, exe=EXE, port=listener.getsockname()[1], work=work))
    mon = Monitor(config=str(cfg))
    outputs = mon.dir / "outputs"
    outputs.write_text(f"# extra outputs\njson {mon.dir}/json/events.json\n")
    mon.extra_filterd = ("--outputs", str(outputs))
    try:
        mon.start()
        yield Setup(mon, work, listener)
    finally:
        mon.stop()
        mon.cleanup()
        listener.close()
        shutil.rmtree(work, ignore_errors=True)


def json_lines(path: Path) -> list[dict]:
    """Every complete line of the file, each parsed (a line that is not JSON fails the test)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


def wait_for(fetch: Callable[[], T], ok: Callable[[T], bool], what: str, timeout: float = 30.0) -> T:
    """fetch() until ok(value); that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s; last: {str(value)[-2000:]}")
        time.sleep(0.05)


def xml_by_record_id(mon: Monitor) -> dict[int, str]:
    out = {}
    for line in mon.events():
        a = line.find("<EventRecordID>")
        if a >= 0:
            out[int(line[a + 15 : line.index("<", a + 15)])] = line
    return out


def rid(obj: dict) -> int:
    return obj["System"]["EventRecordID"]


def workload_done(objs: list[dict], tag: str, pid: int) -> bool:
    seen = {(o["System"]["EventID"], o["EventData"].get("ProcessId")) for o in objs}
    files = [o["EventData"]["TargetFilename"] for o in objs if o["System"]["EventID"] in (11, 23)]
    return {(1, pid), (3, pid), (5, pid), (11, pid), (23, pid)} <= seen and sum(tag in f for f in files) == 2


def compare_with_xml(mon: Monitor, objs: list[dict]) -> int:
    """Every JSON object against rsyslog's XML of the same record id; returns how many."""
    want = {rid(o) for o in objs}
    xml = wait_for(lambda: xml_by_record_id(mon), lambda x: want <= x.keys(), "the same events in syslog")
    for o in objs:
        assert differences(o, expected(xml[rid(o)]), rsyslog=True) == [], (o, xml[rid(o)])
    return len(objs)


def test_every_json_line_is_its_xml(setup: Setup) -> None:
    mon = setup.mon
    pid = setup.run_workload("first")
    objs = wait_for(
        lambda: json_lines(setup.json_path),
        lambda o: workload_done(o, "first", pid),
        "the workload's events in the JSON file",
    )
    assert compare_with_xml(mon, objs) >= 7  # 16, 4, and the workload's 1, 3, 11, 23, 5
    assert {o["System"]["EventID"] for o in objs} >= {1, 3, 4, 5, 11, 16, 23}
    assert len({rid(o) for o in objs}) == len(objs)
    # and the other way round: every XML event of the monitor is in the JSON file
    json_ids = {rid(o) for o in json_lines(setup.json_path)}
    assert set(xml_by_record_id(mon)) <= json_ids
    create = next(o for o in objs if o["System"]["EventID"] == 1 and o["EventData"]["ProcessId"] == pid)
    assert create["EventData"]["CommandLine"].endswith(f"{MARK}\tcafé")  # the real tab, not #011
    assert isinstance(create["EventData"]["ParentProcessId"], int)
    net = next(o for o in objs if o["System"]["EventID"] == 3 and o["EventData"]["ProcessId"] == pid)
    assert net["EventData"]["Initiated"] is True and net["EventData"]["SourceIsIpv6"] is False
    assert net["EventData"]["DestinationPort"] == setup.listener.getsockname()[1]
    assert isinstance(net["EventData"]["SourcePort"], int)
    # made by filterd as root for its user; the file is the unprivileged filterd's
    sysmon = pwd.getpwnam("sysmon").pw_uid
    assert setup.json_path.parent.stat().st_uid == sysmon and setup.json_path.stat().st_uid == sysmon
    stats = wait_for(
        lambda: mon.stats().get("sinks", {}).get("JsonSink", {"sent": -1}),
        lambda st: st["sent"] >= len(json_lines(setup.json_path)),
        "JsonSink counters in the stats file",
    )
    assert stats["dropped"] == 0


def sysmonctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sysmonctl", *args], capture_output=True, text=True, timeout=40, cwd=ROOT
    )


def test_reopen_after_rename(setup: Setup) -> None:
    mon, path = setup.mon, setup.json_path
    status = json.loads(sysmonctl("status", "--json", "--control", mon.control).stdout)
    assert status["filterd"]["json"] == str(path)
    assert "landlock" in status["filterd"]["sandbox"]  # the file's directory is in the sandbox
    rotated = path.with_name("events.json.1")
    path.rename(rotated)
    r = sysmonctl("reopen", "--control", mon.control)
    assert r.returncode == 0 and r.stdout.strip() == f"reopened {path}", r.stdout + r.stderr
    pid = setup.run_workload("second")
    new = wait_for(
        lambda: json_lines(path),
        lambda o: workload_done(o, "second", pid),
        "the second workload in the new file",
    )
    old = json_lines(rotated)
    assert not any("second" in json.dumps(o) for o in old)
    assert max(rid(o) for o in old) < min(rid(o) for o in new)
    assert rotated.read_bytes().endswith(b"\n")
    assert compare_with_xml(mon, new) >= 5
    assert path.stat().st_uid == pwd.getpwnam("sysmon").pw_uid  # made anew inside the sandbox
    assert sysmonctl("reopen", "-q", "--control", mon.control).stdout == ""


def test_reopen_that_fails_keeps_writing(setup: Setup) -> None:
    mon, path = setup.mon, setup.json_path
    d = path.parent
    before = len(json_lines(path))
    os.chmod(d, 0o500)  # the daemon's user can no longer make a file there
    try:
        path.rename(path.with_name("events.json.2"))
        r = sysmonctl("reopen", "--control", mon.control)
        assert r.returncode == 1 and "Permission denied" in r.stderr, r.stdout + r.stderr
    finally:
        os.chmod(d, 0o750)
    pid = setup.run_workload("third")
    kept = wait_for(
        lambda: json_lines(path.with_name("events.json.2")),
        lambda o: workload_done(o, "third", pid),
        "the third workload's events in the file still open",
    )
    assert len(kept) > before
    assert mon.filterd is not None and mon.filterd.poll() is None
