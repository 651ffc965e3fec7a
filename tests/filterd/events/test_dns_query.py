"""DNS answer parsing: Windows Sysmon's QueryResults format, and no crash on any bytes."""

from __future__ import annotations

import contextlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from filterd.events.dns_query import DnsError, parse_answer, query_status


def answer(name: str, rrs: list[tuple[int, bytes]], rcode: int = 0) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    out = struct.pack(">HHHHHH", 0x1234, 0x8180 | rcode, 1, len(rrs), 0, 0) + qname + b"\0\1\0\1"
    for rtype, rdata in rrs:
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata
    return out


def test_a_aaaa_cname() -> None:
    cname = b"\x03www\xc0\x0c"
    msg = answer("example.com", [(5, cname), (1, bytes([93, 184, 216, 34])), (28, bytes(15) + b"\1")])
    assert parse_answer(msg) == ("example.com", 0, "type:  5 www.example.com;::ffff:93.184.216.34;::1;")


def test_nxdomain_status() -> None:
    name, rcode, results = parse_answer(answer("nope.example", [], rcode=3))
    assert (name, query_status(rcode), results) == ("nope.example", "9003", "")
    assert query_status(0) == "0"


def test_pointer_loop_is_an_error() -> None:
    msg = struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c"
    try:
        parse_answer(msg)
    except DnsError:
        pass
    else:
        raise AssertionError("a compression loop must not parse")


@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_dns_error(msg: bytes) -> None:
    with contextlib.suppress(DnsError, struct.error):
        parse_answer(msg)
