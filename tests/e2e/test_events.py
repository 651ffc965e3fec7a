"""End to end, every other event type, triggered as an admin would, every field asserted.

One monitor with a log-everything config serves the module; each test runs its workload in a
child process (so the acting pid is known) and finds its events by ProcessId.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from filterd.schema import BY_ID
from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

COLLECT_ALL = """<Sysmon schemaversion="4.90"><EventFiltering>
<ProcessCreate onmatch="exclude"/><ProcessTerminate onmatch="exclude"/>
<NetworkConnect onmatch="exclude"/><RawAccessRead onmatch="exclude"/><ProcessAccess onmatch="exclude"/>
<FileCreate onmatch="exclude"/><FileDelete onmatch="exclude"/><DnsQuery onmatch="exclude"/>
<FileCreateTime onmatch="exclude"/><FileDeleteDetected onmatch="exclude"/>
<eBPFEvent onmatch="exclude"/>
</EventFiltering></Sysmon>"""


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    with running(COLLECT_ALL) as m:
        yield m


def parse(line: str) -> tuple[int, dict[str, str]]:
    root = etree.fromstring(line.encode())
    eid = int(root.findtext("System/EventID"))
    data = root.find("EventData")
    names = [d.get("Name") for d in data]
    assert names == list(BY_ID[eid].fields), f"event {eid} field order"
    return eid, {d.get("Name"): d.text for d in data}


def events_of(mon: Monitor, event_id: int, pid: int, min_count: int = 1, timeout: float = 15) -> list[dict]:
    key = "SourceProcessId" if event_id == 10 else "ProcessId"

    def found(lines: list[str]) -> list[dict]:
        out = []
        for line in lines:
            if f"<EventID>{event_id}</EventID>" in line and f'"{key}">{pid}<' in line:
                out.append(parse(line)[1])
        return out

    lines = mon.wait_events(lambda ls: len(found(ls)) >= min_count, timeout=timeout)
    return found(lines)


def run_child(code: str, cwd: str | None = None) -> int:
    """Run python code in a child whose argv[0] is a marker; returns its pid after it exits."""
    p = subprocess.Popen([f"wl-{uuid.uuid4().hex[:8]}", "-c", code], executable=sys.executable, cwd=cwd)
    assert p.wait(30) == 0
    return p.pid


PY_IMAGE = os.path.realpath(sys.executable)
GUID_LEN = len("{00000000-0000-0000-0000-000000000000}")


def check_actor(ev: dict, pid: int, image: str = PY_IMAGE) -> None:
    assert ev["ProcessId"] == str(pid)
    assert ev["Image"] == image
    assert ev["RuleName"] == "-"
    assert len(ev["ProcessGuid"]) == GUID_LEN and not ev["ProcessGuid"].startswith("{00000000-0000")
    assert len(ev["UtcTime"]) == len("2026-11-22 09:49:04.009")


def test_file_create_and_delete(mon: Monitor, tmp_path: Path) -> None:
    d = Path(f"/run/sysmon-test-files-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        code = (
            "import os\n"
            "open('rel.txt', 'w').close()\n"  # relative to cwd
            "open('rel.txt', 'a').close()\n"  # exists: O_CREAT without creating
            "os.close(os.open('/proc/self/cwd/../' + os.path.basename(os.getcwd()) + '/abs.txt',"
            " os.O_CREAT | os.O_WRONLY))\n"
            "fd = os.open('.', os.O_RDONLY)\n"
            "os.close(os.open('at.txt', os.O_CREAT | os.O_WRONLY, dir_fd=fd))\n"
            "os.unlink('at.txt', dir_fd=fd)\n"
            "os.unlink('rel.txt')\n"
            f"os.unlink('{d}/abs.txt')\n"
        )
        pid = run_child(code, cwd=str(d))
        creates = events_of(mon, 11, pid, 3)
        names = sorted(e["TargetFilename"] for e in creates)
        assert names == sorted([f"{d}/rel.txt", f"{d}/abs.txt", f"{d}/at.txt"])
        for e in creates:
            check_actor(e, pid)
            assert e["User"] == "root"
            assert e["CreationUtcTime"] == e["UtcTime"]
        deletes = events_of(mon, 23, pid, 3)
        assert sorted(e["TargetFilename"] for e in deletes) == sorted(
            [f"{d}/at.txt", f"{d}/rel.txt", f"{d}/abs.txt"]
        )
        for e in deletes:
            check_actor(e, pid)
            assert e["User"] == "root"
            assert (e["Hashes"], e["IsExecutable"], e["Archived"]) == ("-", "-", "-")
    finally:
        shutil.rmtree(d, ignore_errors=True)


SELF_DELETE = "import os, time; os.unlink(os.readlink('/proc/self/exe')); time.sleep(30)"


def test_file_delete_detected(mon: Monitor) -> None:
    """One unlink feeds 23 and 26. A deleted file that still runs (here: as another process, and
    as the deleter itself) is hashed through that process; any other file gets `-`."""
    d = Path(f"/var/tmp/sysmon-test-fdel-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    payload = selfdel = None
    try:
        shutil.copy2("/bin/sleep", d / "payload")
        shutil.copy2(os.path.realpath(sys.executable), d / "selfdel")
        (d / "note.txt").write_text("not a program")
        payload = subprocess.Popen([str(d / "payload"), "30"])  # runs on after its file is gone
        selfdel = subprocess.Popen(
            [str(d / "selfdel"), "-c", SELF_DELETE],
            env={"PYTHONHOME": sys.base_prefix},
        )
        pid = run_child("import os\nos.unlink('payload')\nos.unlink('note.txt')\n", cwd=str(d))
        want = {
            "payload": hashlib.sha256(Path("/bin/sleep").read_bytes()).hexdigest(),
            "selfdel": hashlib.sha256(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest(),
        }
        by_name = {}
        got = mon.wait_events(
            lambda ls: sum("<EventID>26</EventID>" in x and str(d) in x for x in ls) >= 3, timeout=15
        )
        for line in got:
            if str(d) in line and "<EventID>26</EventID>" in line:
                e = parse(line)[1]
                by_name[Path(e["TargetFilename"]).name] = e
        assert set(by_name) == {"payload", "note.txt", "selfdel"}
        for name in ("payload", "selfdel"):
            assert by_name[name]["Hashes"] == "SHA256=" + want[name], by_name[name]
            assert by_name[name]["IsExecutable"] == "true"
        assert (by_name["note.txt"]["Hashes"], by_name["note.txt"]["IsExecutable"]) == ("-", "-")
        assert by_name["payload"]["ProcessId"] == str(pid) and by_name["payload"]["Image"] == PY_IMAGE
        assert by_name["selfdel"]["Image"] == f"{d}/selfdel"
        assert by_name["selfdel"]["ProcessId"] == str(selfdel.pid)
        deletes = [e for e in events_of(mon, 23, pid, 2) if str(d) in e["TargetFilename"]]
        assert sorted(Path(e["TargetFilename"]).name for e in deletes) == ["note.txt", "payload"]
    finally:
        for p in (payload, selfdel):
            if p is not None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


def utc(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns // 10**6 % 1000:03d}"


@pytest.mark.parametrize("parent", ["/dev/shm", "/var/tmp"])  # tmpfs, and the root filesystem
def test_file_create_time(mon: Monitor, parent: str) -> None:
    """Given times through utimensat (path and fd forms) and utimes give event 2; "now" does not."""
    d = Path(f"{parent}/sysmon-test-ftime-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        code = (
            "import ctypes, os, time\n"
            "t = time.mktime((2020, 1, 1, 12, 0, 0, 0, 0, -1))\n"  # local time, as in the issue
            "open('a.txt', 'w').close()\n"
            "open('before', 'w').write(str(os.stat('a.txt').st_mtime_ns))\n"
            "time.sleep(1)\n"
            "os.utime('a.txt', (t, t))\n"  # utimensat(AT_FDCWD, "a.txt")
            "fd = os.open('b.txt', os.O_CREAT | os.O_WRONLY)\n"
            "os.utime(fd, ns=(0, 1_500_000_123))\n"  # futimens(fd)
            "os.utime('a.txt')\n"  # now: no event
            "os.utime('b.txt', (5, 5), follow_symlinks=False)\n"
            "tv = (ctypes.c_long * 4)(0, 0, 7, 250000)\n"
            "assert ctypes.CDLL(None, use_errno=True).utimes(b'b.txt', tv) == 0\n"  # utimes(2)
        )
        pid = run_child(code, cwd=str(d))
        events_of(mon, 2, pid, 4)
        mon.drain()  # a wrong fifth event would be in by now
        got = events_of(mon, 2, pid, 4)
        assert [e["TargetFilename"] for e in got] == [f"{d}/a.txt", f"{d}/b.txt", f"{d}/b.txt", f"{d}/b.txt"]
        a, b1, b2, b3 = got
        assert a["CreationUtcTime"] == utc(int(time.mktime((2020, 1, 1, 12, 0, 0, 0, 0, -1))) * 10**9)
        assert a["PreviousCreationUtcTime"] == utc(int((d / "before").read_text()))
        assert (b1["CreationUtcTime"], b2["CreationUtcTime"], b3["CreationUtcTime"]) == (
            "1970-01-01 00:00:01.500",
            "1970-01-01 00:00:05.000",
            "1970-01-01 00:00:07.250",
        )
        assert (b2["PreviousCreationUtcTime"], b3["PreviousCreationUtcTime"]) == (
            "1970-01-01 00:00:01.500",
            "1970-01-01 00:00:05.000",
        )
        for e in got:
            check_actor(e, pid)
            assert e["User"] == "root"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_touch_with_and_without_a_date(mon: Monitor) -> None:
    """`touch -d` sets a given time (event 2); plain `touch` sets "now" (no event, as on Windows)."""
    d = Path(f"/var/tmp/sysmon-test-touch-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        (d / "f").write_text("x")
        dated = subprocess.run(["touch", "-d", "2021-06-01 00:00:00 UTC", str(d / "f")], check=True)
        plain = subprocess.Popen(["touch", str(d / "f")])
        assert plain.wait(30) == 0 and dated.returncode == 0
        got = [parse(x)[1] for x in mon.drain() if "<EventID>2</EventID>" in x and str(d) in x]
        assert [(e["TargetFilename"], e["CreationUtcTime"], e["Image"]) for e in got] == [
            (f"{d}/f", "2021-06-01 00:00:00.000", "/usr/bin/touch")
        ]
        assert got[0]["ProcessId"] != str(plain.pid)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_file_create_time_hostile_arguments(mon: Monitor) -> None:
    """Times at the s64 edge still render; a bad pointer (EFAULT) or a bad nsec (EINVAL) gives none."""
    d = Path(f"/var/tmp/sysmon-test-ftime-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        code = (
            "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "open('a', 'w').close()\n"
            "assert libc.syscall(280, -100, b'a', ctypes.c_void_p(8), 0) == -1\n"  # utimensat, EFAULT
            "bad = (ctypes.c_long * 4)(0, 0, 1, 2_000_000_000)\n"
            "assert libc.syscall(280, -100, b'a', bad, 0) == -1\n"  # EINVAL
            "os.utime('a', ns=(0, 2**63 - 1))\n"
            "os.utime('a', ns=(0, -(2**63)))\n"
        )
        pid = run_child(code, cwd=str(d))
        events_of(mon, 2, pid, 2)
        mon.drain()
        got = events_of(mon, 2, pid, 2)
        assert len(got) == 2
        for e in got:  # clamped by the filesystem to its own range, rendered like any time
            assert re.fullmatch(r"-?\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", e["CreationUtcTime"]), e
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_shell_redirection_creates_once(mon: Monitor) -> None:
    target = f"/run/sysmon-redir-{uuid.uuid4().hex[:8]}"
    p = subprocess.Popen(
        ["/bin/bash", "-c", f"echo a > {target}; echo b > {target}; echo c >> {target}; rm {target}"]
    )
    assert p.wait() == 0
    events_of(mon, 11, p.pid)
    mon.drain()  # a wrong second event would be in by now
    ev = [e for e in events_of(mon, 11, p.pid) if e["TargetFilename"] == target]
    assert len(ev) == 1
    assert ev[0]["Image"] == "/usr/bin/bash"


def test_tcp_connect_and_accept_v4_v6(mon: Monitor) -> None:
    code = (
        "import socket\n"
        "for fam, addr in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
        "    srv = socket.socket(fam); srv.bind((addr, 0)); srv.listen()\n"
        "    c = socket.socket(fam); c.connect(srv.getsockname()[:2])\n"
        "    a, _ = srv.accept(); print(fam, srv.getsockname()[1], c.getsockname()[1], flush=True)\n"
        "    a.close(); c.close(); srv.close()\n"
        "    f = socket.socket(fam)\n"
        "    try: f.connect((addr, 1))\n"
        "    except OSError: pass\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ports = [tuple(int(x) for x in line.split()[1:]) for line in p.stdout.splitlines()]
    # the child's pid: find it through the events of its listening port
    lines = mon.wait_events(lambda ls: sum(f'"DestinationPort">{ports[1][0]}<' in x for x in ls) >= 2)
    evs = [parse(x)[1] for x in lines if "<EventID>3</EventID>" in x]
    pid = next(e["ProcessId"] for e in evs if e["DestinationPort"] == str(ports[0][0]))
    mine = [e for e in evs if e["ProcessId"] == pid and e["Protocol"] == "tcp"]
    assert len(mine) == 4, mine  # connect + accept, twice; the failed connects give nothing
    for (srv_port, cli_port), ip, v6 in zip(
        ports, ("127.0.0.1", "0:0:0:0:0:0:0:1"), ("false", "true"), strict=True
    ):
        out = next(e for e in mine if e["Initiated"] == "true" and e["DestinationPort"] == str(srv_port))
        inn = next(e for e in mine if e["Initiated"] == "false" and e["DestinationPort"] == str(srv_port))
        assert (out["SourceIp"], out["SourcePort"], out["DestinationIp"]) == (ip, str(cli_port), ip)
        assert (inn["SourceIp"], inn["SourcePort"], inn["DestinationIp"]) == (ip, str(cli_port), ip)
        for e in (out, inn):
            assert e["SourceIsIpv6"] == e["DestinationIsIpv6"] == v6
            assert e["User"] == "root" and e["Image"] == PY_IMAGE
            assert e["SourceHostname"] == e["DestinationHostname"] == "-"
            assert e["SourcePortName"] == e["DestinationPortName"] == "-"


def test_udp_send_and_receive_once_per_flow(mon: Monitor) -> None:
    code = (
        "import socket\n"
        "for fam, addr in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
        "    r = socket.socket(fam, socket.SOCK_DGRAM); r.bind((addr, 0))\n"
        "    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, 0))\n"
        "    for _ in range(5): s.sendto(b'x', r.getsockname()[:2])\n"
        "    for _ in range(5): r.recvfrom(16)\n"
    )
    pid = run_child(code)
    mon.drain()  # all of them: a flow reported twice would show
    evs = [e for e in events_of(mon, 3, pid, 4) if e["Protocol"] == "udp"]
    assert len(evs) == 4, evs  # v4/v6 x send/receive, each once despite 5 datagrams
    sends = [e for e in evs if e["Initiated"] == "true"]
    recvs = [e for e in evs if e["Initiated"] == "false"]
    assert len(sends) == len(recvs) == 2
    for s in sends:
        r = next(x for x in recvs if x["SourceIsIpv6"] == s["SourceIsIpv6"])
        # receive: Source is the remote sender, Destination this socket
        assert (r["SourceIp"], r["SourcePort"]) == (s["SourceIp"], s["SourcePort"])
        assert (r["DestinationIp"], r["DestinationPort"]) == (s["DestinationIp"], s["DestinationPort"])


def test_raw_access_read_of_loop_device(mon: Monitor, tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(b"\0" * (1 << 20))
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        p = subprocess.Popen(["dd", f"if={dev}", "of=/dev/null", "bs=512", "count=1", "status=none"])
        assert p.wait() == 0
        ev = events_of(mon, 9, p.pid)[0]
        check_actor(ev, p.pid, "/usr/bin/dd")
        assert ev["Device"] == dev
        assert ev["User"] == "root"
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_process_access_ptrace_attach(mon: Monitor) -> None:
    code = (
        "import ctypes, os, time, signal\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.execv('/usr/bin/sleep', ['sleep', '5'])\n"
        "while os.readlink(f'/proc/{pid}/exe') != '/usr/bin/sleep': time.sleep(0.01)\n"  # exec'd
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.ptrace(16, pid, 0, 0) == 0\n"
        "os.waitpid(pid, 0)\n"
        "print(pid, flush=True)\n"
        "libc.ptrace(17, pid, 0, 0); os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    target = int(p.stdout.readline())
    p.wait()
    ev = events_of(mon, 10, p.pid)[0]
    assert ev["SourceProcessId"] == str(p.pid) and ev["SourceThreadId"] == str(p.pid)
    assert ev["SourceImage"] == PY_IMAGE and ev["TargetImage"] == "/usr/bin/sleep"
    assert ev["TargetProcessId"] == str(target)
    assert ev["TargetProcessGUID"] != ev["SourceProcessGUID"]
    assert ev["GrantedAccess"] == "0x0" and ev["CallTrace"] == "-"
    assert ev["SourceUser"] == ev["TargetUser"] == "root"
    # the target's GUID is the one its own events carry
    term = events_of(mon, 5, target)[0]
    assert term["ProcessGuid"] == ev["TargetProcessGUID"]


BPF_PROG_LOAD_CODE = r"""
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
insns = struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0)  # r0 = 0; exit
buf = ctypes.create_string_buffer(insns)
lic = ctypes.create_string_buffer(b'GPL')
attr = bytearray(128)
struct.pack_into('<IIQQ', attr, 0, 1, 2, ctypes.addressof(buf), ctypes.addressof(lic))  # SOCKET_FILTER
attr[48:48 + 11] = b'sysmon_test'
a = ctypes.create_string_buffer(bytes(attr), 128)
fd = libc.syscall(321, 5, a, 128)
assert fd >= 0, ctypes.get_errno()
print(fd, flush=True)
"""


def test_ebpf_program_load(mon: Monitor) -> None:
    p = subprocess.run([sys.executable, "-c", BPF_PROG_LOAD_CODE], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = mon.wait_events(lambda ls: any("sysmon_test" in x and "<EventID>100<" in x for x in ls))
    ev = next(parse(x)[1] for x in lines if "sysmon_test" in x and "<EventID>100<" in x)
    assert ev["BpfCommand"] == "BPF_PROG_LOAD"
    assert ev["BpfProgramType"] == "SOCKET_FILTER"
    assert ev["BpfProgramName"] == "sysmon_test"
    assert int(ev["BpfProgramId"]) > 0
    assert ev["User"] == "root" and ev["Image"] == PY_IMAGE


def dns_answer(q: bytes) -> bytes:
    """Answer for names under `.sysmon.test.`: 192.0.2.7 for A, NXDOMAIN for `*.missing.*`."""
    end = q.index(b"\0", 12) + 5
    question = q[12:end]
    qtype = struct.unpack(">H", q[end - 4 : end - 2])[0]
    if b"\x07missing" in q[12 : end - 4]:
        return q[:2] + b"\x81\x83" + struct.pack(">HHHH", 1, 0, 0, 0) + question
    answers, count = b"", 0
    if qtype == 1:
        answers, count = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7]), 1
    return q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, count, 0, 0) + question + answers


class DnsResponder:
    """A tiny authoritative server on `addr`:53, UDP and TCP, answering with dns_answer()."""

    def __init__(self, addr: str = "127.0.0.153") -> None:
        self.addr = addr
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, 53))
        self.tcp.listen()
        self.running = True
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.serve_udp, self.serve_tcp)]
        for t in self.threads:
            t.start()

    def serve_udp(self) -> None:
        self.udp.settimeout(0.2)
        while self.running:
            try:
                q, peer = self.udp.recvfrom(512)
            except TimeoutError:
                continue
            self.udp.sendto(dns_answer(q), peer)

    def serve_tcp(self) -> None:
        self.tcp.settimeout(0.2)
        while self.running:
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    while True:
                        n = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
                        a = dns_answer(conn.recv(n, socket.MSG_WAITALL))
                        conn.sendall(struct.pack(">H", len(a)) + a)
                except (OSError, struct.error):
                    pass

    def close(self) -> None:
        self.running = False
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()


def resolve_with(addr: str, options: str, tmp_path: Path, commands: str) -> None:
    """Run getent `commands` with /etc/resolv.conf pointing at a DnsResponder on `addr`
    (bind-mounted in a private mount namespace, so the host's resolver is untouched)."""
    dns = DnsResponder(addr)
    resolv = tmp_path / f"resolv-{addr}.conf"
    resolv.write_text(f"nameserver {addr}\noptions {options} attempts:1 timeout:2\n")
    try:
        script = f"mount --bind {resolv} /etc/resolv.conf && {commands}"
        p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script])
        assert p.wait(20) == 0
    finally:
        dns.close()


def dns_events(mon: Monitor, name: str) -> list[dict]:
    lines = mon.wait_events(lambda ls: any(name in x and "<EventID>22<" in x for x in ls))
    return [parse(x)[1] for x in lines if name in x and "<EventID>22<" in x]


def test_dns_query_against_local_responder(mon: Monitor, tmp_path: Path) -> None:
    name = f"h{uuid.uuid4().hex[:8]}.sysmon.test"
    resolve_with(
        "127.0.0.153", "", tmp_path, f"getent ahostsv4 {name}; getent hosts x.missing.sysmon.test; true"
    )
    ev = dns_events(mon, name)[0]
    assert ev["QueryName"] == name
    assert ev["QueryStatus"] == "0"
    assert ev["QueryResults"] == "::ffff:192.0.2.7;"
    assert ev["Image"] == "/usr/bin/getent" and ev["User"] == "root"
    miss = dns_events(mon, "x.missing.sysmon.test")[0]
    assert miss["QueryStatus"] == "9003" and miss["QueryResults"] == "-"


def test_dns_query_over_tcp(mon: Monitor, tmp_path: Path) -> None:
    name = f"t{uuid.uuid4().hex[:8]}.sysmon.test"
    resolve_with("127.0.0.155", "use-vc", tmp_path, f"getent ahostsv4 {name}")
    evs = dns_events(mon, name)
    assert evs[0]["QueryName"] == name and evs[0]["QueryStatus"] == "0"
    assert "::ffff:192.0.2.7;" in [e["QueryResults"] for e in evs]


@pytest.mark.parametrize("also_26", [False, True])
def test_file_delete_alone_leaves_the_ctime_hooks_detached(also_26: bool) -> None:
    """The unlinked inode (and the hooks that fire on every ctime change) only for event 26."""
    tags = '<FileDelete onmatch="exclude"/>' + ('<FileDeleteDetected onmatch="exclude"/>' if also_26 else "")
    with running(f'<Sysmon schemaversion="4.90"><EventFiltering>{tags}</EventFiltering></Sysmon>') as m:
        f = Path(f"/run/sysmon-ctime-{uuid.uuid4().hex[:8]}")
        f.write_text("x")
        pid = run_child(f"import os\nos.unlink('{f}')\n")
        events_of(m, 23, pid)
        hooks = {h for c in m.stats()["hosts"].values() for h in c.get("attached_hooks", [])}
        ctime = {"ctime_ns_xchg", "ctime_xchg_skip", "inode_set_ctime_to_ts"}
        assert (hooks & ctime) == (ctime if also_26 else set())
        assert "syscalls:sys_enter_unlinkat" in hooks


def test_disabled_event_types_cost_nothing_in_the_kernel() -> None:
    """With the default config (events 1 and 5 only) the file and network programs emit nothing."""
    m = Monitor()
    try:
        m.start()
        before = m.kernel_counters()
        code = (
            "import socket, os\n"
            "for i in range(50):\n"
            "    f = f'/run/gate-{os.getpid()}-{i}'\n"
            "    open(f, 'w').close(); os.unlink(f)\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', 9))\n"
        )
        run_child(code)
        m.drain_counters()
        after = m.kernel_counters()
        for kind in (4, 5, 6, 7, 8, 9, 10):
            assert after.get(kind, 0) == before.get(kind, 0) == 0, (kind, after)
        assert after[1] > before.get(1, 0)  # exec records still flow
        # and the hooks of unwanted kinds are not even attached
        hooks = {h for c in m.stats()["hosts"].values() for h in c.get("attached_hooks", [])}
        assert hooks == {"sched:sched_process_exec", "sched:sched_process_exit", "sched_process_fork"}
    finally:
        m.stop()
        m.cleanup()
