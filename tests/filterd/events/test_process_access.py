"""ProcessAccess (10) from hand-built records: the target comes from the kernel's view."""

from __future__ import annotations

from filterd.guid import process_guid
from shared import records
from shared.decode import encode, split_path
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event, host


def test_attach_to_a_process_the_cache_never_saw() -> None:
    rec = encode(
        records.PROCESS_ACCESS, (split_path("/usr/bin/sleep"),), pid=ACTOR_PID, tid=4250, uid=1000,
        target_pid=900, target_tid=900, target_uid=0, request=16, target_start_ns=at(3),
        target_end_code=0x1234, time_ns=at(9),
    )  # fmt: skip
    assert event(10, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:29.000",
        "SourceProcessGUID": ACTOR_GUID,
        "SourceProcessId": "4242",
        "SourceThreadId": "4250",
        "SourceImage": ACTOR_IMAGE,
        # the target's start: boot epoch + 3 s
        "TargetProcessGUID": process_guid(0x3D1219C7, 1_700_000_003, 0x1234),
        "TargetProcessId": "900",
        "TargetImage": "/usr/bin/sleep",
        "GrantedAccess": "0x0",
        "CallTrace": "-",
        "SourceUser": "alice",
        "TargetUser": "root",
    }


def test_a_known_target_keeps_its_cached_guid_and_image_when_the_kernel_sent_none() -> None:
    h = host()
    rec = encode(
        records.PROCESS_ACCESS, (b"",), pid=1, tid=1, uid=0, target_pid=ACTOR_PID, target_uid=1000,
        target_start_ns=2 * 10**9, time_ns=at(10),
    )  # fmt: skip
    ev = event(10, rec, h)
    assert ev is not None
    assert (ev["TargetProcessGUID"], ev["TargetImage"], ev["TargetUser"]) == (
        ACTOR_GUID,
        ACTOR_IMAGE,
        "alice",
    )
