"""Where filterd stands in each collector's stream, kept across restarts in the state directory.

A stream is (origin, epoch) (shared/envelope.py). Its kernel records are numbered: a batch
carries `first_record`, the number of its first kernel record, and counts only kernel records
(is_numbered: kinds made by BPF, not the collector's own snapshot, hash and marker records,
which are unnumbered: collector/stream.py). filterd keeps per origin the number of the next kernel
record it expects, so:
  * first_record above it: exactly that many records were lost on the way (reported);
  * first_record below it: the batch (or its first records) was seen already, a resend after a
    restart that may cut batches differently: those records are skipped, counted, no event;
  * another epoch: a new stream (the collector's pinned BPF objects were made anew), no gap.

The position written (every record before it handed to the sinks) is stored per origin in
`<state_dir>/stream-<hash>` with one pwrite() per batch into one of two slots in turn, each with
a generation and a CRC: a pwrite() of a few hundred bytes inside one page is never half done
by a kill -9, and if the machine loses power mid-write the other slot is still whole. At start
the files are read back, so a restarted filterd tells exactly how many records it missed and
can tell the collector where to resume (the ack subscription, filterd/receiver.py). The file
also remembers the kernel drop counters already reported, so a restart does not report them
twice, and which endpoint delivered the stream last.

Delivery is at least once: the position is stored right after the sinks took a batch, so a
kill -9 in between (a few microseconds, longer if the process is preempted right after the
send woke the syslog daemon) makes the restarted filterd log that one batch again. Storing it
before the send would turn that into a silent loss instead.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from shared import records
from shared.digest import new_hash

FILE_PREFIX = "stream-"
MAX_FILES = 256  # origins persisted; more (a flood of hostile origins) are tracked in memory only
MAX_NAME_BYTES = 480
_MAGIC = b"sysmstr1"
_SLOT_MAGIC = b"sysmpos1"
_HEAD = struct.Struct("<8sIHH")  # magic, crc32 of the rest of the head, origin and source lengths
_HEAD_SIZE = 1024
_POS = struct.Struct(f"<8sQIIQQQQ{records.MAX_BPF_KIND}Q")
# magic, generation, crc32 (of everything after it), flags, epoch, written record, next seq,
# kernel drop total as last carried by a batch, drops per kind as last carried by the host context
_SLOTS = (_HEAD_SIZE, _HEAD_SIZE + 512)
F_HAS_KINDS, F_HAS_POS = 1, 2


def is_numbered(kind: int, flags: int) -> bool:
    """A kernel record, which the collector numbers: kernel kinds are below MAX_BPF_KIND (the
    collector's own start at 64), and its /proc snapshot copies of PROCESS_EXEC are flagged.
    filterd/pipeline.py applies the same test inline."""
    return 0 < kind < records.MAX_BPF_KIND and not flags & records.REC_F_SNAPSHOT


def local_origin() -> str | None:
    """This host's origin as its collector names it ("<machine-id>/<boot-id>"); read before the
    sandbox closes /etc/machine-id and /proc/sys."""
    try:
        with open("/etc/machine-id") as f:
            mid = f.read().strip()
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return f"{mid}/{boot}"


class Verdict(NamedTuple):
    new_stream: bool
    skip: int  # kernel records at the start of the batch that were handled before
    lost: int  # kernel records missing before the batch
    lost_batches: int  # batches missing, as far as the sequence numbers tell


@dataclass
class Stream:
    origin: str
    epoch: int = 0
    known: bool = False  # a position exists (from a batch, or from the file)
    next_record: int = 0  # next kernel record expected
    next_seq: int = 0
    written: int = 0  # every kernel record before this one was handed to the sinks
    env_drops: int = 0  # kernel drop total last carried by a batch
    kind_drops: dict[int, int] = field(default_factory=dict)  # per kind, last carried by the host context
    source: str = ""  # endpoint that delivered it last
    persisted: bool = False
    _gen: int = 0
    _fd: int = -1

    def arrive(self, epoch: int, seq: int, first_record: int) -> Verdict:
        """Judge a batch against the position (and adopt a new stream)."""
        if not self.known or epoch != self.epoch:
            new = self.known  # a first batch ever is no stream change worth counting
            self.known, self.epoch = True, epoch
            self.next_record = self.written = first_record
            self.next_seq = seq
            return Verdict(new, 0, 0, 0)
        if first_record < self.next_record:
            return Verdict(False, self.next_record - first_record, 0, 0)
        # batches of unnumbered records (snapshot, hashes) can go missing without a record gap
        return Verdict(False, 0, first_record - self.next_record, max(0, seq - self.next_seq))

    def advance(self, seq: int, end_record: int) -> None:
        """The batch up to kernel record end_record (exclusive) was read."""
        self.next_record = max(self.next_record, end_record)
        self.next_seq = seq + 1


class StreamTable:
    """The streams of all origins; persisted when a state directory is given."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(state_dir) if state_dir is not None else None
        self.streams: dict[str, Stream] = {}
        self.bad_files = 0
        self.write_errors = 0
        if self.dir is not None:
            self._load()

    def get(self, origin: str) -> Stream:
        s = self.streams.get(origin)
        if s is None:
            s = self.streams[origin] = Stream(origin)
        return s

    def for_source(self, source: str) -> Stream | None:
        """The stream that endpoint `source` delivered most recently (for the ack at start)."""
        best = None
        for s in self.streams.values():
            if s.source == source and s.known and (best is None or s._gen > best._gen):
                best = s
        return best

    # -- persistence ---------------------------------------------------------------------------
    def path(self, origin: str) -> Path:
        assert self.dir is not None
        return self.dir / (
            FILE_PREFIX + new_hash("SHA256", origin.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        )

    def set_source(self, origin: str, source: str) -> None:
        s = self.get(origin)
        if s.source != source:
            s.source = source
            if s._fd >= 0:
                self._write_head(s)

    def save(self, s: Stream) -> None:
        """Store written position and drop counters (one pwrite, no fsync)."""
        if self.dir is None:
            return
        if s._fd < 0 and not self._open(s):
            return
        s._gen += 1
        kinds = [s.kind_drops.get(k, 0) & 0xFFFFFFFFFFFFFFFF for k in range(records.MAX_BPF_KIND)]
        flags = (F_HAS_KINDS if s.kind_drops else 0) | (F_HAS_POS if s.known else 0)
        body = _POS.pack(_SLOT_MAGIC, s._gen, 0, flags, s.epoch, s.written, s.next_seq, s.env_drops, *kinds)
        crc = zlib.crc32(body[20:])
        body = body[:16] + struct.pack("<I", crc) + body[20:]
        try:
            os.pwrite(s._fd, body, _SLOTS[s._gen & 1])
        except OSError:
            self.write_errors += 1

    def _open(self, s: Stream) -> bool:
        assert self.dir is not None
        if s.persisted:
            return False  # opened before and failed: do not retry per batch
        s.persisted = True
        path = self.path(s.origin)
        if not path.exists() and self._count_files() >= MAX_FILES:
            self._evict()
            if self._count_files() >= MAX_FILES:
                self.write_errors += 1
                return False
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            s._fd = os.open(path, flags, 0o600)
        except OSError:
            self.write_errors += 1
            return False
        self._write_head(s)
        return True

    def _write_head(self, s: Stream) -> None:
        o = s.origin.encode("utf-8", "surrogateescape")[:MAX_NAME_BYTES]
        src = s.source.encode("utf-8", "surrogateescape")[:MAX_NAME_BYTES]
        rest = o + src
        head = _HEAD.pack(_MAGIC, zlib.crc32(struct.pack("<HH", len(o), len(src)) + rest), len(o), len(src))
        try:
            os.pwrite(s._fd, head + rest, 0)
        except OSError:
            self.write_errors += 1

    def _files(self) -> Iterator[Path]:
        assert self.dir is not None
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for n in names:
            if n.startswith(FILE_PREFIX):
                yield self.dir / n

    def _count_files(self) -> int:
        return sum(1 for _ in self._files())

    def _evict(self) -> None:
        """Remove the least recently written files of origins not open now."""
        open_paths = {self.path(s.origin) for s in self.streams.values() if s._fd >= 0}
        files = []
        for p in self._files():
            if p in open_paths:
                continue
            with contextlib.suppress(OSError):
                files.append((p.stat().st_mtime, p))
        files.sort()
        for _, p in files[: max(1, len(files) // 4)]:
            with contextlib.suppress(OSError):
                p.unlink()

    def _load(self) -> None:
        for p in self._files():
            s = self._read(p)
            if s is None:
                self.bad_files += 1
            elif s.origin not in self.streams:
                self.streams[s.origin] = s

    def _read(self, p: Path) -> Stream | None:
        try:
            with open(p, "rb") as f:
                data = f.read(_SLOTS[1] + _POS.size)
        except OSError:
            return None
        if len(data) < _HEAD.size:
            return None
        magic, crc, olen, slen = _HEAD.unpack_from(data)
        rest = data[_HEAD.size : _HEAD.size + olen + slen]
        if magic != _MAGIC or len(rest) != olen + slen or zlib.crc32(data[12:16] + rest) != crc:
            return None
        s = Stream(
            rest[:olen].decode("utf-8", "surrogateescape"), source=rest[olen:].decode("utf-8", "replace")
        )
        if p != self.path(s.origin):
            return None
        best = None
        for off in _SLOTS:
            if len(data) < off + _POS.size:
                continue
            v = _POS.unpack_from(data, off)
            if v[0] != _SLOT_MAGIC or zlib.crc32(data[off + 20 : off + _POS.size]) != v[2]:
                continue
            if best is None or v[1] > best[1]:
                best = v
        if best is None:
            return s  # the head only: nothing written yet
        _, gen, _, flags, epoch, written, next_seq, env, *kinds = best
        s._gen, s.env_drops = gen, env
        if flags & F_HAS_POS:
            s.known, s.epoch, s.next_seq = True, epoch, next_seq
            s.written = s.next_record = written
        if flags & F_HAS_KINDS:
            s.kind_drops = {k: n for k, n in enumerate(kinds)}
        return s

    def close(self) -> None:
        for s in self.streams.values():
            if s._fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(s._fd)
                s._fd = -1
