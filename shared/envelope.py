"""ZeroMQ message layout between collector and filterd (pure: no socket code here).

Every message is two frames: [topic, msgpack body].

  topic b"rec"    body [WIRE_VERSION, origin, epoch, seq, first_record, kernel_drops, records]
                                                                    records: raw records back to back;
                                                                    kernel_drops: ring-buffer drops so far
  topic b"host"   body [WIRE_VERSION, origin, context-map]          at start, on change, every heartbeat
  topic b"want/k/<kind>", b"want/h/<ALGO>", b"want/d"               never carry data: a filterd
                                                                    *subscribes* to them to tell the
                                                                    collector what to produce
  topic b"mark/<token>"                                             subscribing asks the collector for a
                                                                    MARKER record after a full drain
  topic b"ack/<epoch>/<n>"                                           a filterd holds one such subscription:
                                                                    "every record of stream <epoch> before
                                                                    record number <n> is written"; the
                                                                    collector keeps the later ones and
                                                                    resends them to a filterd that returns
                                                                    (an ack of another epoch counts as 0)

`origin` is "<machine-id>/<boot-id>". A stream is (origin, epoch): `epoch` is fixed while the
collector's pinned BPF objects live (so it survives a collector restart) and changes when they
are made anew. `seq` counts rec messages of the stream from 0 and `first_record` counts the
records sent before this batch, so a gap says exactly how many records were lost, and records
seen twice (a resend after a restart, possibly cut into other batches) are recognised by number
and skipped. Frame errors raise FrameError
subclasses; a receiver counts and drops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from .errors import MalformedFrame, VersionMismatch
from .version import WIRE_VERSION

TOPIC_RECORDS = b"rec"
TOPIC_HOST = b"host"
WANT_KIND = b"want/k/"
WANT_HASH = b"want/h/"
WANT_DELETED = b"want/d"  # hash deleted files still running as an image (FileDeleteDetected)
MARK = b"mark/"
ACK = b"ack/"


class Batch(NamedTuple):
    origin: str
    epoch: int
    seq: int
    first_record: int
    kernel_drops: int
    records: bytes


class HostMessage(NamedTuple):
    origin: str
    context: dict[str, Any]


def pack_batch(
    origin: str, seq: int, records: bytes, kernel_drops: int = 0, epoch: int = 0, first_record: int = 0
) -> bytes:
    return msgpack.packb(
        (WIRE_VERSION, origin, epoch, seq, first_record, kernel_drops, records), use_bin_type=True
    )


def pack_host(origin: str, context: dict[str, Any]) -> bytes:
    return msgpack.packb((WIRE_VERSION, origin, context), use_bin_type=True)


def _unpack(body: bytes, n: int) -> list[Any]:
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=False, max_bin_len=1 << 27)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise MalformedFrame(f"not msgpack: {e}") from None
    if not isinstance(obj, list) or len(obj) != n:
        raise MalformedFrame("body is not a list of the expected length")
    if obj[0] != WIRE_VERSION:
        raise VersionMismatch(f"wire version {obj[0]!r}, expected {WIRE_VERSION}")
    if not isinstance(obj[1], str):
        raise MalformedFrame("origin is not a string")
    return obj


def _counter(v: Any) -> bool:
    return type(v) is int and 0 <= v < 1 << 64


def unpack_batch(body: bytes) -> Batch:
    _, origin, epoch, seq, first, drops, records = _unpack(body, 7)
    if not all(_counter(v) for v in (epoch, seq, first, drops)) or not isinstance(records, bytes):
        raise MalformedFrame("bad epoch, seq, record count, drop counter or records")
    return Batch(origin, epoch, seq, first, drops, records)


def ack_topic(epoch: int, next_record: int) -> bytes:
    return b"%s%d/%d" % (ACK, epoch, next_record)


def unpack_host(body: bytes) -> HostMessage:
    _, origin, context = _unpack(body, 3)
    if not isinstance(context, dict):
        raise MalformedFrame("host context is not a map")
    return HostMessage(origin, context)
