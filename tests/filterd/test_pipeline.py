"""The pipeline fed with plain bytes: records in, XML out, every loss counted and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd.config.loader import default_config
from filterd.pipeline import Pipeline
from filterd.receiver import Receiver
from filterd.state.record_id import RecordIdCounter
from shared import envelope, records
from shared.decode import encode, split_path

ORIGIN = "m/b"
HOST = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {0: "root", 1000: "alice"},
    "logins": [],
    "collector_pid": 42,
}


class ListSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def send(self, xml: str) -> None:
        self.lines.append(xml)

    def close(self) -> None:
        pass


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
    assert p.stats["MalformedFrame"] >= 3
    assert [x for x in sink.lines if "<EventID>255<" not in x] == []  # only the loss report
    p.on_batch(ORIGIN, 1, exec_rec(20, 1, 7 * 10**9, 0, "/usr/bin/id", b"id\0"))
    assert sum("<EventID>1<" in x for x in sink.lines) == 1  # still working
