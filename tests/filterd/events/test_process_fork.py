"""PROCESS_FORK: the child runs its parent's image until it execs (state only, no event)."""

from __future__ import annotations

from filterd.events.registry import registry
from shared import records
from shared.decode import decode, encode
from tests.filterd.events.records_at_hand import ACTOR_PID, ACTOR_START, at, host


def track(h: object, rec: bytes) -> None:
    spec, v, s = decode(rec)
    registry().tracks[spec.kind].update(h, v, s)


def test_child_copies_its_parent() -> None:
    h = host()
    track(h, encode(records.PROCESS_FORK, pid=ACTOR_PID, child_pid=6000, uid=1001,
                    child_start_ns=at(20), parent_start_ns=ACTOR_START))  # fmt: skip
    child = h.cache.get(6000, at(20))
    assert child is not None
    assert (child.image, child.command_line, child.cwd, child.uid) == (
        "/usr/bin/actor",
        "actor --run",
        "/srv",
        1001,
    )
    assert child.start_s == 1_700_000_020 and child.end_code == 0xAC


def test_unknown_parent_adds_nothing() -> None:
    h = host()
    track(h, encode(records.PROCESS_FORK, pid=1, child_pid=6001, child_start_ns=at(20), parent_start_ns=0))
    assert h.cache.get(6001) is None
