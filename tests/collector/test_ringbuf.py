"""RingReader on a memfd laid out like a BPF ring buffer: records that wrap around the end,
busy and discarded records, and the split between reading and releasing."""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ringbuf import BUSY_BIT, DISCARD_BIT, RingReader

PAGE = mmap.PAGESIZE
SIZE = 4 * PAGE


class FakeRing:
    """Consumer page, producer page, data area: the offsets the kernel's mmap gives."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("ring")
        os.ftruncate(self.fd, 2 * PAGE + SIZE)
        self.m = mmap.mmap(self.fd, 2 * PAGE + SIZE)
        self.prod = 0

    def write(self, payload: bytes, flags: int = 0) -> None:
        off = self.prod % SIZE
        hdr = struct.pack("<II", len(payload) | flags, 0)
        self.m[2 * PAGE + off : 2 * PAGE + off + 8] = hdr
        for i, b in enumerate(payload):
            self.m[2 * PAGE + (off + 8 + i) % SIZE] = b
        self.prod += (len(payload) + 8 + 7) & ~7
        struct.pack_into("<Q", self.m, PAGE, self.prod)

    @property
    def consumer(self) -> int:
        return struct.unpack_from("<Q", self.m, 0)[0]

    def close(self) -> None:
        self.m.close()
        os.close(self.fd)


@pytest.fixture
def ring() -> Iterator[FakeRing]:
    r = FakeRing()
    yield r
    r.close()


def test_wrapped_record_is_joined(ring: FakeRing) -> None:
    reader = RingReader(ring.fd, SIZE)
    filler = b"f" * (SIZE - 8 - 40)
    ring.write(filler)
    out: list[bytes] = []
    reader.drain(out)
    reader.commit(reader.read_pos)
    payload = bytes(range(256)) * 2  # starts 40 bytes before the end: wraps
    ring.write(payload)
    out = []
    assert reader.drain(out) == 1 and out == [payload]
    reader.close()


def test_read_is_not_release(ring: FakeRing) -> None:
    reader = RingReader(ring.fd, SIZE)
    ring.write(b"a" * 10)
    ring.write(b"b" * 10)
    out: list[bytes] = []
    assert reader.drain(out) == 2 and ring.consumer == 0
    reader.commit(reader.read_pos)
    assert ring.consumer == reader.read_pos == 48
    reader.commit(8)  # never backwards
    assert ring.consumer == 48
    reader.close()


def test_unread_counts_what_the_reader_has_not_read(ring: FakeRing) -> None:
    reader = RingReader(ring.fd, SIZE)
    assert reader.unread() == 0
    ring.write(b"a" * 10)
    ring.write(b"b" * 10)
    assert reader.unread() == 48  # two 8-byte headers, records padded to 8
    reader.drain([], 1)
    assert reader.unread() == 24
    reader.drain([])
    assert reader.unread() == 0 and ring.consumer == 0  # reading releases nothing
    reader.close()


def test_busy_stops_and_discarded_is_skipped(ring: FakeRing) -> None:
    reader = RingReader(ring.fd, SIZE)
    ring.write(b"x" * 5, DISCARD_BIT)
    ring.write(b"y" * 5)
    ring.write(b"z" * 5, BUSY_BIT)
    out: list[bytes] = []
    assert reader.drain(out) == 1 and out == [b"y" * 5] and reader.discarded == 1
    reader.close()


@settings(max_examples=60)
@given(st.lists(st.binary(min_size=1, max_size=PAGE), min_size=1, max_size=40))
def test_any_sequence_round_trips(payloads: list[bytes]) -> None:
    ring = FakeRing()
    try:
        reader = RingReader(ring.fd, SIZE)
        got: list[bytes] = []
        for p in payloads:
            if ring.prod + len(p) + 16 - ring.consumer > SIZE:  # the kernel would not overwrite
                reader.drain(got)
                reader.commit(reader.read_pos)
            ring.write(p)
        reader.drain(got)
        assert got == payloads
        reader.close()
    finally:
        ring.close()
