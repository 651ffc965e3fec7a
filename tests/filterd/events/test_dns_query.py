"""DNS answer parsing: Windows Sysmon's QueryResults format, and no crash on any bytes."""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.config.loader import load_config_bytes
from filterd.events.dns_query import (
    MAX_PENDING,
    QUERY_TIMEOUT_S,
    DnsError,
    PendingQueries,
    parse_answer,
    query_status,
    read_name,
)
from filterd.pipeline import Pipeline
from filterd.state.record_id import RecordIdCounter
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


# -- queries and their answers through the pipeline: timeouts (1460), matching, the bound ----------

DNS_ALL = b"""<Sysmon schemaversion="4.90"><EventFiltering>
<DnsQuery onmatch="exclude"/>
</EventFiltering></Sysmon>"""
HOST_CTX = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {1000: "alice"},
}


class ListSink:
    dropped = 0

    def __init__(self) -> None:
        self.lines: list[str] = []

    def send_many(self, xmls: list[str]) -> None:
        self.lines.extend(xmls)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def query(name: str, qid: int = 0x1234, qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)


def with_id(msg: bytes, qid: int) -> bytes:
    return struct.pack(">H", qid) + msg[2:]


def out_rec(payload: bytes, pid: int = 7) -> bytes:
    return encode(
        records.DNS_PACKET, (payload,), pid=pid, uid=1000, family=2, protocol=17, outbound=1, sport=40000,
        dport=53, length=len(payload), time_ns=at(15),
    )  # fmt: skip


def in_rec(payload: bytes, pid: int = 7) -> bytes:
    return encode(
        records.DNS_PACKET, (payload,), pid=pid, uid=1000, family=2, protocol=17, sport=53, dport=40000,
        length=len(payload), time_ns=at(16),
    )  # fmt: skip


def dns_fields(line: str) -> dict[str, str]:
    return dict(re.findall(r'<Data Name="([^"]+)">([^<]*)</Data>', line))


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[tuple[Pipeline, ListSink, Clock]]:
    sink, clock = ListSink(), Clock()
    ids = RecordIdCounter(tmp_path / "eventId")
    p = Pipeline(load_config_bytes(DNS_ALL, "dns.xml"), [sink], ids, clock=clock)
    p.on_host("m/b", HOST_CTX)
    yield p, sink, clock
    ids.close()


def feed(p: Pipeline, *recs: bytes) -> None:
    p.records(p.hosts["m/b"], b"".join(recs))


def events22(sink: ListSink) -> list[dict[str, str]]:
    return [dns_fields(x) for x in sink.lines if "<EventID>22<" in x]


def test_a_query_alone_makes_no_event(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = dp
    feed(p, out_rec(query("q.example")))
    assert events22(sink) == [] and not any(k.startswith("unparsed") for k in p.stats)


def test_answered_query_gives_one_event_and_no_timeout(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = dp
    feed(p, out_rec(query("Q.Example")))  # a case-randomised query (0x20): matched case-blind
    p.tick()
    feed(p, in_rec(with_id(answer("q.example", [(1, bytes([192, 0, 2, 7]))]), 0x1234)))
    clock.now += 60
    p.tick()
    evs = events22(sink)
    assert len(evs) == 1
    assert (evs[0]["QueryName"], evs[0]["QueryStatus"], evs[0]["QueryResults"]) == (
        "q.example",
        "0",
        "::ffff:192.0.2.7;",
    )


def test_unanswered_query_times_out_once_with_1460(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = dp
    feed(p, out_rec(query("lost.example", 0x4321), pid=9))
    p.tick()  # the table learns the time: deadline = now + QUERY_TIMEOUT_S
    clock.now += QUERY_TIMEOUT_S - 0.5
    p.tick()
    assert events22(sink) == []
    clock.now += 0.5
    p.tick()
    clock.now += 60
    p.tick()
    evs = events22(sink)
    assert len(evs) == 1
    ev = evs[0]
    assert (ev["QueryName"], ev["QueryStatus"], ev["QueryResults"], ev["ProcessId"]) == (
        "lost.example",
        "1460",
        "-",
        "9",
    )
    assert ev["User"] == "alice" and ev["UtcTime"] == "2023-11-14 22:13:35.000"


def test_answer_from_another_process_or_id_does_not_take_the_query(
    dp: tuple[Pipeline, ListSink, Clock],
) -> None:
    p, sink, clock = dp
    feed(p, out_rec(query("x.example", 1)))
    p.tick()
    feed(p, in_rec(with_id(answer("x.example", []), 2)), in_rec(with_id(answer("x.example", []), 1), pid=8))
    clock.now += QUERY_TIMEOUT_S
    p.tick()
    assert [e["QueryStatus"] for e in events22(sink)] == ["0", "0", "1460"]


def test_nxdomain_and_servfail_statuses(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = dp
    feed(p, in_rec(answer("nx.example", [], rcode=3)), in_rec(answer("sf.example", [], rcode=2)))
    assert [(e["QueryName"], e["QueryStatus"]) for e in events22(sink)] == [
        ("nx.example", "9003"),
        ("sf.example", "9002"),
    ]


def test_outbound_response_is_ignored(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = dp
    feed(p, out_rec(answer("srv.example", [])))  # a local server answering: not a query
    p.tick()
    clock.now += 60
    p.tick()
    assert events22(sink) == []


def test_pending_queries_are_bounded_oldest_out() -> None:
    t = PendingQueries(limit=3, timeout_s=5)
    for i in range(5):
        t.add((1, i, "n"), (str(i),))
    assert t.evicted == 2 and list(t.entries) == [(1, 2, "n"), (1, 3, "n"), (1, 4, "n")]
    assert t.expire(0) == []  # deadlines set now
    assert t.answer((1, 3, "n")) and not t.answer((1, 3, "n"))
    assert t.expire(5) == [("2",), ("4",)]
    assert t.entries == {}


def test_pending_bound_counted_in_pipeline_stats(dp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = dp
    feed(p, *(out_rec(query("b.example", i)) for i in range(MAX_PENDING + 10)))
    p.tick()
    assert p.stats["pending_evicted_22"] == 10
    clock.now += QUERY_TIMEOUT_S
    p.tick()
    assert len(events22(sink)) == MAX_PENDING


def test_a_retry_restarts_the_wait() -> None:
    t = PendingQueries(limit=10, timeout_s=5)
    t.add((1, 1, "n"), ("first",))
    t.expire(0)
    t.expire(4)
    t.add((1, 1, "n"), ("retry",))
    assert t.expire(5) == []
    assert t.expire(9) == [("retry",)]


@given(st.lists(st.tuples(st.sampled_from("aqe"), st.integers(0, 3), st.floats(0, 3)), max_size=60))
def test_every_query_ends_once_answered_or_expired(ops: list[tuple[str, int, float]]) -> None:
    t = PendingQueries(limit=3, timeout_s=5)
    now, added, ended = 0.0, 0, 0
    for op, k, dt in ops:
        if op == "q":
            ended += (1, k, "n") in t.entries  # a retry replaces the waiting one
            t.add((1, k, "n"), (str(k),))
            added += 1
        elif op == "a":
            ended += t.answer((1, k, "n"))
        else:
            now += dt
            ended += len(t.expire(now))
    assert ended + t.evicted + len(t.entries) == added
    assert len(t.entries) <= 3
