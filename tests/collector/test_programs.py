"""Pinned programs on the real kernel: they outlive the collector process, the ring keeps what
it wrote meanwhile, the monitor's own processes stay quiet, and unpinning detaches everything."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import bpfsys
from collector.pins import PinDir
from collector.programs import Programs
from collector.ringbuf import RingReader
from shared import records
from shared.decode import decode, field_index
from tests.harness.daemons import TEST_PIN_PREFIX

pytestmark = pytest.mark.bpf

EXEC, CREATE = records.PROCESS_EXEC.kind, records.FILE_CREATE.kind
_PID = field_index(records.PROCESS_EXEC, "pid")


@pytest.fixture(scope="module")
def pin_dir() -> Iterator[str]:
    d = f"{TEST_PIN_PREFIX}programs"
    try:
        yield d
    finally:
        PinDir(d).remove()


def drain(p: Programs) -> list[tuple]:
    ring = RingReader(p.ring_fd, p.ring_size)
    try:
        out: list[bytes] = []
        while ring.drain(out, 4096):
            pass
        ring.commit(ring.read_pos)
        return [decode(r) for r in out]
    finally:
        ring.close()


def exec_marker(tag: str) -> int:
    p = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())", tag], capture_output=True, text=True
    )
    return int(p.stdout)


def test_loaded_once_then_reused_across_processes(pin_dir: str) -> None:
    first = Programs(pin_dir)
    try:
        assert first.loaded_now
        first.set_enabled(frozenset({EXEC}))
        epoch = first.epoch
        drain(first)
    finally:
        first.close()  # the collector is gone; its links stay pinned
    tag = uuid.uuid4().hex
    pids = {exec_marker(tag) for _ in range(23)}  # no reader while these run
    second = Programs(pin_dir)
    try:
        assert not second.loaded_now and second.epoch == epoch
        assert second.enabled_kinds == frozenset({EXEC})
        got = {v[_PID] for spec, v, _ in drain(second) if spec.kind == EXEC}
        assert pids <= got
    finally:
        second.close()


def test_stream_position_survives(pin_dir: str) -> None:
    p = Programs(pin_dir)
    try:
        p.save_position(17, 12345)
    finally:
        p.close()
    q = Programs(pin_dir)
    try:
        assert q.saved_position() == (17, 12345)
    finally:
        q.close()


def test_own_processes_are_quiet(pin_dir: str, tmp_path: Path) -> None:
    p = Programs(pin_dir)
    try:
        p.set_enabled(frozenset({CREATE}))
        drain(p)
        p.quiet({os.getpid()})
        (tmp_path / "hush").write_text("x")
        p.quiet(set())
        (tmp_path / "loud").write_text("x")
        leaves = {
            strings[0].split(b"\0")[0] for spec, _, strings in drain(p) if spec.kind == CREATE and strings
        }
        assert b"loud" in leaves and b"hush" not in leaves  # paths are stored leaf first
    finally:
        p.close()


def test_unpin_detaches(pin_dir: str) -> None:
    p = Programs(pin_dir)
    emitted = os.dup(p.fds["emitted"])  # keeps the counters readable after the pins are gone
    key = EXEC.to_bytes(4, "little")
    try:
        p.set_enabled(frozenset({EXEC}))
        p.close()
        before = bpfsys.percpu_sum_u64(emitted, key)
        exec_marker("attached")
        assert bpfsys.percpu_sum_u64(emitted, key) > before
        PinDir(pin_dir).remove()
        assert not Path(pin_dir).exists()
        # the kernel releases a link a moment after its last reference: our own execs stop
        # counting once it has (and then for good)
        still = 0
        for _ in range(50):
            a = bpfsys.percpu_sum_u64(emitted, key)
            exec_marker("detached")
            if bpfsys.percpu_sum_u64(emitted, key) == a:
                break
            still += 1
        assert still < 50
    finally:
        os.close(emitted)


def test_without_bpffs_the_loader_hands_over_its_fds(tmp_path: Path) -> None:
    p = Programs(str(tmp_path / "pins"))  # not a bpffs: nothing can be pinned there
    try:
        assert not p.pinned and p.loaded_now and not (tmp_path / "pins").exists()
        p.set_enabled(frozenset({EXEC}))
        drain(p)
        tag = uuid.uuid4().hex
        pids = {exec_marker(tag) for _ in range(5)}
        assert pids <= {v[_PID] for spec, v, _ in drain(p) if spec.kind == EXEC}
        p.set_enabled(frozenset())
    finally:
        p.close()
