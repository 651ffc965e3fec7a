"""Raw record bytes <-> Python values, derived from shared.records (nothing hand-written per kind).

decode() returns (spec, fixed values tuple, strings tuple): tuples, not objects, because this
runs once per event on filterd's hot path. encode() is its inverse, used by the collector for
the records it makes itself (process snapshot, hashes, markers) and by tests.
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Callable, Iterable, Iterator

from .errors import FrameError, MalformedFrame, UnknownKind
from .records import HEADER_FIELDS, HEADER_SIZE, KINDS, RecordKind

_STRUCTS: dict[int, struct.Struct] = {k.kind: struct.Struct(k.fmt) for k in KINDS}
_SIZE = struct.Struct("<I")  # the header's `size` field, at byte 4
assert [f.name for f in HEADER_FIELDS[:3]] == ["kind", "flags", "size"]


def field_index(spec: RecordKind, name: str) -> int:
    """Position of a field in the tuple decode() returns."""
    return [f.name for f in spec.all_fields].index(name)


def _then_raise(recs: list[bytes], error: FrameError) -> Iterator[bytes]:
    yield from recs
    raise error


def split(blob: bytes) -> Iterable[bytes]:
    """Records of a batch, each checked to fit; a bad length ends the batch with MalformedFrame.

    The whole batch is cut at once (one tight loop, records as bytes: indexing and slicing bytes
    is cheaper than a memoryview's); a batch with a bad length yields the records before it and
    then raises, as a lazy walk would."""
    pos, end = 0, len(blob)
    unpack = _SIZE.unpack_from
    out: list[bytes] = []
    append = out.append
    while pos < end:
        if end - pos < HEADER_SIZE:
            return _then_raise(out, MalformedFrame(f"truncated record header at byte {pos}"))
        size = unpack(blob, pos + 4)[0]
        nxt = pos + size
        if size < HEADER_SIZE or nxt > end:
            return _then_raise(
                out, MalformedFrame(f"record size {size} at byte {pos} does not fit the batch")
            )
        append(blob[pos:nxt])
        pos = nxt
    return out


def _decoder(spec: RecordKind) -> Callable[[bytes], tuple[RecordKind, tuple, tuple[bytes, ...]]]:
    """decode() for one kind, made once: the string tail is cut with the kind's own arithmetic
    (specialised for 0 to 3 strings, the counts that exist), no loop and no list per record."""
    st = _STRUCTS[spec.kind]
    unpack, fixed, n = st.unpack_from, st.size, len(spec.strings)
    names = [f.name for f in spec.all_fields]
    i = names.index(f"{spec.strings[0]}_len") if n else 0

    def short() -> MalformedFrame:
        return MalformedFrame(f"{spec.name} shorter than its fixed part")

    def overrun() -> MalformedFrame:
        return MalformedFrame(f"{spec.name} strings overrun the record")

    if n == 0:

        def dec(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
            try:
                return spec, unpack(rec), ()
            except struct.error:
                raise short() from None

    elif n == 1:

        def dec(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
            try:
                v = unpack(rec)
            except struct.error:
                raise short() from None
            a = fixed + v[i]
            if a > len(rec):
                raise overrun()
            return spec, v, (rec[fixed:a],)

    elif n == 2:

        def dec(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
            try:
                v = unpack(rec)
            except struct.error:
                raise short() from None
            a = fixed + v[i]
            b = a + v[i + 1]
            if b > len(rec):
                raise overrun()
            return spec, v, (rec[fixed:a], rec[a:b])

    elif n == 3:

        def dec(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
            try:
                v = unpack(rec)
            except struct.error:
                raise short() from None
            a = fixed + v[i]
            b = a + v[i + 1]
            c = b + v[i + 2]
            if c > len(rec):
                raise overrun()
            return spec, v, (rec[fixed:a], rec[a:b], rec[b:c])

    else:

        def dec(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
            try:
                v = unpack(rec)
            except struct.error:
                raise short() from None
            ends = list(itertools.accumulate(v[i : i + n], initial=fixed))
            if ends[-1] > len(rec):
                raise overrun()
            return spec, v, tuple(rec[x:y] for x, y in itertools.pairwise(ends))

    return dec


_DECODERS = {k.kind: _decoder(k) for k in KINDS}


def decode(rec: bytes) -> tuple[RecordKind, tuple, tuple[bytes, ...]]:
    """(spec, fixed values, strings) of one record (bytes, or any buffer split() would give)."""
    dec = _DECODERS.get(rec[0] | (rec[1] << 8))
    if dec is None:
        raise UnknownKind(f"record kind {rec[0] | (rec[1] << 8)}")
    if type(rec) is not bytes:
        rec = bytes(rec)
    return dec(rec)


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
