"""filterd.state.record_id: persistent Sysmon EventRecordID counter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from filterd.state.record_id import RecordIdCounter

ROOT = Path(__file__).resolve().parents[3]


def test_fresh_file_starts_at_zero_and_post_increments(tmp_path: Path) -> None:
    with RecordIdCounter(tmp_path / "eventId") as c:
        assert [c.next() for _ in range(5)] == [0, 1, 2, 3, 4]
        assert c.peek() == 5


def test_file_format_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    old = os.umask(0)
    try:
        c = RecordIdCounter(path)
    finally:
        os.umask(old)
    c.next()
    c.next()
    c.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == (2).to_bytes(8, "little")


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    with RecordIdCounter(path) as c:
        for _ in range(10):
            c.next()
    with RecordIdCounter(path) as c:
        assert c.next() == 10


def test_resumes_from_existing_value(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    path.write_bytes((182647).to_bytes(8, "little"))
    with RecordIdCounter(path) as c:
        assert c.next() == 182647
    assert path.read_bytes() == (182648).to_bytes(8, "little")


def test_short_file_is_zero_extended(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    path.write_bytes(b"")
    with RecordIdCounter(path) as c:
        assert c.next() == 0
    assert path.stat().st_size == 8


def test_wraps_like_uint64(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    path.write_bytes((2**64 - 1).to_bytes(8, "little"))
    with RecordIdCounter(path) as c:
        assert c.next() == 2**64 - 1
        assert c.next() == 0


def test_value_persists_without_close_after_crash(tmp_path: Path) -> None:
    path = tmp_path / "eventId"
    code = ("import os, sys; from filterd.state.record_id import RecordIdCounter as R; "
            "c = R(sys.argv[1]); [c.next() for _ in range(7)]; os._exit(0)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
    with RecordIdCounter(path) as c:
        assert c.next() == 7


def test_threads_get_unique_ids(tmp_path: Path) -> None:
    seen: list[int] = []
    lock = threading.Lock()
    with RecordIdCounter(tmp_path / "eventId") as c:
        def work() -> None:
            got = [c.next() for _ in range(2000)]
            with lock:
                seen.extend(got)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == list(range(16000))
        assert c.peek() == 16000


def test_close_is_idempotent(tmp_path: Path) -> None:
    c = RecordIdCounter(tmp_path / "eventId")
    c.close()
    c.close()


def test_refuses_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"\0" * 8)
    (tmp_path / "eventId").symlink_to(target)
    with pytest.raises(OSError):
        RecordIdCounter(tmp_path / "eventId")
