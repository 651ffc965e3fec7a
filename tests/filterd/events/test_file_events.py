"""FileCreate (11), RawAccessRead (9), FileDelete (23) from hand-built records."""

from __future__ import annotations

from shared import records
from shared.decode import encode, split_path
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event


def test_file_create() -> None:
    rec = encode(
        records.FILE_CREATE, (split_path("/var/tmp/new.txt"),), pid=ACTOR_PID, tid=4243, uid=1000, fd=3,
        time_ns=at(5.123456),
    )  # fmt: skip
    assert event(11, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:25.123",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": ACTOR_IMAGE,
        "TargetFilename": "/var/tmp/new.txt",
        "CreationUtcTime": "2023-11-14 22:13:25.123",
        "User": "alice",
    }


def test_file_create_truncated_path_and_unknown_actor() -> None:
    rec = encode(
        records.FILE_CREATE, (split_path("/deep/file"),), pid=777, uid=1001, time_ns=at(61),
        flags=records.REC_F_PATH_TRUNC,
    )  # fmt: skip
    ev = event(11, rec)
    assert ev is not None
    assert (ev["TargetFilename"], ev["User"], ev["UtcTime"]) == (
        "+/deep/file",
        "bob",
        "2023-11-14 22:14:21.000",
    )
    assert (ev["ProcessGuid"], ev["Image"]) == ("{00000000-0000-0000-0000-000000000000}", "<unknown process>")


def test_raw_access_read() -> None:
    rec = encode(records.RAW_ACCESS, (split_path("/dev/loop3"),), pid=ACTOR_PID, uid=0, time_ns=at(7))
    assert event(9, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:27.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": ACTOR_IMAGE,
        "Device": "/dev/loop3",
        "User": "root",
    }


def test_file_delete_relative_name_joins_the_directory_unnormalised() -> None:
    rec = encode(
        records.FILE_DELETE, (b"../old.log", split_path("/home/alice/src")), pid=ACTOR_PID, uid=1000,
        dirfd=-100, time_ns=at(8.5),
    )  # fmt: skip
    assert event(23, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:28.500",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "User": "alice",
        "Image": ACTOR_IMAGE,
        "TargetFilename": "/home/alice/src/../old.log",
        "Hashes": "-",
        "IsExecutable": "-",
        "Archived": "-",
    }


def test_file_delete_absolute_name_is_kept_as_given() -> None:
    rec = encode(records.FILE_DELETE, (b"/tmp//x", split_path("/ignored")), pid=ACTOR_PID, uid=1000)
    ev = event(23, rec)
    assert ev is not None and ev["TargetFilename"] == "/tmp//x"
