"""Stream positions: judging batches by record number, and surviving restarts and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from filterd.state.streams import FILE_PREFIX, MAX_FILES, Stream, StreamTable, Verdict, is_numbered
from shared import records

ROOT = Path(__file__).resolve().parents[3]


def test_verdicts() -> None:
    s = Stream("o")
    assert s.arrive(5, 10, 100) == Verdict(False, 0, 0, 0)  # first batch ever: no gap, no stream change
    s.advance(10, 104)
    assert s.arrive(5, 11, 104) == Verdict(False, 0, 0, 0)
    assert s.arrive(5, 13, 110) == Verdict(False, 0, 6, 2)
    assert s.arrive(5, 9, 101) == Verdict(False, 3, 0, 0)  # resent: 3 records seen already
    assert s.arrive(6, 0, 0) == Verdict(True, 0, 0, 0)


def test_numbered_records_are_the_kernels() -> None:
    assert is_numbered(records.PROCESS_EXEC.kind, 0)
    assert not is_numbered(records.PROCESS_EXEC.kind, records.REC_F_SNAPSHOT)
    assert not is_numbered(records.IMAGE_HASH.kind, 0) and not is_numbered(records.MARKER.kind, 0)


def test_position_survives_a_restart(tmp_path: Path) -> None:
    t = StreamTable(tmp_path)
    s = t.get("m/b")
    s.arrive(7, 0, 0)
    s.advance(0, 40)
    s.written = 40
    s.kind_drops = {1: 3}
    s.env_drops = 3
    t.set_source("m/b", "ipc:///x")
    for _ in range(3):  # both slots written, the newest wins
        t.save(s)
    t.close()
    again = StreamTable(tmp_path).streams["m/b"]
    assert (again.known, again.epoch, again.written, again.next_record, again.next_seq) == (
        True,
        7,
        40,
        40,
        1,
    )
    assert again.kind_drops[1] == 3 and again.env_drops == 3 and again.source == "ipc:///x"
    assert StreamTable(tmp_path).for_source("ipc:///x") is not None


def test_a_torn_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    t = StreamTable(tmp_path)
    s = t.get("o")
    s.arrive(1, 0, 0)
    for n in (10, 20):
        s.advance(0, n)
        s.written = n
        t.save(s)
    t.close()
    path = t.path("o")
    data = bytearray(path.read_bytes())
    data[1024 + 40] ^= 0xFF  # generation 2 (20) lives in slot 0; flip a byte of it
    path.write_bytes(bytes(data))
    assert StreamTable(tmp_path).streams["o"].written == 10
    data[1536 + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not StreamTable(tmp_path).streams["o"].known  # no whole slot: no position, no gap claimed


@given(st.binary(max_size=3000))
def test_garbage_files_are_ignored(blob: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d, FILE_PREFIX + "0" * 32).write_bytes(blob)
        t = StreamTable(d)
        assert t.streams == {} and t.bad_files == 1


def test_no_state_dir_keeps_positions_in_memory() -> None:
    t = StreamTable(None)
    s = t.get("o")
    s.arrive(1, 0, 0)
    t.save(s)
    assert t.write_errors == 0


def test_file_count_is_bounded(tmp_path: Path) -> None:
    t = StreamTable(tmp_path)
    for i in range(MAX_FILES + 20):
        s = t.get(f"origin-{i}")
        s.arrive(1, 0, 0)
        t.save(s)
    t.close()
    assert len(list(tmp_path.glob(FILE_PREFIX + "*"))) <= MAX_FILES


WRITER = """
import sys
from filterd.state.streams import StreamTable
t = StreamTable(sys.argv[1])
s = t.get("m/b")
s.arrive(3, 0, 0)
n = 0
while True:
    n += 1
    s.advance(n, n)
    s.written = n
    t.save(s)
    if n % 1000 == 0:
        print(n, flush=True)
"""


def test_kill_9_while_writing_leaves_a_whole_position(tmp_path: Path) -> None:
    """pwrite() per batch, no fsync: a SIGKILL at any moment leaves the last or the one before."""
    for _ in range(5):
        p = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path)],
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        assert p.stdout is not None
        seen = 0
        for line in p.stdout:
            seen = int(line)
            if seen >= 20000:
                break
        p.send_signal(signal.SIGKILL)
        p.wait()
        s = StreamTable(tmp_path).streams["m/b"]
        assert s.known and s.epoch == 3 and s.written >= seen and s.next_seq == s.written + 1
