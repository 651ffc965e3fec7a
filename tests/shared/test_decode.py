"""Decoder round trips (hypothesis) and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import records
from shared.decode import decode, encode, join_path, split, split_path
from shared.errors import FrameError, MalformedFrame, UnknownKind

_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "s32": 0x7FFFFFFF, "u64": 2**64 - 1, "s64": 2**63 - 1}


@st.composite
def any_record(draw: st.DrawFn) -> tuple[records.RecordKind, dict[str, int], tuple[bytes, ...]]:
    spec = draw(st.sampled_from(records.KINDS))
    fixed = {f.name: draw(st.integers(0, _MAX[f.ctype])) for f in spec.fields}
    fixed["pid"] = draw(st.integers(0, 2**32 - 1))
    fixed["time_ns"] = draw(st.integers(0, 2**64 - 1))
    strings = tuple(draw(st.binary(max_size=spec.string_max.get(s, 64))) for s in spec.strings)
    return spec, fixed, strings


@given(any_record())
def test_encode_decode_round_trip(rec: tuple) -> None:
    spec, fixed, strings = rec
    raw = encode(spec, strings, **fixed)
    got_spec, values, got_strings = decode(raw)
    assert got_spec is spec
    names = [f.name for f in spec.all_fields]
    for name, value in fixed.items():
        assert values[names.index(name)] == value
    assert got_strings == strings
    assert values[names.index("size")] == len(raw)


@given(st.lists(any_record(), max_size=8))
def test_split_batch_round_trip(recs: list) -> None:
    raws = [encode(spec, strings, **fixed) for spec, fixed, strings in recs]
    assert [bytes(r) for r in split(b"".join(raws))] == raws


@given(st.binary(max_size=300))
def test_garbage_raises_only_frame_errors(blob: bytes) -> None:
    try:
        for rec in split(blob):
            decode(rec)
    except FrameError:
        pass


def test_truncated_and_unknown() -> None:
    raw = encode(records.PROCESS_EXIT, start_ns=1)
    with pytest.raises(MalformedFrame):
        list(split(raw[:-1]))
    bad = bytearray(raw)
    bad[0] = 99
    with pytest.raises(UnknownKind):
        decode(bytes(bad))


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=20,
        ),
        max_size=10,
    )
)
def test_path_round_trip(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    assert join_path(split_path(path)) == path


def test_join_path_kernel_order_and_truncation() -> None:
    assert join_path(b"cp\0bin\0usr\0") == "/usr/bin/cp"
    assert join_path(b"") == "/"
    assert join_path(b"c\0b\0", truncated=True) == "+/b/c"


def test_split_yields_the_records_before_a_bad_length_then_raises() -> None:
    good = [encode(records.PROCESS_EXIT, pid=i) for i in range(3)]
    bad = bytearray(encode(records.PROCESS_EXIT, pid=9))
    bad[4] = 200  # size larger than what is left
    seen: list[bytes] = []
    with pytest.raises(MalformedFrame):
        for rec in split(b"".join(good) + bytes(bad)):
            seen.append(bytes(rec))
    assert seen == good
    seen = []
    with pytest.raises(MalformedFrame):  # a tail shorter than a header
        for rec in split(b"".join(good) + b"\x02\x00"):
            seen.append(bytes(rec))
    assert seen == good


@given(any_record(), st.integers(0, 400))
def test_decode_cut_records_raise_frame_errors(rec: tuple, cut: int) -> None:
    """Any prefix of a record decodes to the same values or raises MalformedFrame; a memoryview
    decodes like bytes."""
    spec, fixed, strings = rec
    raw = encode(spec, strings, **fixed)
    assert decode(memoryview(raw)) == decode(raw)
    part = raw[: min(cut, len(raw))]
    if len(part) < 2:
        return
    try:
        got = decode(part)
    except MalformedFrame:
        return
    assert got[1] == decode(raw)[1]
    assert b"".join(got[2]) == b"".join(strings)
