"""`sysmonctl record FILE`: what filterd receives, raw, into gzip files that rotate by size.

filterd streams every frame it receives (with its arrival time) over the control socket, after
the context a replay needs to start (filterd/recording.py has the layout). This module writes
them as they come: FILE is the newest part, rotated to FILE.1, FILE.2 ... (FILE.1 the newest of
those) once it holds --max-bytes of compressed data; --keep parts are kept besides FILE. Every
part starts with the magic, a HEAD entry (recording id, part number, who recorded) and a fresh
state group, which filterd makes when asked ("state"), so each part can be replayed alone.

Each part is one gzip member, sync-flushed every second: a recorder killed at any moment
leaves a file that reads up to the last flush (`sysmonctl replay` says where it ends). The files
hold every command line of the host: they are created 0600.

SIGINT or SIGTERM (or --duration) stops cleanly: filterd is told "stop", everything it already
queued is written, then its "end" note. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from filterd.recording import (
    FRAME,
    HEAD,
    MAGIC,
    NOTE,
    Entry,
    EntryParser,
    RecordingError,
    frame_entry,
    json_entry,
    parse_events,
)

from .client import ControlError, connect

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_KEEP = 9
SYNC_S = 1.0
READ_CHUNK = 1 << 20
STOP_WAIT_S = 30.0  # for filterd to send what it queued after "stop"


class RecordingFileError(Exception):
    """A part that cannot be read (on) from some offset; the message names the file and where."""


def encode_entry(e: Entry) -> bytes:
    if e.kind in (HEAD, NOTE):
        return json_entry(e.kind, e.info)
    return frame_entry(e.kind, e.time_ns, e.topic, e.body)


# -- files ------------------------------------------------------------------------------------
def part_path(path: Path, n: int) -> Path:
    return path if n == 0 else path.with_name(f"{path.name}.{n}")


def parts(path: str | os.PathLike[str]) -> list[Path]:
    """The parts of the recording at `path` that exist, oldest first (FILE.N ... FILE.1, FILE)."""
    p = Path(path)
    pattern = re.compile(re.escape(p.name) + r"\.([1-9][0-9]{0,5})")
    rotated = []
    with contextlib.suppress(OSError):
        for other in p.parent.iterdir():
            m = pattern.fullmatch(other.name)
            if m:
                rotated.append((int(m.group(1)), other))
    out = [q for _, q in sorted(rotated, reverse=True)]
    return out + [p] if p.exists() or not out else out


class Writer:
    """The current part as one gzip member; rotation shifts the older parts up by one."""

    def __init__(self, path: str | os.PathLike[str], head: dict[str, Any], max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.head = dict(head)
        self.max_bytes = max_bytes
        self.keep = keep
        self.recording = uuid.uuid4().hex
        self.part = 0
        self.files = 0
        self.size = 0  # compressed bytes in the current part
        self._f: BinaryIO | None = None
        self._z: Any = None
        self._synced = 0.0
        self._pending = 0  # bytes given to zlib since the last flush
        self._open()

    @property
    def full(self) -> bool:
        """The part holds max_bytes of compressed data (zlib holds some back: once what it might
        hold could reach the limit, a flush tells the exact size)."""
        if self.size + self._pending >= self.max_bytes:
            self.sync()
        return self.size >= self.max_bytes

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._f = os.fdopen(fd, "wb")
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip framing: zcat reads it
        self.size = 0
        self.files += 1
        head = {**self.head, "recording": self.recording, "part": self.part}
        self.write(MAGIC + json_entry(HEAD, head))
        self.sync()

    def write(self, data: bytes) -> None:
        assert self._f is not None
        out = self._z.compress(data)
        self._pending += len(data)
        if out:
            self._f.write(out)
            self.size += len(out)
        if time.monotonic() - self._synced >= SYNC_S:
            self.sync()

    def sync(self) -> None:
        """Everything so far decodable from the file, even if we are killed next."""
        assert self._f is not None
        out = self._z.flush(zlib.Z_SYNC_FLUSH)
        self._f.write(out)
        self.size += len(out)
        self._f.flush()
        self._synced = time.monotonic()
        self._pending = 0

    def _finish(self) -> None:
        if self._f is None:
            return
        self._f.write(self._z.flush(zlib.Z_FINISH))
        self._f.close()
        self._f = None

    def rotate(self) -> None:
        """FILE -> FILE.1 -> FILE.2 ...; the oldest beyond --keep is removed; a new FILE begins."""
        self._finish()
        if self.keep <= 0:
            self.path.unlink()
        else:
            with contextlib.suppress(FileNotFoundError):
                part_path(self.path, self.keep).unlink()
            for n in range(self.keep - 1, -1, -1):
                with contextlib.suppress(FileNotFoundError):
                    part_path(self.path, n).rename(part_path(self.path, n + 1))
        self.part += 1
        self._open()

    def close(self) -> None:
        self._finish()


def read_part(path: str | os.PathLike[str]) -> Iterator[Entry]:
    """The entries of one part, in order. A damaged or cut part yields what is readable, then
    raises RecordingFileError naming the file and the offset."""
    name = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    except OSError as e:
        raise RecordingFileError(f"{name}: cannot open: {e.strerror}") from None
    with f:
        parser = EntryParser()
        z = zlib.decompressobj(31)
        member_start = 0  # file offset where the current gzip member began
        fed = 0  # compressed bytes given to decompressors so far
        begun = False  # the current member received bytes
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                break
            data = chunk
            while data:
                try:
                    out = z.decompress(data, READ_CHUNK)
                except zlib.error as e:
                    raise RecordingFileError(
                        f"{name}: corrupt compressed data in the gzip member at byte {member_start} "
                        f"(read up to byte {fed + len(data)}): {e}"
                    ) from None
                begun = True
                used = len(data) - len(z.unconsumed_tail) - (len(z.unused_data) if z.eof else 0)
                fed += used
                try:
                    yield from parser.feed(out)
                except RecordingError as e:
                    raise RecordingFileError(f"{name}: {e} of the decompressed data") from None
                if z.eof:
                    data = z.unused_data
                    z = zlib.decompressobj(31)
                    member_start, begun = fed, False
                else:
                    data = z.unconsumed_tail
        if begun and not z.eof:
            raise RecordingFileError(
                f"{name}: cut short at byte {fed} (no gzip end; the recorder was killed?); "
                f"read up to byte {parser.offset} of the decompressed data"
            )
        if parser.pending or not parser.magic:
            what = "ends inside an entry" if parser.magic else "is not a sysmon recording (no magic)"
            raise RecordingFileError(f"{name}: {what} at byte {parser.offset} of the decompressed data")


# -- the client -------------------------------------------------------------------------------
class _Stop:
    def __init__(self) -> None:
        self.requested = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.requested += 1


def record(
    control: str | None,
    path: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep: int = DEFAULT_KEEP,
    events: Any = None,
    duration: float | None = None,
    force: bool = False,
    quiet: bool = False,
) -> dict[str, int]:
    """Record until stopped (signal or `duration`); returns counts. Raises ControlError."""
    target = Path(path)
    existing = [p for p in parts(target) if p.exists()]
    if existing and not force:
        raise ControlError(f"{existing[-1]} exists (--force replaces the recording)")
    for p in existing:
        p.unlink()
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with connect(control, None) as s:
            s.settimeout(0.2)
            req: dict[str, Any] = {"cmd": "record"}
            if events is not None:
                req["events"] = events
            s.sendall(json.dumps(req).encode() + b"\n")
            return _run(s, target, max_bytes, keep, duration, stop, quiet)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _recv(s: socket.socket) -> bytes | None:
    """Data, b"" at the end, None when nothing came for a while."""
    try:
        return s.recv(READ_CHUNK)
    except TimeoutError:
        return None
    except InterruptedError:
        return None


def _run(
    s: socket.socket,
    target: Path,
    max_bytes: int,
    keep: int,
    duration: float | None,
    stop: _Stop,
    quiet: bool,
) -> dict[str, int]:
    parser = EntryParser()
    writer: Writer | None = None
    counts = {"frames": 0, "lost": 0, "files": 0, "bytes": 0, "clean": 0}
    deadline = time.monotonic() + duration if duration is not None else None
    stop_sent = 0.0
    rotate_asked = False
    ended = ""
    first = True
    try:
        while True:
            if stop.requested > 1 or (stop_sent and time.monotonic() - stop_sent > STOP_WAIT_S):
                ended = "interrupted before filterd sent everything"
                break
            if not stop_sent and (stop.requested or (deadline is not None and time.monotonic() >= deadline)):
                with contextlib.suppress(OSError):
                    s.sendall(b"stop\n")
                stop_sent = time.monotonic()
            data = _recv(s)
            if data is None:
                if writer is not None and time.monotonic() - writer._synced >= SYNC_S:
                    writer.sync()
                continue
            if not data:
                if writer is None:
                    raise ControlError("filterd closed the connection without an answer")
                if not ended:
                    ended = "filterd closed the connection"
                break
            if first and data[:1] == b"{":  # a refusal: one JSON line
                try:
                    why = json.loads(data.split(b"\n", 1)[0]).get("error")
                except (ValueError, AttributeError):
                    why = data[:200].decode("utf-8", "replace")
                raise ControlError(f"filterd refused: {why}")
            first = False
            try:
                entries = parser.feed(data)
            except RecordingError as e:
                raise ControlError(f"filterd sent something that is not a recording ({e})") from None
            for e in entries:
                if e.kind == HEAD and writer is None:
                    writer = Writer(target, e.info, max_bytes, keep)
                    if not quiet:
                        what = f"config {e.info.get('config')}, record kinds {e.info.get('kinds')}"
                        print(
                            f"sysmonctl record: recording to {target} ({what})", file=sys.stderr, flush=True
                        )
                    continue
                if writer is None:
                    raise ControlError("filterd's recording did not start with a head")
                if e.kind == NOTE:
                    note = e.info.get("note")
                    if note == "state" and rotate_asked:
                        writer.rotate()
                        rotate_asked = False
                    elif note == "wants":
                        writer.head.update(kinds=e.info.get("kinds"), hashes=e.info.get("hashes"))
                    elif note == "lost":
                        counts["lost"] += int(e.info.get("frames", 0))
                    elif note == "end":
                        ended = "end"
                elif e.kind == FRAME:
                    counts["frames"] += 1
                writer.write(encode_entry(e))
                counts["bytes"] += len(e.body)
            if writer is not None and writer.full and not rotate_asked and not stop_sent:
                s.sendall(b"state\n")  # the next part starts with a fresh state group
                rotate_asked = True
    finally:
        if writer is not None:
            if ended != "end":
                writer.write(json_entry(NOTE, {"note": "end", "by": "sysmonctl", "reason": ended or "error"}))
            writer.close()
            counts["files"] = writer.files
    counts["clean"] = int(ended == "end")
    if not quiet:
        lost = f", {counts['lost']} frames lost (recorder too slow)" if counts["lost"] else ""
        how = "" if ended == "end" else f" ({ended})"
        print(f"sysmonctl record: {counts['frames']} frames in {counts['files']} file(s){lost}{how}",
              file=sys.stderr, flush=True)  # fmt: skip
    return counts


def size(text: str) -> int:
    """1000, 64k, 64M, 1G (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64M)")
    n = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    if n < 4096:
        raise argparse.ArgumentTypeError("--max-bytes below 4096 would rotate at every flush")
    return n


def events_arg(text: str) -> Any:
    value: Any = "all" if text == "all" else [int(x) for x in text.split(",") if x.strip()]
    try:
        parse_events(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def cmd_record(args: argparse.Namespace) -> int:
    """0 when the recording ended as asked; 1 when filterd went away or a second signal cut it."""
    counts = record(
        args.control, args.file, args.max_bytes, args.keep, args.events, args.duration, args.force
    )
    return 0 if counts["clean"] else 1


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record what filterd receives (raw, compressed, rotating) for `sysmonctl replay`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="where to write (FILE, then FILE.1, FILE.2 ... when rotated)")
    p.add_argument("--control", help="filterd's control socket (default: found in /run)")
    p.add_argument("--max-bytes", type=size, default=DEFAULT_MAX_BYTES, help="rotate after this much (64M)")
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, help=f"rotated parts kept ({DEFAULT_KEEP})")
    p.add_argument(
        "--events",
        type=events_arg,
        help="also record the records of these event ids while recording (e.g. 3,22, or all), "
        "even if the running config does not log them: a replay can only see what was recorded",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: at SIGINT/SIGTERM)")
    p.add_argument("--force", action="store_true", help="replace an existing recording at FILE")
    p.set_defaults(func=cmd_record)
