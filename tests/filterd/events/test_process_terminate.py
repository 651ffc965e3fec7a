"""ProcessTerminate (5) from hand-built PROCESS_EXIT records."""

from __future__ import annotations

from filterd.guid import process_guid
from shared import records
from shared.decode import encode
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_PID, ACTOR_START, at, event, host


def test_exit_of_a_cached_process() -> None:
    h = host()
    rec = encode(records.PROCESS_EXIT, pid=ACTOR_PID, tid=ACTOR_PID, uid=1000, start_ns=ACTOR_START,
                 end_code=0xAC, time_ns=at(12.75))  # fmt: skip
    assert event(5, rec, h) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:32.750",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": "/usr/bin/actor",
        "User": "alice",
    }
    p = h.cache.get(ACTOR_PID)
    assert p is not None and p.exited_ns == at(12.75)  # kept a while for late events


def test_exit_of_an_unknown_process_still_has_its_guid() -> None:
    rec = encode(records.PROCESS_EXIT, pid=31337, uid=0, start_ns=at(1.5), end_code=0x77, time_ns=at(13))
    ev = event(5, rec)
    assert ev is not None
    assert ev["ProcessGuid"] == process_guid(0x3D1219C7, 1_700_000_001, 0x77)
    assert (ev["Image"], ev["User"]) == ("", "root")
