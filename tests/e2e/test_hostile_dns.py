"""Anyone can send a UDP packet from port 53: malformed DNS answers must not stop filterd.

One such datagram (an answer whose A record is cut short) used to raise IndexError in filterd
and end the process. Here real malformed answers go from 127.0.0.1:53 to a socket that reads
them with recvfrom(), so the kernel hands each to filterd as a DNS_PACKET record; filterd must
keep its pid and log the answer that comes after them.
"""

from __future__ import annotations

import socket
import struct
import uuid
from collections.abc import Iterator

import pytest

from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

CONFIG = """<Sysmon schemaversion="4.90"><EventFiltering>
<DnsQuery onmatch="exclude"/>
</EventFiltering></Sysmon>
"""


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    with running(CONFIG) as m:
        yield m


def qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def answer(name: str, rrs: list[tuple[int, bytes]], an: int | None = None) -> bytes:
    n = len(rrs) if an is None else an
    out = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, n, 0, 0) + qname(name) + b"\0\1\0\1"
    for rtype, rdata in rrs:
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata
    return out


def hostile(tag: str) -> list[bytes]:
    """The crashing answer first, then every cut of a full answer, loops, lying counts."""
    crash = answer(f"crash-{tag}.sysmon.test", [(1, bytes([192, 0, 2, 1]))])[:-2]  # A record cut short
    full = answer(f"cut-{tag}.sysmon.test", [(5, b"\x03www\xc0\x0c"), (1, b"\1\2\3\4"), (28, bytes(16))])
    hdr = struct.pack(">HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    loop = (
        hdr + qname(f"loop-{tag}.sysmon.test") + b"\0\1\0\1" + b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 0, 2)
    )
    loop += bytes([0xC0, len(loop)])  # a CNAME whose name points at itself
    many = answer(f"many-{tag}.sysmon.test", [(1, b"\1\1\1\1")])
    return [
        crash,
        *(full[:cut] for cut in range(12, len(full))),
        hdr + b"\xc0\x0c\0\1\0\1",  # a name pointing at itself
        hdr + b"\xc0\x0e\xc0\x0c\0\1\0\1",  # two pointers at each other
        loop,
        many[:6] + b"\xff\xff" + many[8:],  # 65535 answers announced, one sent
        many[:4] + b"\xff\xff\xff\xff" + many[8:],  # and 65535 questions
    ]


def exchange(datagrams: list[bytes]) -> None:
    """Send each from 127.0.0.1:53 and read it with recvfrom(), as a resolver would."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        dns.bind(("127.0.0.1", 53))
        client.bind(("127.0.0.1", 0))
        client.settimeout(5)
        for d in datagrams:
            dns.sendto(d, client.getsockname())
            data, peer = client.recvfrom(4096)
            assert data == d and peer == ("127.0.0.1", 53)


def test_malformed_answers_do_not_stop_filterd(mon: Monitor) -> None:
    assert mon.filterd is not None
    pid = mon.filterd.pid
    tag = uuid.uuid4().hex[:8]
    exchange(hostile(tag))
    exchange([answer(f"after-{tag}.sysmon.test", [(1, bytes([192, 0, 2, 7]))])])
    lines = mon.wait_events(
        lambda ls: any(f"after-{tag}" in x and "<EventID>22<" in x for x in ls), timeout=30
    )
    assert mon.filterd.poll() is None and mon.filterd.pid == pid
    assert mon.stats()["pid"] == pid
    after = next(x for x in lines if f"after-{tag}" in x)
    assert '<Data Name="QueryResults">::ffff:192.0.2.7;</Data>' in after
    # the answer that used to kill filterd is logged with what could be read: no complete record
    crash = [x for x in lines if f"crash-{tag}" in x and "<EventID>22<" in x]
    assert len(crash) == 1 and '<Data Name="QueryResults">-</Data>' in crash[0]
    # answers cut inside the records keep the complete ones before the cut
    cut = {x.split('"QueryResults">')[1].split("<")[0] for x in lines if f"cut-{tag}" in x}
    assert {"-", f"type:  5 www.cut-{tag}.sysmon.test;"} <= cut
    stats = mon.stats()["stats"]
    assert not [k for k in stats if k.startswith("bad_record_")], stats  # the parser coped, not the guard
    assert list((mon.dir / "state").glob("stream-*"))  # the sandboxed filterd keeps its stream position
