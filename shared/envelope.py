"""ZeroMQ message layout between collector and filterd (pure: no socket code here).

Every message is two frames: [topic, msgpack body].

  topic b"rec"    body [WIRE_VERSION, origin, seq, kernel_drops, records]
                                                                    records: raw records back to back;
                                                                    kernel_drops: ring-buffer drops so far
  topic b"host"   body [WIRE_VERSION, origin, context-map]          at start, on change, every heartbeat
  topic b"want/k/<kind>", b"want/h/<ALGO>"                           never carry data: a filterd
                                                                    *subscribes* to them to tell the
                                                                    collector what to produce
  topic b"mark/<token>"                                             subscribing asks the collector for a
                                                                    MARKER record after a full drain

`origin` is "<machine-id>/<boot-id>"; `seq` counts rec messages per origin from 0, so a gap is
a loss that filterd counts. Frame errors raise FrameError subclasses; a receiver counts and drops.
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
MARK = b"mark/"


class Batch(NamedTuple):
    origin: str
    seq: int
    kernel_drops: int
    records: bytes


class HostMessage(NamedTuple):
    origin: str
    context: dict[str, Any]


def pack_batch(origin: str, seq: int, records: bytes, kernel_drops: int = 0) -> bytes:
    return msgpack.packb((WIRE_VERSION, origin, seq, kernel_drops, records), use_bin_type=True)


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


def unpack_batch(body: bytes) -> Batch:
    _, origin, seq, drops, records = _unpack(body, 5)
    if not isinstance(seq, int) or not isinstance(drops, int) or not isinstance(records, bytes):
        raise MalformedFrame("bad seq, drop counter or records")
    return Batch(origin, seq, drops, records)


def unpack_host(body: bytes) -> HostMessage:
    _, origin, context = _unpack(body, 3)
    if not isinstance(context, dict):
        raise MalformedFrame("host context is not a map")
    return HostMessage(origin, context)
