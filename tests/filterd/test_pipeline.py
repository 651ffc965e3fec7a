"""The pipeline fed with plain bytes: records in, XML out, every loss counted and reported."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

import filterd.pipeline as pipeline_mod
from filterd.config.loader import default_config, load_config_bytes
from filterd.pipeline import Pipeline
from filterd.receiver import Receiver
from filterd.sink.syslog import SyslogSink
from filterd.state.hosts import MAX_PARKED_BATCHES
from filterd.state.record_id import RecordIdCounter
from shared import envelope, records
from shared.decode import encode, split_path
from shared.version import WIRE_VERSION
from tests.harness.sinks import ListSink

ORIGIN = "m/b"
HOST = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {0: "root", 1000: "alice"},
    "logins": [],
    "collector_pid": 42,
}


@pytest.fixture
def pipe(tmp_path: Path) -> tuple[Pipeline, ListSink]:
    sink = ListSink()
    p = Pipeline(default_config(), [sink], RecordIdCounter(tmp_path / "eventId"))
    p.on_host(ORIGIN, HOST)
    return p, sink


def exec_rec(pid: int, ppid: int, start: int, pstart: int, exe: str, args: bytes, uid: int = 1000) -> bytes:
    return encode(
        records.PROCESS_EXEC,
        (split_path(exe), split_path("/home/alice"), args),
        pid=pid,
        tid=pid,
        ppid=ppid,
        uid=uid,
        start_ns=start,
        parent_start_ns=pstart,
        end_code=0x5555,
        time_ns=start,
        flags=records.REC_F_NO_TTY,
        sessionid=3,
    )


def test_exec_with_snapshot_parent(pipe: tuple[Pipeline, ListSink]) -> None:
    p, sink = pipe
    parent = exec_rec(10, 1, 5 * 10**9, 0, "/usr/bin/bash", b"bash\0-l\0")
    parent = bytearray(parent)
    parent[2] |= records.REC_F_SNAPSHOT  # flags low byte
    child = exec_rec(11, 10, 6 * 10**9, 5 * 10**9, "/usr/bin/ls", b"ls\0-la\0")
    p.on_batch(ORIGIN, 0, bytes(parent) + child)
    assert len(sink.lines) == 1  # the snapshot is cached, not logged
    xml = sink.lines[0]
    assert '<Data Name="CommandLine">ls -la</Data>' in xml
    assert '<Data Name="ParentImage">/usr/bin/bash</Data>' in xml
    assert '<Data Name="ParentCommandLine">bash -l</Data>' in xml
    assert '<Data Name="User">alice</Data>' in xml and '<Data Name="LogonId">1000</Data>' in xml
    assert "<Computer>h1</Computer>" in xml and 'ProcessID="42"' in xml


def test_gap_and_kernel_drops_are_counted_and_reported(pipe: tuple[Pipeline, ListSink]) -> None:
    p, sink = pipe
    p.on_batch(ORIGIN, 0, b"", 0)
    p.on_batch(ORIGIN, 3, b"", 5)
    assert p.stats["gap_batches"] == 2 and p.stats["kernel_dropped"] == 5
    reports = [x for x in sink.lines if "<EventID>255</EventID>" in x]
    assert len(reports) == 2
    assert "dropped 5 records" in reports[0] and "2 batches" in reports[1]


def test_malformed_frames_are_counted_dropped_and_reported(pipe: tuple[Pipeline, ListSink]) -> None:
    p, sink = pipe
    r = Receiver.__new__(Receiver)  # handle() only, no sockets
    r.pipeline, r.stats = p, p.stats
    for frames in (
        [b"rec"],
        [b"rec", b"\xc1junk"],
        [b"host", b"[]"],
        [b"zzz", b""],
        [b"rec", envelope.pack_batch(ORIGIN, 0, b"\x01\x00\xff\xff\xff\x7f")],
    ):
        r.handle(frames)
    # three unreadable frames, one unknown topic, one batch cut inside its only record
    assert p.frame_errors == {"MalformedFrame": 3, "unknown_topic": 1, "truncated batch": 1}
    assert p.stats["MalformedFrame"] == 4 and p.stats["truncated_batches"] == 1
    assert [x for x in sink.lines if "<EventID>255<" not in x] == []  # only the loss report
    p.on_batch(ORIGIN, 1, exec_rec(20, 1, 7 * 10**9, 0, "/usr/bin/id", b"id\0"))
    assert sum("<EventID>1<" in x for x in sink.lines) == 1  # still working


# -- loss reports, one hop at a time (event 255, exact text) ------------------------------------------
ALL = b"""<Sysmon schemaversion="4.90"><EventFiltering>
<ProcessCreate onmatch="exclude"/><ProcessTerminate onmatch="exclude"/><NetworkConnect onmatch="exclude"/>
<RawAccessRead onmatch="exclude"/><ProcessAccess onmatch="exclude"/><FileCreate onmatch="exclude"/>
<FileDelete onmatch="exclude"/><DnsQuery onmatch="exclude"/><eBPFEvent onmatch="exclude"/>
</EventFiltering></Sysmon>"""
REPORT = re.compile(r'<Data Name="ID">([^<]*)</Data><Data Name="Description">([^<]*)</Data>')


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reports(sink: ListSink) -> list[tuple[str, str]]:
    out = []
    for x in sink.lines:
        if "<EventID>255<" in x:
            m = REPORT.search(x)
            assert m is not None, x
            out.append((m[1], m[2]))
    return out


def lost(sink: ListSink) -> list[str]:
    return [d for i, d in reports(sink) if i == "EventsLost"]


@pytest.fixture
def lp(tmp_path: Path) -> Iterator[tuple[Pipeline, ListSink, Clock]]:
    sink, clock = ListSink(), Clock()
    ids = RecordIdCounter(tmp_path / "eventId")
    p = Pipeline(load_config_bytes(ALL, "all.xml"), [sink], ids, state_dir=tmp_path, clock=clock)
    p.on_host(ORIGIN, HOST)
    yield p, sink, clock
    p.streams.close()
    ids.close()


def execs(n: int, pid: int = 100) -> bytes:
    return b"".join(exec_rec(pid + i, 1, (pid + i) * 10**9, 0, "/usr/bin/true", b"true\0") for i in range(n))


def dns_rec(payload: bytes, payload_len: int | None = None) -> bytes:
    r = bytearray(encode(records.DNS_PACKET, (payload,), pid=7, uid=0, protocol=17, length=len(payload)))
    if payload_len is not None:  # a length that lies
        struct.pack_into("<H", r, records.DNS_PACKET.fixed_size - 8, payload_len)
    return bytes(r)


def test_kernel_drops_per_kind_from_the_host_context(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = lp
    p.on_host(ORIGIN, {**HOST, "counters": {"kernel_dropped": {1: 5, 4: 2, 7: 0}}})
    assert lost(sink) == ["the kernel ring buffer of h1 dropped 7 records (FILE_CREATE 2, PROCESS_EXEC 5)"]
    p.on_host(ORIGIN, {**HOST, "counters": {"kernel_dropped": {1: 6, 4: 2, 7: 0}}})
    p.on_host(ORIGIN, {**HOST, "counters": {"kernel_dropped": {1: 9, 4: 2, 7: 3}}})
    p.on_batch(ORIGIN, 0, b"", kernel_drops=14)  # the envelope total: not counted twice
    assert len(lost(sink)) == 1  # summed, not one report per drop
    clock.now += 5
    p.tick()
    assert lost(sink)[1:] == [
        "the kernel ring buffer of h1 dropped 7 records (NET_CONNECT 3, PROCESS_EXEC 4)"
    ]
    assert p.stats["kernel_dropped"] == 14


def test_kernel_drops_from_the_envelope_when_the_context_has_no_counters(
    lp: tuple[Pipeline, ListSink, Clock],
) -> None:
    p, sink, clock = lp
    p.on_batch(ORIGIN, 0, b"", kernel_drops=3)
    p.on_batch(ORIGIN, 1, b"", kernel_drops=3)
    p.on_batch(ORIGIN, 2, b"", kernel_drops=1)  # reset (new BPF objects): all of it is new
    clock.now += 5
    p.tick()
    assert lost(sink) == [
        "the kernel ring buffer of h1 dropped 3 records",
        "the kernel ring buffer of h1 dropped 1 record",
    ]


def test_sequence_gap_reports_the_exact_record_count(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = lp
    p.on_batch(ORIGIN, 0, execs(3), first_record=0)
    p.on_batch(ORIGIN, 2, execs(2, 200), first_record=10)  # records 3..9, batch 1 missing
    assert lost(sink) == ["7 records from h1 lost in transit (1 batch missing)"]
    assert p.stats["gap_records"] == 7 and p.stats["gap_batches"] == 1
    p.on_batch(ORIGIN, 5, execs(1, 300), first_record=20)
    p.on_batch(ORIGIN, 9, execs(1, 400), first_record=31)
    assert len(lost(sink)) == 1
    clock.now += 5
    p.tick()
    assert lost(sink)[1] == "18 records from h1 lost in transit (5 batches missing)"
    assert sum("<EventID>1<" in x for x in sink.lines) == 7  # everything that arrived was logged


def test_duplicates_are_skipped_silently_by_record_number(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = lp
    p.on_batch(ORIGIN, 0, execs(4), first_record=0)
    p.on_batch(ORIGIN, 0, execs(4), first_record=0)  # resent whole
    p.on_batch(ORIGIN, 1, execs(2, 102) + execs(3, 104), first_record=2)  # cut differently: 2 old, 3 new
    pids = re.findall(r'<Data Name="ProcessId">(\d+)<', "".join(sink.lines))
    assert pids == [str(i) for i in range(100, 107)]
    assert p.stats["duplicate_batches"] == 1 and p.stats["duplicate_records"] == 6
    assert reports(sink) == []


def test_a_new_epoch_is_a_new_stream_without_a_gap(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = lp
    p.on_batch(ORIGIN, 40, execs(2), epoch=7, first_record=500)
    p.on_batch(ORIGIN, 0, execs(2, 200), epoch=8, first_record=0)
    p.on_batch(ORIGIN, 1, execs(1, 300), epoch=8, first_record=2)
    assert reports(sink) == [] and p.stats["new_streams"] == 1
    assert sum("<EventID>1<" in x for x in sink.lines) == 5


def test_unnumbered_records_do_not_count_in_the_stream(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    """Snapshot execs, image hashes and markers are the collector's own: not numbered."""
    p, sink, _ = lp
    snap = bytearray(execs(1))
    snap[2] |= records.REC_F_SNAPSHOT
    marker = encode(records.MARKER, token=5)
    p.on_batch(ORIGIN, 0, bytes(snap) + marker, first_record=0)
    p.on_batch(ORIGIN, 1, execs(2, 200) + marker, first_record=0)
    p.on_batch(ORIGIN, 2, execs(1, 300), first_record=2)
    assert reports(sink) == [] and p.markers[ORIGIN] == 5


def test_a_cut_batch_is_reported_and_its_lost_records_counted_by_the_next(
    lp: tuple[Pipeline, ListSink, Clock],
) -> None:
    p, sink, clock = lp
    blob = execs(3)
    bad = blob[: 2 * len(blob) // 3] + b"\x01\x00\x00\x00\xff\xff\x00\x00"  # third record: size lies
    p.on_batch(ORIGIN, 0, bad, first_record=0)
    assert lost(sink) == ["filterd dropped 1 malformed frame (truncated batch 1)"]
    p.on_batch(ORIGIN, 1, execs(1, 300), first_record=3)
    assert lost(sink)[1] == "1 record from h1 lost in transit (0 batches missing)"
    assert sum("<EventID>1<" in x for x in sink.lines) == 3


def test_malformed_frames_from_the_receiver(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, clock = lp
    r = Receiver.__new__(Receiver)
    r.pipeline, r.stats = p, p.stats
    r.handle([b"rec", b"\xc1"])
    r.handle([b"rec", msgpack.packb([99, "o", 0, 0, 0, 0, b""])])
    r.handle([b"rec", b"", b""])
    r.handle([b"host", msgpack.packb([WIRE_VERSION, "o", []])])
    assert lost(sink) == ["filterd dropped 1 malformed frame (MalformedFrame 1)"]
    clock.now += 5
    p.tick()
    assert lost(sink)[1] == "filterd dropped 3 malformed frames (MalformedFrame 2, VersionMismatch 1)"


def test_records_whose_content_fails_are_dropped_counted_and_reported(
    lp: tuple[Pipeline, ListSink, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, sink, clock = lp
    overrun = dns_rec(b"\0" * 20, payload_len=400)  # strings past the record's end
    short = encode(records.NET_CONNECT)[:40]
    short = short[:4] + struct.pack("<I", 40) + short[8:]  # shorter than its fixed part
    p.on_batch(ORIGIN, 0, overrun + short + execs(1), first_record=0)
    assert lost(sink) == [
        "filterd dropped 2 records from h1 whose content it could not use (DNS_PACKET 1, NET_CONNECT 1)"
    ]
    assert p.stats["bad_record_DNS_PACKET"] == 1 and p.stats["bad_record_NET_CONNECT"] == 1

    def boom(*a: object) -> None:
        raise IndexError("a builder bug")

    update, builds = p.dispatch[records.FILE_CREATE.kind]
    monkeypatch.setitem(p.dispatch, records.FILE_CREATE.kind, (update, ((11, boom, builds[0][2]),)))
    p.on_batch(ORIGIN, 1, encode(records.FILE_CREATE, (b"x\0",)) + execs(1, 200), first_record=3)
    clock.now += 5
    p.tick()
    assert lost(sink)[1] == "filterd dropped 1 record from h1 whose content it could not use (FILE_CREATE 1)"
    assert sum("<EventID>1<" in x for x in sink.lines) == 2  # the records beside them were logged


def test_unknown_kinds(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = lp
    unknown = struct.pack("<HHIQII", 77, 0, 24, 0, 1, 1)
    p.on_batch(ORIGIN, 0, unknown + execs(1) + unknown, first_record=0)
    assert lost(sink) == ["filterd dropped 2 records of unknown kinds from h1 (kind 77: 2)"]
    assert p.stats["UnknownKind"] == 2


def test_parked_batches_that_overflow(tmp_path: Path) -> None:
    sink, clock = ListSink(), Clock()
    p = Pipeline(default_config(), [sink], RecordIdCounter(tmp_path / "eventId"), clock=clock)
    for seq in range(MAX_PARKED_BATCHES + 3):  # no host context yet
        p.on_batch(ORIGIN, seq, execs(2, 100 + 2 * seq), first_record=2 * seq)
    assert lost(sink) == [
        f"filterd dropped 2 records (1 batch) from {ORIGIN} that came before its host context"
    ]
    p.on_host(ORIGIN, HOST)
    p.on_batch(ORIGIN, MAX_PARKED_BATCHES + 3, execs(1, 900), first_record=2 * (MAX_PARKED_BATCHES + 3))
    clock.now += 5
    p.tick()
    assert lost(sink)[1:] == [
        "filterd dropped 4 records (2 batches) from h1 that came before its host context"
    ]
    assert sum("<EventID>1<" in x for x in sink.lines) == 2 * MAX_PARKED_BATCHES + 1


def test_sink_drops_are_reported_through_the_other_sinks(tmp_path: Path) -> None:
    clock = Clock()
    syslog, sink = SyslogSink(str(tmp_path / "no-such-socket")), ListSink()
    p = Pipeline(default_config(), [syslog, sink], RecordIdCounter(tmp_path / "eventId"), clock=clock)
    p.on_host(ORIGIN, HOST)
    p.on_batch(ORIGIN, 0, execs(3), first_record=0)
    p.tick()
    assert lost(sink) == [
        "the syslog sink dropped 3 events (last error: [Errno 2] No such file or directory)"
    ]
    clock.now += 5
    p.tick()  # the report itself went to the missing socket too, and is reported in turn
    assert (
        lost(sink)[1] == "the syslog sink dropped 1 event (last error: [Errno 2] No such file or directory)"
    )


def test_a_tail_client_added_later_is_not_a_loss(lp: tuple[Pipeline, ListSink, Clock]) -> None:
    p, sink, _ = lp

    class Slow(ListSink):
        dropped = 5

    p.sinks = [*p.sinks, Slow()]
    p.tick()
    assert reports(sink) == []


def test_a_restarted_filterd_reports_exactly_what_it_missed(tmp_path: Path) -> None:
    """Position and kernel drop counters come back from the state directory: what the collector
    could not keep while filterd was away is one exact report, the rest is skipped or logged."""
    clock = Clock()

    def start() -> tuple[Pipeline, ListSink]:
        sink = ListSink()
        p = Pipeline(load_config_bytes(ALL, "all.xml"), [sink], ids, state_dir=tmp_path, clock=clock)
        p.on_host(ORIGIN, {**HOST, "counters": {"kernel_dropped": {1: 4}}})
        return p, sink

    ids = RecordIdCounter(tmp_path / "eventId")
    p, sink = start()
    p.on_batch(ORIGIN, 0, execs(5), epoch=3, first_record=0)
    assert lost(sink) == ["the kernel ring buffer of h1 dropped 4 records (PROCESS_EXEC 4)"]
    p.streams.close()  # only the descriptors: like kill -9, nothing is flushed (there is nothing to)
    p, sink = start()
    assert lost(sink) == []  # the 4 kernel drops were reported before the restart
    p.on_batch(ORIGIN, 0, execs(5), epoch=3, first_record=0)  # resent: all seen
    p.on_batch(ORIGIN, 3, execs(2, 300), epoch=3, first_record=12)  # records 5..11 never came back
    assert lost(sink) == ["7 records from h1 lost in transit (2 batches missing)"]
    assert sum("<EventID>1<" in x for x in sink.lines) == 2
    p.streams.close()
    ids.close()


def test_origins_are_bounded(lp: tuple[Pipeline, ListSink, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    p, sink, clock = lp
    monkeypatch.setattr(pipeline_mod, "MAX_ORIGINS", 3)
    for i in range(5):
        p.on_host(f"made-up/{i}", HOST)
        p.on_batch(f"made-up/{i}", 0, execs(1), first_record=0)
    clock.now += 5
    p.tick()
    assert len(p.hosts) == 3 and p.stats["origins_refused"] == 6
    assert lost(sink) == [
        "filterd dropped 1 malformed frame (too many origins 1)",
        "filterd dropped 5 malformed frames (too many origins 5)",
    ]


def test_a_kind_no_event_module_consumes_is_counted_and_reported(
    lp: tuple[Pipeline, ListSink, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, sink, clock = lp
    monkeypatch.delitem(p.dispatch, records.FILE_CREATE.kind)  # as if no module declared it
    p.on_batch(ORIGIN, 0, encode(records.FILE_CREATE, (b"x\0",)) + execs(1), first_record=0)
    clock.now += 5
    p.tick()
    assert p.stats["unhandled_FILE_CREATE"] == 1
    assert len(lost(sink)) == 1 and "FILE_CREATE" in lost(sink)[0]
    assert sum("<EventID>1<" in x for x in sink.lines) == 1  # the record beside it was logged


def test_snapshot_records_feed_the_cache_and_log_nothing(pipe: tuple[Pipeline, ListSink]) -> None:
    p, sink = pipe
    snap = bytearray(exec_rec(10, 1, 5 * 10**9, 0, "/usr/bin/bash", b"bash\0"))
    snap[2] |= records.REC_F_SNAPSHOT
    p.on_batch(ORIGIN, 0, bytes(snap))
    assert sink.lines == [] and p.hosts[ORIGIN].cache.get(10) is not None


def test_drain_markers_are_kept_per_origin(pipe: tuple[Pipeline, ListSink]) -> None:
    p, sink = pipe
    p.on_batch(ORIGIN, 0, encode(records.MARKER, token=7) + encode(records.MARKER, token=9))
    assert p.markers == {ORIGIN: 9} and sink.lines == []
