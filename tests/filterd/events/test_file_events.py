"""FileCreate (11), RawAccessRead (9), FileDelete (23), FileDeleteDetected (26), FileCreateTime (2)
from hand-built records."""

from __future__ import annotations

from shared import records
from shared.decode import encode, split_path
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event, host


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


def test_file_delete_detected_hashes_of_a_running_image() -> None:
    h = host()
    digest = bytes(range(32))
    h.image_hashes[(0x800001, 99, 1_700_000_100)] = (4, digest)  # the collector's IMAGE_HASH
    rec = encode(
        records.FILE_DELETE, (b"payload", split_path("/tmp/w")), pid=ACTOR_PID, uid=0, dirfd=-100,
        ino=99, ctime=1_700_000_100, dev=0x800001, mode=0o100755, time_ns=at(9),
    )  # fmt: skip
    assert event(26, rec, h) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:29.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "User": "root",
        "Image": ACTOR_IMAGE,
        "TargetFilename": "/tmp/w/payload",
        "Hashes": "SHA256=" + digest.hex(),
        "IsExecutable": "true",
    }
    assert event(23, rec, h)["Hashes"] == "-"  # the same unlink, FileDelete as upstream


def test_file_delete_detected_without_a_hash() -> None:
    h = host()
    h.image_hashes[(1, 99, 5)] = (4, bytes(32))
    for ino, ctime in ((99, 6), (0, 5)):  # another version of the file; inode not seen
        rec = encode(records.FILE_DELETE, (b"/x", b""), pid=ACTOR_PID, ino=ino, ctime=ctime, dev=1)
        ev = event(26, rec, h)
        assert ev is not None and (ev["Hashes"], ev["IsExecutable"]) == ("-", "-")


def file_time(**kw: int) -> bytes:
    return encode(records.FILE_TIME, (b"a.txt", split_path("/srv/data")), pid=ACTOR_PID, uid=1000,
                  dirfd=-100, time_ns=at(10), **kw)  # fmt: skip


def test_file_create_time() -> None:
    rec = file_time(mtime_sec=1_577_880_000, mtime_nsec=5_000_000, prev_mtime_sec=1_700_000_000,
                    prev_mtime_nsec=999_999_999, have_prev=1)  # fmt: skip
    assert event(2, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:30.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": ACTOR_IMAGE,
        "TargetFilename": "/srv/data/a.txt",
        "CreationUtcTime": "2020-01-01 12:00:00.005",
        "PreviousCreationUtcTime": "2023-11-14 22:13:20.999",
        "User": "alice",
    }


def test_file_create_time_without_previous_and_by_descriptor() -> None:
    rec = encode(records.FILE_TIME, (b"", split_path("/srv/f")), pid=ACTOR_PID, dirfd=3, mtime_sec=-1)
    ev = event(2, rec)
    assert ev is not None
    assert (ev["TargetFilename"], ev["CreationUtcTime"], ev["PreviousCreationUtcTime"]) == (
        "/srv/f",
        "1969-12-31 23:59:59.000",
        "-",
    )


def test_file_create_time_any_time_a_user_can_set() -> None:
    for sec in (2**63 - 1, -(2**63), 253_402_300_800):  # s64 extremes, year 10000
        ev = event(2, file_time(mtime_sec=sec, mtime_nsec=999_999_999, prev_mtime_sec=sec, have_prev=1))
        assert ev is not None and len(ev["CreationUtcTime"].split(" ")) == 2
