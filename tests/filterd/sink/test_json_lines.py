"""filterd.sink.json_lines: JSON lines to real files, FIFOs, pipes, /dev/full and a full tmpfs.

What must hold everywhere: the sink never blocks and never raises, every line that reaches the
reader is whole, and sent + dropped accounts for every event given to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from filterd.config.loader import default_config
from filterd.pipeline import Pipeline
from filterd.render.xml import SystemHeader
from filterd.schema import BY_ID
from filterd.sink.json_lines import JsonSink
from filterd.state.record_id import RecordIdCounter
from tests.filterd.test_pipeline import HOST, ORIGIN, ListSink, exec_rec
from tests.harness.sysmon_json import differences, expected

ROOT = Path(__file__).resolve().parents[3]
HDR = SystemHeader("vm", 9322, 9322, 0)
NOW = 1795340944003231000


def events(n: int, first: int = 1, image: str = "/usr/bin/cp") -> list[tuple]:
    values = ["-", "2026-11-22 09:49:04.011", "{g}", "", image, "root"]
    return [(BY_ID[5], [*values[:3], str(1000 + i), *values[4:]], HDR, first + i, NOW) for i in range(n)]


def read_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def ids(objs: list[dict]) -> list[int]:
    return [o["System"]["EventRecordID"] for o in objs]


def test_file_appends_one_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b'{"earlier": 1}\n')
    sink = JsonSink(str(path))
    sink.send_events(events(3))
    sink.send_events(events(2, first=4))
    sink.close()
    objs = read_lines(path)
    assert objs[0] == {"earlier": 1} and ids(objs[1:]) == [1, 2, 3, 4, 5]
    assert objs[1]["EventData"]["ProcessId"] == 1000
    assert (sink.sent, sink.dropped, sink.errors) == (5, 0, 0)
    sink.close()  # idempotent


def test_reopen_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    sink = JsonSink(str(path))
    sink.send_events(events(2))
    path.rename(tmp_path / "events.json.1")
    sink.send_events(events(1, first=3))  # not reopened yet: still the renamed file
    assert sink.reopen() is True
    sink.send_events(events(2, first=4))
    sink.close()
    assert ids(read_lines(tmp_path / "events.json.1")) == [1, 2, 3]
    assert ids(read_lines(path)) == [4, 5]
    assert (sink.sent, sink.dropped, sink.reopens) == (5, 0, 1)


def test_reopen_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    sink = JsonSink(str(d / "events.json"))
    sink.send_events(events(1))
    (d / "events.json").rename(tmp_path / "kept.json")
    d.rmdir()  # the path cannot be made again
    with pytest.raises(FileNotFoundError):
        sink.reopen()
    sink.send_events(events(1, first=2))
    sink.close()
    assert ids(read_lines(tmp_path / "kept.json")) == [1, 2]


def test_stdout_is_not_reopened() -> None:
    sink = JsonSink("-")
    assert sink.reopen() is False
    sink.close()


def test_full_device_counts_and_goes_on() -> None:
    sink = JsonSink("/dev/full")
    for _ in range(3):
        sink.send_events(events(4))
    assert (sink.sent, sink.dropped) == (0, 12)
    assert sink.errors == 3 and sink.last_error is not None and sink.last_error.strerror
    sink.close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    yield p


def test_dead_reader(fifo: Path) -> None:
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = JsonSink(str(fifo))
    sink.send_events(events(2))
    assert os.read(reader, 1 << 16).count(b"\n") == 2
    os.close(reader)  # the reader dies
    sink.send_events(events(5, first=3))
    sink.send_events(events(5, first=8))
    assert (sink.sent, sink.dropped) == (2, 10)
    assert sink.last_error is not None and sink.last_error.errno == 32  # EPIPE
    sink.close()


def test_stalled_reader_never_blocks_and_never_cuts_a_line(fifo: Path) -> None:
    """A reader that reads nothing: the pipe fills, a bounded queue holds what waits (some lines
    partly written), the rest is dropped; once the reader reads again every line arrives whole."""
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = JsonSink(str(fifo), max_pending=64 << 10)
    big = "/x" * 700  # ~1.6 KB lines: pipe writes end in the middle of a line
    total = 0
    for batch in range(60):
        evs = events(50, first=1 + batch * 50, image=big)
        sink.send_events(evs)
        total += len(evs)
        assert sink.pending <= (64 << 10) + 2000
    assert sink.dropped > 0 and sink.sent > 0 and sink.pending > 0
    data = bytearray()
    while True:  # read and pump until nothing waits
        try:
            chunk = os.read(reader, 1 << 16)
        except BlockingIOError:
            chunk = b""
        data += chunk
        sink.pump()
        if not chunk and sink.pending == 0:
            with contextlib.suppress(BlockingIOError):
                data += os.read(reader, 1 << 16)
            break
    sink.close()
    os.close(reader)
    lines = bytes(data).decode("utf-8").splitlines()
    assert bytes(data).endswith(b"\n")
    got = [json.loads(line)["System"]["EventRecordID"] for line in lines]  # each line whole
    assert got == sorted(got) and len(got) == sink.sent
    assert sink.sent + sink.dropped == total


CHILD = textwrap.dedent("""
    import sys
    from filterd.render.xml import SystemHeader
    from filterd.schema import BY_ID
    from filterd.sink.json_lines import JsonSink
    sink = JsonSink("-")
    hdr = SystemHeader("vm", 1, 1, 0)
    for b in range(200):
        sink.send_events([(BY_ID[5], ["-", "t", "{g}", str(i), "/x" * 300, "root"], hdr, b * 100 + i, 0)
                          for i in range(100)])
    pending = sink.pending
    sink.close()  # what still waits is dropped and counted
    sys.stderr.write(f"{sink.sent} {sink.dropped} {pending}\\n")
""")


def test_stdout_pipe_nobody_reads() -> None:
    """stdout is a blocking pipe shared with the parent: the sink must not make it non-blocking
    nor block on it. 20000 events of ~700 bytes into a 64 KiB pipe nobody reads: the child ends."""
    r, w = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=w, stderr=subprocess.PIPE, cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        os.close(w)
        w = -1
        _, err = child.communicate(timeout=120)  # a blocked child would never get here
        assert child.returncode == 0, err
        sent, dropped, pending = map(int, err.split())
        assert sent + dropped == 20000 and dropped > 0 and 0 < pending < (4 << 20) + 1000
        assert os.get_blocking(r)
        data = b""
        while chunk := os.read(r, 1 << 16):
            data += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    lines = data.decode("utf-8").splitlines()
    assert all(json.loads(line)["System"]["EventID"] == 5 for line in lines)  # whole lines only
    assert len(lines) == sent


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real file system that fills up: a 256 KiB tmpfs (needs root, as the whole suite does)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_full_disk_then_space_again(tiny_fs: Path) -> None:
    path = tiny_fs / "events.json"
    sink = JsonSink(str(path))
    filler = tiny_fs / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):  # fill all but a few KB
        f.write(b"\0" * (250 << 10))
    n = 0
    while sink.errors == 0:  # write until ENOSPC
        sink.send_events(events(10, first=n + 1, image="/x" * 200))
        n += 10
    assert sink.pending > 0  # the line ENOSPC cut waits to be finished, nothing else waits
    dropped_at_full = sink.dropped
    sink.send_events(events(10, first=n + 1))
    n += 10
    assert sink.dropped == dropped_at_full + 10  # the disk is still full: counted, not queued
    filler.unlink()
    sink.send_events(events(10, first=n + 1))
    n += 10
    sink.close()
    objs = read_lines(path)  # a line cut by ENOSPC was finished once there was room
    assert len(objs) == sink.sent and sink.sent + sink.dropped == n
    assert ids(objs)[-10:] == list(range(n - 9, n + 1))


def test_full_disk_reopen_drops_the_cut_line(tiny_fs: Path) -> None:
    path = tiny_fs / "events.json"
    sink = JsonSink(str(path))
    with open(tiny_fs / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (250 << 10))
    n = 0
    while sink.errors == 0:
        sink.send_events(events(10, first=n + 1, image="/x" * 200))
        n += 10
    path.rename(tiny_fs / "events.json.1")
    (tiny_fs / "filler").unlink()
    sink.reopen()
    sink.send_events(events(3, first=n + 1))
    n += 3
    sink.close()
    assert ids(read_lines(path)) == [n - 2, n - 1, n]  # the new file starts with a whole line
    old = (tiny_fs / "events.json.1").read_bytes()
    whole = old[: old.rfind(b"\n") + 1]
    assert len(whole.splitlines()) + 3 == sink.sent and sink.sent + sink.dropped == n


def test_pipeline_gives_json_the_xml_values(tmp_path: Path) -> None:
    """Through the real pipeline: each JSON line has the same values, record id and time as the
    XML line of the same event."""
    xml_sink = ListSink()
    path = tmp_path / "events.json"
    json_sink = JsonSink(str(path))
    p = Pipeline(default_config(), [xml_sink, json_sink], RecordIdCounter(tmp_path / "eventId"))
    p.on_host(ORIGIN, HOST)
    p.service_event(4, ("2026-11-22 09:49:04.011", "Started", "1.0", "4.90"))
    p.on_batch(ORIGIN, 0, exec_rec(11, 1, 6 * 10**9, 0, "/usr/bin/ls", b"ls\0-la\0\tx\0"))
    json_sink.close()
    objs = read_lines(path)
    assert len(objs) == len(xml_sink.lines) == 2
    for obj, xml in zip(objs, xml_sink.lines, strict=True):
        assert differences(obj, expected(xml)) == []
    assert objs[1]["EventData"]["CommandLine"] == "ls -la \tx" and objs[1]["EventData"]["ProcessId"] == 11
    assert json_sink.sent == 2
