"""Sysmon events 11 FileCreate, 9 RawAccessRead and 23 FileDelete (records from bpf/file.bpf.c).

User is filled for root too (upstream leaves `-` for root in 9, 11 and 23). FileDelete's
TargetFilename is the name as given when absolute, else the directory (cwd or dirfd, from the
kernel) + "/" + the name, not normalised: upstream's rule.
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index, join_path

from .actor import actor, event_time
from .registry import EventData, Options, Produces, event_data

# the three kinds share these positions (checked: a layout change must not move one silently)
TIME, PID, FLAGS, UID = (field_index(records.FILE_CREATE, n) for n in ("time_ns", "pid", "flags", "uid"))
for _kind in (records.RAW_ACCESS, records.FILE_DELETE):
    assert [field_index(_kind, n) for n in ("time_ns", "pid", "flags", "uid")] == [TIME, PID, FLAGS, UID]

FileCreate = event_data(11)
RawAccessRead = event_data(9)
# Hashes, IsExecutable, Archived: nothing is hashed or archived on Linux (upstream prints `-`)
FileDelete = event_data(23, Hashes="-", IsExecutable="-", Archived="-")


def _path(v: tuple, raw: bytes) -> str:
    return join_path(raw, bool(v[FLAGS] & records.REC_F_PATH_TRUNC))


def file_create(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData:
    guid, image = actor(host, v[PID])
    t = event_time(host, v[TIME])
    return FileCreate(
        UtcTime=t,
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        TargetFilename=_path(v, strings[0]),
        CreationUtcTime=t,  # the kernel saw the creation now
        User=host.user_name(v[UID]),
    )


def raw_access_read(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData:
    guid, image = actor(host, v[PID])
    return RawAccessRead(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        Device=_path(v, strings[0]),
        User=host.user_name(v[UID]),
    )


def target_filename(v: tuple, name: bytes, base: bytes) -> str:
    text = name.decode("utf-8", "surrogateescape")
    if text.startswith("/"):
        return text
    return _path(v, base).rstrip("/") + "/" + text


def file_delete(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData:
    guid, image = actor(host, v[PID])
    return FileDelete(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        User=host.user_name(v[UID]),
        Image=image,
        TargetFilename=target_filename(v, strings[0], strings[1]),
    )


DECLARATIONS = (
    Produces(11, records.FILE_CREATE, file_create),
    Produces(9, records.RAW_ACCESS, raw_access_read),
    Produces(23, records.FILE_DELETE, file_delete),
)
