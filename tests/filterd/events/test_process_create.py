"""ProcessCreate (1) from hand-built PROCESS_EXEC records: the cache, the parent, image hashes."""

from __future__ import annotations

from filterd.events.registry import Options
from filterd.guid import logon_guid, process_guid
from shared import records
from shared.decode import encode, split_path
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_PID, ACTOR_START, at, event, host

MID = 0x3D1219C7


def exec_rec(flags: int = 0, tty: int = 0, **over: int) -> bytes:
    fields = dict(
        pid=5000, tid=5000, ppid=ACTOR_PID, uid=1001, gid=1001, auid=1001, sessionid=7, tty=tty,
        start_ns=at(4.25), parent_start_ns=ACTOR_START, end_code=0xBEEF, exe_ino=77, exe_ctime=1_699_000_000,
        exe_dev=0x803, time_ns=at(4.25), flags=flags,
    )  # fmt: skip
    fields.update(over)
    return encode(
        records.PROCESS_EXEC,
        (split_path("/usr/bin/grep"), split_path("/home/bob"), b"grep\0-r\0needle\0"),
        **fields,
    )


def test_exec_with_a_known_parent() -> None:
    ev = event(1, exec_rec(tty=2))
    assert ev == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:24.250",
        "ProcessGuid": process_guid(MID, 1_700_000_004, 0xBEEF),
        "ProcessId": "5000",
        "Image": "/usr/bin/grep",
        "FileVersion": "",
        "Description": "",
        "Product": "",
        "Company": "",
        "OriginalFileName": "",
        "CommandLine": "grep -r needle",
        "CurrentDirectory": "/home/bob",
        "User": "bob",
        "LogonGuid": logon_guid(MID, 0, 2, 1001),  # no utmp login of bob on pts/2
        "LogonId": "1001",
        "TerminalSessionId": "7",
        "IntegrityLevel": "no level",
        "Hashes": "",
        "ParentProcessGuid": ACTOR_GUID,
        "ParentProcessId": "4242",
        "ParentImage": "/usr/bin/actor",
        "ParentCommandLine": "actor --run",
        "ParentUser": "alice",
    }


def test_unknown_parent_no_tty_login_and_hashes_of_the_image() -> None:
    h = host()
    h.update(
        {"machine_id": "3d1219c7aa", "users": {1001: "bob"}, "logins": [["pts/0", "bob", 1_699_999_000]]}
    )
    sha1, md5, sha256 = bytes(range(20)), bytes(range(100, 116)), bytes(range(200, 232))
    hashes = encode(records.IMAGE_HASH, (sha1 + md5 + sha256,), exe_ino=77, exe_ctime=1_699_000_000,
                    exe_dev=0x803, algos=1 | 2 | 4)  # fmt: skip
    from shared.decode import decode

    spec, v, s = decode(hashes)
    from filterd.events.registry import registry

    registry().tracks[spec.kind].update(h, v, s)
    rec = exec_rec(flags=records.REC_F_NO_TTY, tty=5, ppid=1, parent_start_ns=0)
    ev = event(1, rec, h, Options(hash_algorithms=("SHA256", "MD5")))
    assert ev is not None
    assert ev["Hashes"] == f"MD5={md5.hex()},SHA256={sha256.hex()}"  # Sysmon's order, the config's choice
    assert ev["LogonGuid"] == logon_guid(MID, 1_699_999_000, 0, 1001)  # no tty: pts/0
    assert (ev["ParentProcessGuid"], ev["ParentProcessId"]) == ("{00000000-0000-0000-0000-000000000000}", "1")
    assert ev["ParentImage"] == ev["ParentCommandLine"] == ev["ParentUser"] == ""


def test_every_exec_enters_the_cache() -> None:
    h = host()
    event(1, exec_rec(), h)
    p = h.cache.get(5000, at(4.25))
    assert p is not None and (p.image, p.command_line, p.cwd, p.uid) == (
        "/usr/bin/grep",
        "grep -r needle",
        "/home/bob",
        1001,
    )


def test_truncated_paths_are_marked() -> None:
    ev = event(1, exec_rec(flags=records.REC_F_EXE_TRUNC | records.REC_F_CWD_TRUNC))
    assert ev is not None and (ev["Image"], ev["CurrentDirectory"]) == ("+/usr/bin/grep", "+/home/bob")
