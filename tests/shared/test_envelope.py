"""Envelope round trips and every kind of bad frame."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import envelope
from shared.errors import FrameError, MalformedFrame, VersionMismatch
from shared.version import WIRE_VERSION


@given(
    st.text(max_size=80),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=2000),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
)
def test_batch_round_trip(origin: str, seq: int, blob: bytes, epoch: int, first: int) -> None:
    b = envelope.unpack_batch(envelope.pack_batch(origin, seq, blob, 7, epoch, first))
    assert b == (origin, epoch, seq, first, 7, blob)


def test_host_round_trip() -> None:
    ctx = {"hostname": "h", "users": {0: "root", 1000: "u"}, "logins": [["pts/0", "u", 5]]}
    m = envelope.unpack_host(envelope.pack_host("o", ctx))
    assert m.origin == "o" and m.context["users"][1000] == "u"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",
        b"garbage",
        msgpack.packb([WIRE_VERSION]),
        msgpack.packb({"a": 1}),
        msgpack.packb([WIRE_VERSION, 5, 0, 0, 0, 0, b""]),
        msgpack.packb([WIRE_VERSION, "o", 0, "x", 0, 0, b""]),
        msgpack.packb([WIRE_VERSION, "o", 0, 0, 0, "many", b""]),
        msgpack.packb([WIRE_VERSION, "o", 0, -1, 0, 0, b""]),
        msgpack.packb([WIRE_VERSION, "o", 0, 0, True, 0, b""]),
        msgpack.packb([WIRE_VERSION, "o", 0, 0, b""]),
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        envelope.unpack_batch(body)


def test_version_mismatch() -> None:
    with pytest.raises(VersionMismatch):
        envelope.unpack_batch(msgpack.packb([WIRE_VERSION + 1, "o", 0, 0, 0, 0, b""]))


@given(st.binary(max_size=200))
def test_any_bytes_give_frame_error_or_batch(body: bytes) -> None:
    with contextlib.suppress(FrameError):
        envelope.unpack_batch(body)
