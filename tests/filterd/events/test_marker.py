"""MARKER: the drain marker's token is kept per host (state only, no event)."""

from __future__ import annotations

from filterd.events.registry import registry
from shared import records
from shared.decode import decode, encode
from tests.filterd.events.records_at_hand import host


def test_the_last_token_is_kept() -> None:
    h = host()
    track = registry().tracks[records.MARKER.kind].update
    assert h.marker is None
    for token in (3, 2**64 - 1):
        _, v, s = decode(encode(records.MARKER, token=token))
        track(h, v, s)
        assert h.marker == token
    assert registry().events_of(records.MARKER.kind) == ()
