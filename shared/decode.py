"""Raw record bytes <-> Python values, derived from shared.records (nothing hand-written per kind).

decode() returns (spec, fixed values tuple, strings tuple): tuples, not objects, because this
runs once per event on filterd's hot path. encode() is its inverse, used by the collector for
the records it makes itself (process snapshot, hashes, markers) and by tests.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator

from .errors import MalformedFrame, UnknownKind
from .records import HEADER_FMT, HEADER_SIZE, KINDS, RecordKind

_HEADER = struct.Struct(HEADER_FMT)
_STRUCTS: dict[int, struct.Struct] = {k.kind: struct.Struct(k.fmt) for k in KINDS}


def field_index(spec: RecordKind, name: str) -> int:
    """Position of a field in the tuple decode() returns."""
    return [f.name for f in spec.all_fields].index(name)


def split(blob: bytes) -> Iterator[memoryview]:
    """Records of a batch, each checked to fit; a bad length ends the batch with MalformedFrame."""
    view = memoryview(blob)
    pos, end = 0, len(blob)
    unpack = _HEADER.unpack_from
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise MalformedFrame(f"truncated record header at byte {pos}")
        size = unpack(view, pos)[2]
        if size < HEADER_SIZE or pos + size > end:
            raise MalformedFrame(f"record size {size} at byte {pos} does not fit the batch")
        yield view[pos : pos + size]
        pos += size


def _plan(spec: RecordKind) -> tuple[RecordKind, struct.Struct, int, int]:
    """(spec, struct, index of the first string length, number of strings), computed once."""
    names = [f.name for f in spec.all_fields]
    first = names.index(f"{spec.strings[0]}_len") if spec.strings else 0
    return spec, _STRUCTS[spec.kind], first, len(spec.strings)


_PLANS: dict[int, tuple[RecordKind, struct.Struct, int, int]] = {k.kind: _plan(k) for k in KINDS}


def decode(rec: memoryview | bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
    plan = _PLANS.get(rec[0] | (rec[1] << 8))
    if plan is None:
        raise UnknownKind(f"record kind {rec[0] | (rec[1] << 8)}")
    spec, st, first, n = plan
    if len(rec) < st.size:
        raise MalformedFrame(f"{spec.name} shorter than its fixed part")
    values = st.unpack_from(rec)
    if not n:
        return spec, values, ()
    pos = st.size
    out = []
    for ln in values[first : first + n]:
        out.append(bytes(rec[pos : pos + ln]))
        pos += ln
    if pos > len(rec):
        raise MalformedFrame(f"{spec.name} strings overrun the record")
    return spec, values, tuple(out)


def encode(spec: RecordKind, strings: tuple[bytes, ...] = (), **fields: int) -> bytes:
    """Build a record; header size and string lengths are filled in, unknown names rejected."""
    names = [f.name for f in spec.all_fields]
    extra = set(fields) - set(names)
    if extra:
        raise ValueError(f"{spec.name} has no fields {sorted(extra)}")
    if len(strings) != len(spec.strings):
        raise ValueError(f"{spec.name} takes {len(spec.strings)} strings")
    values = dict.fromkeys(names, 0)
    values.update(fields)
    values["kind"] = spec.kind
    for s_name, s in zip(spec.strings, strings, strict=True):
        values[f"{s_name}_len"] = len(s)
    values["size"] = spec.fixed_size + sum(len(s) for s in strings)
    return _STRUCTS[spec.kind].pack(*(values[n] for n in names)) + b"".join(strings)


@functools.lru_cache(maxsize=4096)
def join_path(raw: bytes, truncated: bool = False) -> str:
    """Leaf-first NUL-terminated components (as the kernel walk wrote them) -> '/a/b/c'.

    Sysmon marks a path whose walk stopped early with a leading '+'. Memoised: the same
    images and directories come back all the time."""
    if not raw:
        return "+/" if truncated else "/"
    parts = raw.rstrip(b"\0").decode("utf-8", "surrogateescape").split("\0")
    parts.reverse()
    path = "/" + "/".join(parts)
    return "+" + path if truncated else path


def split_path(path: str) -> bytes:
    """Inverse of join_path for the collector's /proc snapshot."""
    parts = [p for p in path.split("/") if p]
    parts.reverse()
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in parts)
