"""DNS answer parsing: Windows Sysmon's QueryResults format, and no crash on any bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.events.dns_query import DnsError, parse_answer, query_status, read_name
from shared import records
from shared.decode import encode
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event


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
    with contextlib.suppress(DnsError):
        parse_answer(msg)


A_ANSWER = answer(
    "example.com", [(5, b"\x03www\xc0\x0c"), (1, bytes([93, 184, 216, 34])), (28, bytes(15) + b"\1")]
)


def test_answer_cut_at_every_byte_gives_what_was_read() -> None:
    """The crash that took filterd down: an A record whose RDATA is cut short (IndexError)."""
    question_end = 12 + len(b"\x07example\x03com\x00") + 4
    seen = set()
    for cut in range(len(A_ANSWER) + 1):
        msg = A_ANSWER[:cut]
        if cut < question_end - 4:
            with pytest.raises(DnsError):
                parse_answer(msg)
            continue
        name, rcode, results = parse_answer(msg)
        assert (name, rcode) == ("example.com", 0)
        assert "type:  5 www.example.com;::ffff:93.184.216.34;::1;".startswith(results)
        seen.add(results)
    assert len(seen) == 4  # nothing, CNAME, CNAME + A, all three


def test_truncated_a_record_with_full_length_field() -> None:
    msg = answer("a.b", [(1, bytes([1, 2, 3, 4]))])
    assert parse_answer(msg[:-2]) == ("a.b", 0, "")
    assert parse_answer(answer("a.b", [(1, b"\1\2")])) == ("a.b", 0, "type:  1;")  # rdlen 2: not an A


@pytest.mark.parametrize(
    "tail",
    [
        b"\xc0\x0c",  # points at itself
        b"\x01a\xc0\x0c",  # label, then back to its own start
        b"\xc0\x0e\xc0\x0c",  # two pointers pointing at each other
        b"\xc0\x20",  # forward
        b"\xc0",  # half a pointer, at the end of the message
        b"\x40abc",  # extended label type
        b"\x3f" + b"x" * 10,  # label longer than the message
        (b"\x3f" + b"x" * 63) * 5 + b"\0",  # 320 bytes: longer than a name may be
    ],
)
def test_broken_question_names_are_errors(tail: bytes) -> None:
    with pytest.raises(DnsError):
        parse_answer(struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0) + tail)


def test_pointer_chain_within_the_jump_limit_parses() -> None:
    # "c" at 12, then names that each add a label and point back at the previous one
    msg = struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\x01c\0"
    prev = 12
    for _ in range(16):
        here = len(msg)
        msg += b"\x01x" + bytes([0xC0, prev])
        prev = here
    assert read_name(msg, prev) == ("x." * 16 + "c", len(msg))
    msg += b"\x01y" + bytes([0xC0, prev])  # the 17th jump is one too many
    with pytest.raises(DnsError):
        read_name(msg, len(msg) - 4)


def test_wrong_and_huge_counts() -> None:
    one = answer("a.b", [(1, bytes([1, 2, 3, 4]))])
    for qd, an in ((1, 2), (1, 65535), (65535, 65535), (2, 1), (0xFFFF, 0)):
        msg = one[:4] + struct.pack(">HH", qd, an) + one[8:]
        name, _, results = parse_answer(msg)
        assert name == "a.b" and results in ("::ffff:1.2.3.4;", "")
    with pytest.raises(DnsError):
        parse_answer(one[:4] + struct.pack(">HH", 0, 1) + one[8:])  # no question: no query name


def test_cname_pointing_outside_its_rdata_is_just_the_type() -> None:
    msg = answer("a.b", [(5, b"\x01z\xc0\x0c")])
    assert parse_answer(msg)[2] == "type:  5 z.a.b;"
    msg = answer("a.b", [(5, b"\x01z")])  # the name's end lies past the RDATA
    assert parse_answer(msg)[2] == "type:  5;"


# -- the builder, from hand-built records -----------------------------------------------------------


def dns_rec(payload: bytes, protocol: int = 17, length: int | None = None) -> bytes:
    return encode(
        records.DNS_PACKET, (payload,), pid=ACTOR_PID, uid=1000, family=2, protocol=protocol, sport=53,
        dport=40000, length=len(payload) if length is None else length, time_ns=at(15),
    )  # fmt: skip


def test_udp_answer() -> None:
    msg = answer("example.org", [(1, bytes([93, 184, 216, 34])), (28, bytes(15) + b"\1")])
    assert event(22, dns_rec(msg)) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:35.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "QueryName": "example.org",
        "QueryStatus": "0",
        "QueryResults": "::ffff:93.184.216.34;::1;",
        "Image": ACTOR_IMAGE,
        "User": "alice",
    }


def test_tcp_answer_read_with_its_length_prefix() -> None:
    msg = answer("nope.test", [], rcode=3)
    ev = event(22, dns_rec(len(msg).to_bytes(2, "big") + msg, protocol=6, length=len(msg) + 2))
    assert ev is not None and (ev["QueryName"], ev["QueryStatus"], ev["QueryResults"]) == (
        "nope.test",
        "9003",
        "",
    )


def test_not_an_answer_makes_no_event() -> None:
    assert event(22, dns_rec(b"\0" * 5)) is None
