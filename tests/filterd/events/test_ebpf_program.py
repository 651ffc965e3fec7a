"""eBPFEvent (100) from hand-built records."""

from __future__ import annotations

from shared import records
from shared.decode import encode
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event


def test_prog_load() -> None:
    rec = encode(
        records.BPF_PROGRAM, (b"my_prog\0\0\0garbage",), pid=ACTOR_PID, uid=0, command=5, prog_type=5,
        prog_id=321, fd=7, time_ns=at(11),
    )  # fmt: skip
    assert event(100, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:31.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": ACTOR_IMAGE,
        "User": "root",
        "BpfCommand": "BPF_PROG_LOAD",
        "BpfProgramType": "TRACEPOINT",
        "BpfProgramId": "321",
        "BpfProgramName": "my_prog",
    }


def test_attach_unknown_type_and_user_as_numbers() -> None:
    rec = encode(records.BPF_PROGRAM, (b"x",), pid=ACTOR_PID, uid=4321, command=8, prog_type=999, prog_id=1)
    ev = event(100, rec)
    assert ev is not None
    assert (ev["BpfCommand"], ev["BpfProgramType"], ev["User"]) == ("BPF_PROG_ATTACH", "999", "4321")
