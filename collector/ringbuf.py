"""Read the BPF ring buffer straight from its mmap'ed pages, many records per call.

Why not bcc's ring_buffer_poll: it calls back into Python through ctypes once per record, which
costs several microseconds each; here one drain() walks every committed record with a few
struct reads and returns the raw bytes untouched (the collector never parses or changes them).

Ring buffer layout (kernel/bpf/ringbuf.c): page 0 = consumer position (we write it), page 1 =
producer position (read-only), then the data area, which the kernel offers mapped twice so a
record that wraps is contiguous. We map it once and join the two pieces of the rare record that
wraps: the kernel maps every page at mmap() time, so each mapping of the data area costs its full
size in resident memory. Each record: u32 len with BUSY (bit 31) and DISCARD (bit 30) flags, u32 page offset,
then data, the whole rounded up to 8 bytes.

Reading and releasing are separate: drain() moves a private read position, commit() writes the
consumer position the kernel sees. The collector commits only what a filterd has acknowledged
(or what it keeps itself), so records read but not yet safe stay in the kernel's ring, where a
restarted collector finds them again.
"""

from __future__ import annotations

import mmap
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class RingReader:
    def __init__(self, map_fd: int, data_size: int) -> None:
        page = mmap.PAGESIZE
        self._mask = data_size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data = memoryview(self._prod)[page:]
        self.size = data_size
        self.read_pos = self.committed
        self.records = 0
        self.discarded = 0

    @property
    def committed(self) -> int:
        return _U64.unpack_from(self._cons, 0)[0]

    def used(self) -> int:
        """Bytes the kernel cannot reuse yet: written and not committed by us."""
        return _U64.unpack_from(self._prod, 0)[0] - self.committed

    def unread(self) -> int:
        """Bytes written by the kernel after our read position (headers and padding included)."""
        return _U64.unpack_from(self._prod, 0)[0] - self.read_pos

    def commit(self, pos: int) -> None:
        """Release the ring up to `pos` (a read_pos value seen earlier; never moves back)."""
        if self.committed < pos <= self.read_pos:
            _U64.pack_into(self._cons, 0, pos)

    def drain(self, out: list[bytes], limit: int = 1 << 30) -> int:
        """Append records after the read position to `out` (up to `limit`), return their count.
        Their space is released only by commit()."""
        cons = self.read_pos
        prod = _U64.unpack_from(self._prod, 0)[0]
        data, mask, size, u32 = self._data, self._mask, self.size, _U32.unpack_from
        n = 0
        while cons < prod and n < limit:
            off = cons & mask
            hdr = u32(data, off)[0]
            if hdr & BUSY_BIT:
                break
            length = hdr & ~(BUSY_BIT | DISCARD_BIT)
            if hdr & DISCARD_BIT:
                self.discarded += 1
            else:
                start = (off + HDR_SIZE) & mask  # headers are 8-byte aligned: never split
                end = start + length
                if end <= size:
                    out.append(bytes(data[start:end]))
                else:
                    out.append(bytes(data[start:]) + bytes(data[: end - size]))
                n += 1
            cons += (length + HDR_SIZE + 7) & ~7
        self.read_pos = cons
        self.records += n
        return n

    def close(self) -> None:
        self._data.release()
        self._prod.close()
        self._cons.close()
