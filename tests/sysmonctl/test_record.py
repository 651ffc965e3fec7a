"""sysmonctl/record.py: the recording files (gzip parts, rotation, reading back, damage named by
file and offset, never a crash) and the client against a real filterd control socket."""

from __future__ import annotations

import gzip
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterd.control import ControlServer
from filterd.recording import FRAME, HEAD, MAGIC, NOTE, STATE, RecordHub, frame_entry, json_entry
from sysmonctl import record as record_mod
from sysmonctl.client import ControlError
from sysmonctl.record import RecordingFileError, Writer, encode_entry, parts, read_part


def frames(n: int, size: int = 200, seed: int = 0) -> list[bytes]:
    """Entries that compress poorly (so rotation happens), each different."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        body = r.randbytes(size)
        out.append(frame_entry(FRAME, 10**18 + i, b"rec", body))
    return out


def entries_of(path: Path) -> list[bytes]:
    return [encode_entry(e) for e in read_part(path)]


def test_write_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    w = Writer(path, {"filterd": "x", "kinds": [1]}, max_bytes=1 << 20, keep=3)
    data = frames(50)
    for e in data:
        w.write(e)
    w.close()
    got = list(read_part(path))
    assert got[0].kind == HEAD and got[0].info["part"] == 0 and got[0].info["kinds"] == [1]
    assert [encode_entry(e) for e in got[1:]] == data
    assert gzip.decompress(path.read_bytes()).startswith(MAGIC)  # plain gzip: zcat reads it
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_rotation_keeps_the_newest_parts_each_with_its_head(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    w = Writer(path, {"filterd": "x"}, max_bytes=4096, keep=2)
    written: list[list[bytes]] = [[]]
    for e in frames(400):
        if w.full:
            w.rotate()
            written.append([])
        w.write(e)
        written[-1].append(e)
    w.close()
    assert w.files == len(written) > 3
    assert parts(path) == [tmp_path / "r.gz.2", tmp_path / "r.gz.1", path]
    heads = [next(read_part(p)).info for p in parts(path)]
    assert [h["part"] for h in heads] == [w.part - 2, w.part - 1, w.part]
    assert len({h["recording"] for h in heads}) == 1
    for p, want in zip(parts(path), written[-3:], strict=True):
        assert entries_of(p)[1:] == want
    (tmp_path / "r.gz.10").write_bytes(b"")  # numbered, so a part; r.gz.x and r.gz.01 are not
    (tmp_path / "r.gz.x").write_bytes(b"")
    (tmp_path / "r.gz.01").write_bytes(b"")
    assert parts(path)[0] == tmp_path / "r.gz.10" and len(parts(path)) == 4


def test_keep_zero_keeps_only_the_current_part(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    w = Writer(path, {}, max_bytes=4096, keep=0)
    for e in frames(100):
        if w.full:
            w.rotate()
        w.write(e)
    w.close()
    assert w.part > 0 and parts(path) == [path]


def test_a_killed_recorder_leaves_a_file_readable_to_its_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    w = Writer(path, {}, max_bytes=1 << 20, keep=1)
    data = frames(20)
    for e in data:
        w.write(e)
    w.sync()
    w.write(frames(1, seed=9)[0])  # compressed but never flushed: lost with the process
    got: list[bytes] = []
    with pytest.raises(RecordingFileError) as e:
        got.extend(encode_entry(x) for x in read_part(path))
    assert got[1:] == data
    assert str(e.value).startswith(f"{path}: cut short at byte ") and "recorder was killed" in str(e.value)


def _whole(tmp_path: Path) -> tuple[Path, bytes, list[bytes]]:
    path = tmp_path / "whole.gz"
    if not path.exists():
        w = Writer(path, {}, max_bytes=1 << 20, keep=0)
        for e in frames(30, size=100):
            w.write(e)
            w.sync()
        w.close()
    return path, path.read_bytes(), entries_of(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_truncation_reads_a_prefix_then_names_file_and_offset(
    tmp_path: Path, data: st.DataObject
) -> None:
    _, raw, want = _whole(tmp_path)
    cut = data.draw(st.integers(0, len(raw) - 1))
    damaged = tmp_path / "cut.gz"
    damaged.write_bytes(raw[:cut])
    got: list[bytes] = []
    with pytest.raises(RecordingFileError) as e:
        got.extend(encode_entry(x) for x in read_part(damaged))
    assert got == want[: len(got)]
    assert str(e.value).startswith(f"{damaged}: ") and "byte" in str(e.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_corruption_is_a_clear_error_or_detected_never_a_crash(
    tmp_path: Path, data: st.DataObject
) -> None:
    _, raw, want = _whole(tmp_path)
    at = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = tmp_path / "bad.gz"
    damaged.write_bytes(raw[:at] + bytes([raw[at] ^ flip]) + raw[at + 1 :])
    got: list[bytes] = []
    try:
        got.extend(encode_entry(x) for x in read_part(damaged))
    except RecordingFileError as e:
        assert str(e).startswith(f"{damaged}: ") and "byte" in str(e)
    else:  # unnoticed only where gzip ignores bits (header mtime/OS, a block's padding): same data
        assert got == want


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not a sysmon recording"),
        (b"hello, world\n", "corrupt compressed data"),
        (gzip.compress(b"hello, world\n"), "not a sysmon recording (no magic)"),
        (gzip.compress(MAGIC + bytes([7, 0, 0, 0, 0])), "at byte 8: unknown entry type 7"),
        (gzip.compress(MAGIC + bytes([FRAME, 1, 0, 0])), "ends inside an entry at byte 8"),
    ],
)
def test_files_that_are_no_recording(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "f"
    p.write_bytes(content)
    with pytest.raises(RecordingFileError, match=re.escape(message)) as e:
        list(read_part(p))
    assert str(e.value).startswith(f"{p}: ")
    with pytest.raises(RecordingFileError, match="cannot open"):
        list(read_part(tmp_path / "missing"))


def test_several_gzip_members_read_as_one_stream(tmp_path: Path) -> None:
    """gzip allows members back to back (`cat a.gz b.gz`); nothing is lost at the seam."""
    p = tmp_path / "cat.gz"
    data = frames(5)
    p.write_bytes(gzip.compress(MAGIC + b"".join(data[:2])) + gzip.compress(b"".join(data[2:])))
    assert entries_of(p) == data


# -- the client against a real control socket --------------------------------------------------------
class Filterd:
    """A control server with a RecordHub, polled by a thread, that taps a frame every few ms."""

    def __init__(self, path: str) -> None:
        self.hub = RecordHub(lambda: {"filterd": "test", "config": "c"}, self._state, self._changed)
        self.server = ControlServer(path, os.getgid(), {}, lambda on: None, self.hub)
        self.states = 0
        self.sent = 0
        self.random = random.Random(1)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _state(self) -> list[bytes]:
        self.states += 1
        return [json_entry(NOTE, {"note": "state", "n": self.states}), frame_entry(STATE, 1, b"host", b"h")]

    def _changed(self) -> None:
        self.hub.wants([1, 2, 3] if self.hub.active else [], ["SHA256"])

    def _run(self) -> None:
        while self.running:
            self.server.poll()
            if self.hub.clients:
                self.hub.tap(b"rec", self.random.randbytes(300))
                self.sent += 1
            time.sleep(0.001)

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.server.close()


@pytest.fixture
def filterd(tmp_path: Path) -> Iterator[Filterd]:
    f = Filterd(str(tmp_path / "filterd.ctl"))
    try:
        yield f
    finally:
        f.stop()


def test_record_rotates_on_a_fresh_state_and_stops_cleanly(
    tmp_path: Path, filterd: Filterd, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out" / "rec.gz"
    path.parent.mkdir()
    counts = record_mod.record(
        filterd.server.path, str(path), max_bytes=8192, keep=50, events=[11], duration=1.5, quiet=True
    )
    files = parts(path)
    assert counts["files"] == len(files) > 2 and counts["lost"] == 0 and counts["clean"] == 1
    seen = 0
    for n, p in enumerate(files):
        es = list(read_part(p))
        assert es[0].kind == HEAD and es[0].info["part"] == n and es[0].info["kinds"] == [1, 2, 3]
        assert es[1].info["note"] == "state" and es[2].kind == STATE  # each part can start a replay
        seen += sum(e.kind == FRAME for e in es)
        if p != files[-1]:
            assert es[-1].kind == FRAME
    assert es[-1].info == {"note": "end", "lost": 0}  # filterd's own end: everything it queued came
    assert seen == counts["frames"] == filterd.sent
    assert filterd.states == len(files)
    assert not filterd.hub.clients
    with pytest.raises(ControlError, match="exists"):
        record_mod.record(filterd.server.path, str(path), duration=0.1, quiet=True)
    record_mod.record(filterd.server.path, str(path), duration=0.1, quiet=True, force=True)
    assert parts(path) == [path]  # the old parts went with --force


def test_record_refused(tmp_path: Path, filterd: Filterd) -> None:
    with pytest.raises(ControlError, match="no records make event ids"):
        record_mod.record(filterd.server.path, str(tmp_path / "r.gz"), events=[16], duration=1, quiet=True)
    with pytest.raises(ControlError, match="cannot reach filterd"):
        record_mod.record(str(tmp_path / "nothing.ctl"), str(tmp_path / "r.gz"), duration=1, quiet=True)


def test_size_and_events_arguments() -> None:
    assert (
        record_mod.size("64M") == 64 << 20
        and record_mod.size("8k") == 8192
        and record_mod.size("5000") == 5000
    )
    assert record_mod.events_arg("all") == "all" and record_mod.events_arg("3,11") == [3, 11]
    for bad in ("12x", "100", "-5"):
        with pytest.raises(Exception, match="size|rotate"):
            record_mod.size(bad)
    with pytest.raises(Exception, match="no records"):
        record_mod.events_arg("4")


def test_filterd_going_away_ends_the_recording_with_a_note(tmp_path: Path) -> None:
    f = Filterd(str(tmp_path / "filterd.ctl"))
    path = tmp_path / "r.gz"
    threading.Timer(0.5, f.stop).start()  # filterd stops (closes its clients) while we record
    counts = record_mod.record(f.server.path, str(path), duration=30, quiet=True)
    assert counts["clean"] == 0 and counts["frames"] > 0
    last = list(read_part(path))[-1]
    assert last.info == {"note": "end", "by": "sysmonctl", "reason": "filterd closed the connection"}
