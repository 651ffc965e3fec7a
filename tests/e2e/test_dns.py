"""End to end, DnsQuery (22) beyond recvfrom: answers read with recvmmsg(), and queries never
answered, reported with QueryStatus 1460 once filterd's QUERY_TIMEOUT_S has passed.

The answering server is test_events' DnsResponder; the silent one is a bound UDP socket nobody
reads. Each workload runs in a child process so the querying pid is known.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_events import PY_IMAGE, DnsResponder, dns_events
from tests.e2e.test_events import mon as mon  # the module's monitor fixture, log-everything config
from tests.harness.daemons import Monitor

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

# A child that sends one A query for argv[2] to argv[1]:53 from an unconnected socket (sendto
# with an address) and, unless argv[3] is "silent", reads the answer with recvmmsg().
CHILD = r"""
import ctypes, socket, struct, sys
addr, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
q = struct.pack(">HHHHHH", 0x2b2b, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(q, (addr, 53))
if mode == "silent":
    sys.exit(0)

class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]

class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]

assert ctypes.sizeof(msghdr) == 56 and ctypes.sizeof(mmsghdr) == 64
libc = ctypes.CDLL(None, use_errno=True)
buf, peer = ctypes.create_string_buffer(512), ctypes.create_string_buffer(16)
iov = iovec(ctypes.cast(buf, ctypes.c_void_p), 512)
msgs = (mmsghdr * 2)()
msgs[0].hdr.name, msgs[0].hdr.namelen = ctypes.cast(peer, ctypes.c_void_p), 16
msgs[0].hdr.iov, msgs[0].hdr.iovlen = ctypes.pointer(iov), 1
n = libc.recvmmsg(s.fileno(), msgs, 2, 0x10000, None)  # MSG_WAITFORONE: return after the first
assert n == 1 and msgs[0].len > 12, (n, ctypes.get_errno())
"""


@pytest.fixture
def silent() -> Iterator[str]:
    """A UDP socket on port 53 that never answers."""
    addr = "127.0.0.157"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    try:
        yield addr
    finally:
        s.close()


def run_child(addr: str, name: str, mode: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", CHILD, addr, name, mode], stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    return p.pid


def test_answer_read_with_recvmmsg(mon: Monitor) -> None:
    name = f"m{uuid.uuid4().hex[:8]}.sysmon.test"
    dns = DnsResponder("127.0.0.156")
    try:
        pid = run_child("127.0.0.156", name, "recvmmsg")
    finally:
        dns.close()
    [ev] = dns_events(mon, name)
    assert ev["ProcessId"] == str(pid) and ev["Image"] == PY_IMAGE and ev["User"] == "root"
    assert (ev["QueryStatus"], ev["QueryResults"]) == ("0", "::ffff:192.0.2.7;")


def test_unanswered_query_is_a_timeout(mon: Monitor, silent: str) -> None:
    answered = f"a{uuid.uuid4().hex[:8]}.sysmon.test"
    dns = DnsResponder("127.0.0.156")
    try:
        run_child("127.0.0.156", answered, "recvmmsg")
    finally:
        dns.close()
    name = f"s{uuid.uuid4().hex[:8]}.sysmon.test"
    pid = run_child(silent, name, "silent")
    [ev] = dns_events(mon, name)
    assert ev["ProcessId"] == str(pid) and ev["Image"] == PY_IMAGE and ev["User"] == "root"
    assert (ev["QueryStatus"], ev["QueryResults"]) == ("1460", "-")
    # the answered query was sent before the silent one: its time ran out first, without an event
    assert [e["QueryStatus"] for e in dns_events(mon, answered)] == ["0"]


def test_resolver_queries_sent_with_sendmmsg_time_out(mon: Monitor, silent: str, tmp_path: Path) -> None:
    """glibc sends A and AAAA together with sendmmsg(); neither is answered."""
    name = f"g{uuid.uuid4().hex[:8]}.sysmon.test"
    resolv = tmp_path / "resolv-silent.conf"
    resolv.write_text(f"nameserver {silent}\noptions attempts:1 timeout:1\n")
    script = f"mount --bind {resolv} /etc/resolv.conf && getent ahosts {name}; true"
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script])
    assert p.wait(20) == 0
    evs = mon.wait_events(lambda ls: sum(name in x and "<EventID>22<" in x for x in ls) >= 2)
    assert len([x for x in evs if name in x and "<EventID>22<" in x]) >= 2
    got = dns_events(mon, name)
    assert {e["QueryStatus"] for e in got} == {"1460"}
    assert {e["Image"] for e in got} == {"/usr/bin/getent"}
