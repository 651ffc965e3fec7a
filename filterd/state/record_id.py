"""Persistent `<EventRecordID>` counter, Sysmon style.

Sysmon keeps the record id in `/opt/sysmon/eventId`: one native (little-endian) uint64,
mmap'ed, post-incremented per emitted event, so a fresh file yields 0 first and the sequence
survives restarts and reinstalls. This module owns that file for filterd
(`<state_dir>/eventId`). The mapping is MAP_SHARED, so every increment is in the page cache
immediately (it survives a filterd crash); like Sysmon's `msync(MS_ASYNC)` nothing waits for
the disk per event, and `close()` flushes.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
from pathlib import Path
from types import TracebackType

_U64 = struct.Struct("<Q")
_SIZE = _U64.size
_MASK = (1 << 64) - 1


class RecordIdCounter:
    """mmap'ed post-increment uint64 counter stored in `path` (created 0600, starting at 0)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_size < _SIZE:
                # New (or truncated) file: zero-extend to 8 bytes. A new file gets exactly 0600
                # whatever the umask.
                if st.st_size == 0:
                    os.fchmod(fd, 0o600)
                os.ftruncate(fd, _SIZE)
            self._mm = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)  # the mapping keeps its own reference
        self._lock = threading.Lock()
        # The counter as one native u64 item: indexing it is cheaper than a struct round trip,
        # and this runs once per event. The file is little-endian, so only where that is native.
        self._word = memoryview(self._mm).cast("Q") if sys.byteorder == "little" else None

    def next(self) -> int:
        """Return the current value and store value + 1 (wrapping at 2**64 like a C uint64)."""
        word = self._word
        with self._lock:
            if word is not None:
                value = word[0]
                word[0] = (value + 1) & _MASK
            else:
                (value,) = _U64.unpack_from(self._mm, 0)
                _U64.pack_into(self._mm, 0, (value + 1) & _MASK)
        return value

    def peek(self) -> int:
        """The value the next call to `next()` will return."""
        return _U64.unpack_from(self._mm, 0)[0]

    def close(self) -> None:
        """Flush the counter to disk and unmap it (idempotent)."""
        word = getattr(self, "_word", None)
        if word is not None:
            word.release()  # an exported buffer would keep the mapping from closing
            self._word = None
        mm = getattr(self, "_mm", None)
        if mm is not None and not mm.closed:
            mm.flush()
            mm.close()

    def __enter__(self) -> RecordIdCounter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
