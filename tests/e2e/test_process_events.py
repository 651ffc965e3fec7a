"""End to end, all real: BPF collector -> ZeroMQ -> filterd (unprivileged) -> rsyslog.

The marker process is `/usr/bin/sleep` started with argv[0] = a unique marker, so its
ProcessCreate and ProcessTerminate can be found, and every field is compared with values read
independently from /proc, /etc/machine-id and the file itself while it runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from lxml import etree

from filterd.schema import BY_ID
from shared.records import ARGS_MAX_BYTES
from tests.harness.daemons import Monitor

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

TICK = os.sysconf("SC_CLK_TCK")


CREATE_FIELDS = list(BY_ID[1].fields)


def parse(xml: str) -> tuple[dict[str, str], list[str], etree._Element]:
    root = etree.fromstring(xml.encode())
    data = root.find("EventData")
    names = [d.get("Name") for d in data]
    return {d.get("Name"): d.text for d in data}, names, root


def find(lines: list[str], event_id: int, needle: str) -> list[dict[str, str]]:
    out = []
    for line in lines:
        if f"<EventID>{event_id}</EventID>" in line and needle in line:
            out.append(parse(line)[0])
    return out


def machine_prefix() -> str:
    return Path("/etc/machine-id").read_text()[:8].lower()


def boot_epoch() -> float:
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def guid_for(pid: int) -> set[str]:
    """Possible ProcessGuids of a live process (start time known to one clock tick)."""
    rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    start_ticks, end_code = int(rest[19]), int(rest[24])
    out = set()
    for delta in (0.0, 1.0 / TICK):
        secs = int(boot_epoch() + start_ticks / TICK + delta)
        key = end_code.to_bytes(8, "little").hex()
        out.add(f"{{{machine_prefix()}-{secs & 0xFFFF:04x}-{secs >> 16:04x}-{key[:4]}-{key[4:]}}}")
    return out


def cmdline(pid: int | str) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()


def test_marker_process_every_field(monitor: Monitor, tmp_path: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    workdir = tmp_path
    proc = subprocess.Popen([marker, "0.5"], executable="/usr/bin/sleep", cwd=workdir)
    monitor._wait(lambda: cmdline(proc.pid).startswith(marker), 10, "the marker's exec")  # /proc shows it
    expected_guids = guid_for(proc.pid)
    started = (
        boot_epoch() + int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]) / TICK
    )
    assert proc.wait() == 0
    lines = monitor.wait_events(lambda ls: bool(find(ls, 5, f'<Data Name="ProcessId">{proc.pid}<')))

    creates = find(lines, 1, marker)
    assert len(creates) == 1, lines[-5:]
    ev = creates[0]
    xml = next(line for line in lines if marker in line and "<EventID>1<" in line)
    _, names, root = parse(xml)
    assert names == CREATE_FIELDS
    ns = root.find("System")
    assert ns.find("Provider").get("Name") == "Linux-Sysmon"
    assert ns.find("Computer").text == os.uname().nodename
    assert ns.find("Version").text == "5" and ns.find("Task").text == "1"

    tty_nr = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[4])
    tty = os.minor(tty_nr) if tty_nr else 0
    session = Path("/proc/self/sessionid").read_text().strip()
    me = os.getpid()
    assert ev["RuleName"] == "-"
    assert ev["ProcessGuid"] in expected_guids
    assert ev["ProcessId"] == str(proc.pid)
    assert ev["Image"] == "/usr/bin/sleep"
    for f in ("FileVersion", "Description", "Product", "Company", "OriginalFileName"):
        assert ev[f] == "-"
    assert ev["CommandLine"] == f"{marker} 0.5"
    assert ev["CurrentDirectory"] == str(workdir)
    assert ev["User"] == "root"
    key = (tty << 32).to_bytes(8, "little").hex()  # (tty << 32) | uid, uid 0
    assert ev["LogonGuid"].startswith(f"{{{machine_prefix()}-")
    assert ev["LogonGuid"].endswith(f"-{key[:4]}-{key[4:]}}}")
    if not tty_nr:  # no terminal, so no utmp login: seconds are 0
        assert ev["LogonGuid"] == f"{{{machine_prefix()}-0000-0000-0000-000000000000}}"
    assert ev["LogonId"] == "0"
    assert ev["TerminalSessionId"] == session
    assert ev["IntegrityLevel"] == "no level"
    assert ev["Hashes"] == "SHA256=" + hashlib.sha256(Path("/usr/bin/sleep").read_bytes()).hexdigest()
    assert ev["ParentProcessGuid"] in guid_for(me)
    assert ev["ParentProcessId"] == str(me)
    assert ev["ParentImage"] == os.path.realpath("/proc/self/exe")
    assert ev["ParentCommandLine"] == cmdline("self")
    assert ev["ParentUser"] == "root"
    utc = time.strptime(ev["UtcTime"][:19], "%Y-%m-%d %H:%M:%S")
    assert abs(time.mktime(utc) - time.timezone - started) < 2

    terms = find(lines, 5, f'<Data Name="ProcessId">{proc.pid}<')
    assert len(terms) == 1
    t = terms[0]
    assert list(t) == ["RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User"]
    assert t["ProcessGuid"] == ev["ProcessGuid"]
    assert t["Image"] == "/usr/bin/sleep"
    assert t["User"] == "root"
    assert t["RuleName"] == "-"
    assert t["UtcTime"] >= ev["UtcTime"]


def test_short_lived_process_has_full_argv(monitor: Monitor) -> None:
    """A process that exits at once still gets its whole command line (read in the kernel)."""
    marker = f"short-{uuid.uuid4().hex}"
    args = [marker] + [f"a{i:04d}-{uuid.uuid4().hex[:8]}" for i in range(300)]
    assert len(" ".join(args)) < ARGS_MAX_BYTES
    subprocess.run(args, executable="/bin/true", check=True)
    lines = monitor.wait_events(
        lambda ls: bool(find(ls, 5, '<Data Name="Image">/usr/bin/true<') and find(ls, 1, marker))
    )
    ev = find(lines, 1, marker)[0]
    assert ev["CommandLine"] == " ".join(args)
    assert ev["Image"] == "/usr/bin/true"


def test_service_events_on_start(monitor: Monitor) -> None:
    lines = monitor.wait_events(lambda ls: any("<EventID>4</EventID>" in x for x in ls))
    assert "<EventID>16</EventID>" in lines[0]
    ev16 = parse(lines[0])[0]
    assert ev16["Configuration"] == "Defaults"
    ev4 = parse(lines[1])[0]
    assert ev4["State"] == "Started" and ev4["SchemaVersion"] == "4.90"


def test_filterd_runs_without_privileges(monitor: Monitor) -> None:
    assert monitor.filterd is not None
    status = Path(f"/proc/{monitor.filterd.pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert all(v != "0" for v in fields["Uid"].split()), fields["Uid"]
    assert all(v != "0" for v in fields["Gid"].split()), fields["Gid"]
    assert int(fields["CapEff"].strip(), 16) == 0
    assert int(fields["CapPrm"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode: the self-sandbox is on


def test_garbage_to_collector_socket_is_counted_and_changes_nothing(monitor: Monitor) -> None:
    import socket

    import zmq

    path = monitor.endpoint[len("ipc://") :]
    # 1. raw bytes on the socket: not even ZMTP
    for junk in (b"\x00" * 64, os.urandom(512), b"GET / HTTP/1.0\r\n\r\n"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(junk)
        s.close()
    # 2. a ZeroMQ peer sending nonsense subscription messages
    ctx = zmq.Context.instance()
    x = ctx.socket(zmq.XSUB)
    x.connect(monitor.endpoint)  # messages wait in the pipe until the connection is up
    for msg in (
        b"",
        b"\x07nonsense",
        b"\x01mark/not-a-number",
        b"\x01want/k/999",
        b"\x01want/k/abc",
        b"\x01want/h/NOPE",
        b"\x00never-subscribed",
    ):
        x.send(msg)
    x.close(linger=10_000)  # returns once they are all sent
    # the collector is alive, counted the bad ones, and still delivers events
    assert monitor.collector is not None and monitor.collector.poll() is None
    marker = f"after-garbage-{uuid.uuid4().hex}"
    subprocess.run([marker], executable="/bin/true", check=True)
    monitor.wait_events(lambda ls: bool(find(ls, 1, marker)))

    def bad_count() -> int:
        hosts = monitor.stats().get("hosts", {})
        return sum(h.get("published", {}).get("bad_subscriptions", 0) for h in hosts.values())

    deadline = time.monotonic() + 10
    while bad_count() < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bad_count() >= 3
    assert monitor.stats()["stats"].get("gap_batches", 0) == 0


def test_user_config_excludes_by_image(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.xml"
    cfg.write_text(
        '<Sysmon schemaversion="4.90"><EventFiltering>'
        '<ProcessCreate onmatch="exclude"><Image condition="is">/usr/bin/true</Image></ProcessCreate>'
        '<ProcessTerminate onmatch="include"><Image condition="end with">/sleep</Image></ProcessTerminate>'
        "</EventFiltering></Sysmon>"
    )
    os.chmod(tmp_path, 0o755)
    os.chmod(cfg, 0o644)
    m = Monitor(config=str(cfg))
    try:
        m.start()
        skip, keep = f"skip-{uuid.uuid4().hex}", f"keep-{uuid.uuid4().hex}"
        subprocess.run([skip], executable="/bin/true", check=True)
        p = subprocess.run([keep, "0.01"], executable="/usr/bin/sleep", check=True)
        assert p.returncode == 0
        lines = m.wait_events(lambda ls: bool(find(ls, 1, keep) and find(ls, 5, "/usr/bin/sleep")))
        assert not find(lines, 1, skip)
        assert not find(lines, 5, '<Data Name="Image">/usr/bin/true<')
        ev16 = next(parse(x)[0] for x in lines if "<EventID>16</EventID>" in x)
        assert ev16["Configuration"] == str(cfg)
        assert ev16["ConfigurationFileHash"] == "SHA256=" + hashlib.sha256(cfg.read_bytes()).hexdigest()
    finally:
        m.stop()
        m.cleanup()


def test_fork_without_exec_terminates_with_the_parents_image(monitor: Monitor) -> None:
    """A child that never execs runs its parent's image; its fork is announced only at exit."""
    code = (
        "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(0.2); os._exit(0)\n"
        "print(pid, flush=True)\nos.waitpid(pid, 0)\n"
    )
    p = subprocess.run(
        [f"forker-{uuid.uuid4().hex[:8]}", "-c", code],
        executable=sys.executable,
        capture_output=True,
        text=True,
        check=True,
    )
    child = int(p.stdout)
    lines = monitor.wait_events(lambda ls: bool(find(ls, 5, f'<Data Name="ProcessId">{child}<')))
    ev = find(lines, 5, f'<Data Name="ProcessId">{child}<')[0]
    assert ev["Image"] == os.path.realpath(sys.executable)
    assert ev["User"] == "root"
    assert not ev["ProcessGuid"].endswith("-000000000000}")
