"""One collector stream: numbering batches, keeping what no filterd has confirmed, resending it.

Some facts the design rests on:
* A filterd confirms with a subscription, `ack/<n>`: every record numbered below n is written
  (shared/envelope.py). Subscriptions are all the collector hears from it.
* Only kernel records are numbered; records the collector makes itself (image hashes, the
  process snapshot, markers) are not, because a restarted collector may make them differently
  while re-reading the same ring records, and the numbers must then agree.
* Until acknowledged, a batch's records stay in the kernel's ring (commit() says how far the
  ring may be released), so even a `kill -9` of the collector loses nothing: the next process
  re-reads them and sends them under the same numbers, and filterd skips what it already has.
* With no acknowledging filterd (or the ring over half full), records leave the ring for this
  buffer, bounded in bytes; what overflows is dropped oldest first and counted, and the gap in
  the numbers tells the returning filterd exactly how many records it lost.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

DEFAULT_MAX_BYTES = 256 << 20  # over a minute at 20k events/s of records up to ~200 bytes


class Batch(NamedTuple):
    seq: int
    first_record: int
    count: int  # numbered (kernel) records in it
    blob: bytes
    ring_start: int  # ring position of its first record; -1 when it does not live in the ring


class Position(NamedTuple):
    """Where a new collector would start: ring consumer position and the numbers that go with it."""

    ring: int
    seq: int
    record: int


class Stream:
    def __init__(self, next_seq: int, next_record: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.next_seq = next_seq
        self.next_record = next_record
        self.max_bytes = max_bytes
        self.kept: deque[Batch] = deque()
        self.kept_bytes = 0
        self.overflow_records = 0
        self.overflow_batches = 0
        self.acked = next_record

    def add(self, blob: bytes, count: int, ring_start: int = -1) -> Batch:
        b = Batch(self.next_seq, self.next_record, count, blob, ring_start)
        self.next_seq += 1
        self.next_record += count
        self.kept.append(b)
        self.kept_bytes += len(blob)
        while self.kept_bytes > self.max_bytes and len(self.kept) > 1:
            old = self.kept.popleft()
            self.kept_bytes -= len(old.blob)
            self.overflow_records += old.count
            self.overflow_batches += 1
        return b

    def ack(self, next_record: int) -> None:
        """Forget batches whose records are all below `next_record`."""
        self.acked = max(self.acked, min(next_record, self.next_record))
        while self.kept and self.kept[0].first_record + self.kept[0].count <= self.acked:
            old = self.kept.popleft()
            self.kept_bytes -= len(old.blob)

    def since(self, next_record: int) -> list[Batch]:
        """Kept batches holding records numbered `next_record` or later, in order (resend)."""
        return [b for b in self.kept if b.first_record + b.count > next_record]

    def release_ring(self) -> None:
        """Keep the batches' bytes here, so the ring can be released under them."""
        if any(b.ring_start >= 0 for b in self.kept):
            self.kept = deque(b._replace(ring_start=-1) for b in self.kept)

    def commit(self, read_pos: int) -> Position:
        """The ring may be released up to the first kept batch that still lives in it."""
        for b in self.kept:
            if b.ring_start >= 0:
                return Position(b.ring_start, b.seq, b.first_record)
        return Position(read_pos, self.next_seq, self.next_record)
