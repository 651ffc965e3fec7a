"""`sysmon -i / -c / -u` for real, without systemd: supervisor, BPF collector, filterd, rsyslog.

The instance uses private paths (tests/sysmon_cli/helpers.py) and a private rsyslogd, and is
found like upstream's: `pgrep -x sysmon`. Checked: events reach syslog; `-c new.xml` reloads
filterd only (collector pid and start time unchanged, event 16 logged); a killed daemon is
restarted and counted; `-u` stops everything; EventRecordID continues across a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.rsyslog import Rsyslog
from tests.harness.sysmon_json import differences, expected
from tests.sysmon_cli.helpers import ROOT, Sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

RECORD_ID = re.compile(r"<EventRecordID>(\d+)</EventRecordID>")
ONLY_SLEEP = """<Sysmon schemaversion="4.90">
  <EventFiltering>
    <ProcessCreate onmatch="include">
      <Image condition="end with">/sleep</Image>
    </ProcessCreate>
  </EventFiltering>
</Sysmon>
"""


class Instance:
    """A sandbox plus the private rsyslogd its filterd writes to."""

    def __init__(self) -> None:
        self.box = Sandbox()
        self.rsyslog = Rsyslog(self.box.dir / "rsyslog")
        self.box.syslog_socket = self.rsyslog.socket_path

    def start_syslog(self) -> None:
        self.rsyslog.start()
        for p in (self.rsyslog.dir, Path(self.rsyslog.socket_path).parent):
            os.chmod(p, 0o755)  # filterd runs as `sysmon`

    def sysmon(self, *args: str):  # noqa: ANN201
        return self.box.sysmon(*args)

    def pid(self, name: str) -> int:
        return int((self.box.run_dir / f"{name}.pid").read_text())

    def status(self) -> dict:
        return json.loads((self.box.run_dir / "supervisor.json").read_text())

    def lines(self) -> list[str]:
        return self.rsyslog.lines("msg")

    def wait(self, pred, timeout: float = 30.0) -> list[str]:  # noqa: ANN001
        return self.rsyslog.wait_for(pred, timeout=timeout)

    def close(self) -> None:
        self.box.sysmon("-u", "force")
        self.rsyslog.stop()
        self.box.cleanup()


def pgrep() -> set[int]:
    p = subprocess.run(["pgrep", "-x", "sysmon"], capture_output=True, text=True)
    return {int(x) for x in p.stdout.split()}


def start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def spawn_marker(tag: str) -> None:
    """A short-lived /usr/bin/sleep whose argv carries `tag` (ProcessCreate with that text)."""
    subprocess.run(["/usr/bin/sleep", "0.01", tag], check=False, stderr=subprocess.DEVNULL)


def marker_event(inst: Instance) -> str:
    """Start marker processes until one of their ProcessCreate events is in syslog; return it."""
    tag = f"sysmon-cli-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spawn_marker(tag)
        hits = [ln for ln in inst.lines() if tag in ln and "<EventID>1</EventID>" in ln]
        if hits:
            return hits[0]
        time.sleep(0.3)
    raise TimeoutError(f"no ProcessCreate for {tag}; last lines: {inst.lines()[-3:]}")


@pytest.fixture
def inst() -> Iterator[Instance]:
    i = Instance()
    i.start_syslog()
    try:
        yield i
    finally:
        i.close()


def test_install_reload_restart_uninstall(inst: Instance) -> None:
    before = pgrep()
    r = inst.sysmon("-accepteula", "-i")
    assert r.code == 0, (r, (inst.box.run_dir / "sysmon.log").read_text(errors="replace"))
    assert "Sysmon started." in r.out
    sup = inst.status()["pid"]
    assert sup in pgrep() - before  # found like upstream: pgrep -x sysmon
    assert Path(f"/proc/{sup}/comm").read_text().strip() == "sysmon"
    assert Path(f"/proc/{sup}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/sysmon")
    collector, filterd = inst.pid("collector"), inst.pid("filterd")
    assert os.stat(f"/proc/{filterd}").st_uid != 0  # filterd dropped root

    # 1. events reach syslog; filterd logged 16 (config) and 4 (Started) first
    event = marker_event(inst)
    assert '<Data Name="Image">/usr/bin/sleep</Data>' in event
    lines = inst.lines()
    assert any("<EventID>4</EventID>" in ln and ">Started<" in ln for ln in lines)

    # 2. `-c new.xml` reloads filterd only
    collector_start = start_time(collector)
    new = inst.box.dir / "only-sleep.xml"
    new.write_text(ONLY_SLEEP)
    n16 = sum("<EventID>16</EventID>" in ln for ln in inst.lines())
    r = inst.sysmon("-c", str(new))
    assert r.code == 0, r
    assert "Configuration file validated." in r.out and "Configuration updated." in r.out
    lines = inst.wait(lambda ls: sum("<EventID>16</EventID>" in ln for ln in ls) > n16)
    ev16 = [ln for ln in lines if "<EventID>16</EventID>" in ln][-1]
    assert f'<Data Name="Configuration">{new}</Data>' in ev16  # the path as typed, as upstream
    assert (inst.box.home / "config.xml").read_text() == ONLY_SLEEP
    assert inst.pid("collector") == collector and start_time(collector) == collector_start
    assert inst.pid("filterd") == filterd  # reloaded in place, not restarted
    marker_event(inst)  # still logging under the new rules

    # 3. `-c` dumps the running rules
    r = inst.sysmon("-c")
    assert r.code == 0, r
    assert "Rule configuration (version 4.90):" in r.out
    assert "Image                          filter: end with     value: '/sleep'" in r.out

    # 4. a dead daemon is restarted and counted
    os.kill(filterd, signal.SIGKILL)
    wait_until(
        lambda: (
            inst.status()["daemons"]["filterd"]["restarts"] == 1
            and inst.status()["daemons"]["filterd"]["pid"] not in (None, filterd)
        ),
        30,
        "filterd restart",
    )
    assert inst.status()["daemons"]["filterd"]["exits"] == [-signal.SIGKILL]
    assert inst.pid("collector") == collector
    marker_event(inst)

    # 5. `-u` stops everything
    filterd2 = inst.pid("filterd")
    r = inst.sysmon("-u")
    assert r.code == 0 and "Sysmon stopped." in r.out
    wait_until(lambda: sup not in pgrep(), 10, "supervisor gone from pgrep")
    for pid in (sup, collector, filterd2):
        assert not alive(pid), pid
    assert not (inst.box.run_dir / "sysmon.pid").exists()
    assert any(">Stopped<" in ln and "<EventID>4</EventID>" in ln for ln in inst.lines())
    assert (inst.box.home / "config.xml").exists()  # upstream keeps /opt/sysmon on -u


def test_record_id_survives_restart(inst: Instance) -> None:
    assert inst.sysmon("-i").code == 0
    marker_event(inst)
    first = max(int(m) for ln in inst.lines() for m in RECORD_ID.findall(ln))
    assert inst.sysmon("-u").code == 0
    n = len(inst.lines())

    assert inst.sysmon("-i").code == 0
    marker_event(inst)
    after = [int(m) for ln in inst.lines()[n:] for m in RECORD_ID.findall(ln)]
    assert after and min(after) > first, (first, after[:5])
    assert (inst.box.state / "eventId").exists()


def test_outputs_file_reaches_filterd(inst: Instance) -> None:
    """`json PATH` in <home>/outputs gives JSON lines through the supervisor (filterd makes the
    directory for its user and reopens on `sysmonctl reopen`); a bad outputs file fails `-i` with
    its file and line."""
    inst.box.home.mkdir(parents=True, exist_ok=True)
    outputs = inst.box.home / "outputs"
    outputs.write_text("jsn /var/log/x.json\n")
    r = inst.sysmon("-i")
    assert r.code != 0 and f"{outputs}:1: unknown output 'jsn'" in r.err, r
    json_path = inst.box.dir / "log" / "sysmon.json"
    outputs.write_text(f"# extra outputs\njson {json_path}\n")
    assert inst.sysmon("-i").code == 0

    def lines() -> list[dict]:
        data = json_path.read_bytes() if json_path.exists() else b""
        return [json.loads(x) for x in data.decode().split("\n")[:-1]]

    def json_of(event: str) -> dict:
        rid = int(RECORD_ID.search(event).group(1))
        wait_until(lambda: any(o["System"]["EventRecordID"] == rid for o in lines()), 30, f"JSON line {rid}")
        return next(o for o in lines() if o["System"]["EventRecordID"] == rid)

    event = marker_event(inst)
    assert differences(json_of(event), expected(event), rsyslog=True) == []
    user = os.stat(f"/proc/{inst.pid('filterd')}").st_uid
    assert json_path.parent.stat().st_uid == json_path.stat().st_uid == user
    json_path.rename(json_path.with_suffix(".1"))
    control = str(inst.box.run_dir / "filterd.ctl")
    argv = [sys.executable, "-m", "sysmonctl", "reopen", "--control", control]
    ctl = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=40)
    assert ctl.returncode == 0 and ctl.stdout.strip() == f"reopened {json_path}", ctl
    event = marker_event(inst)
    assert differences(json_of(event), expected(event), rsyslog=True) == []  # in the new file
