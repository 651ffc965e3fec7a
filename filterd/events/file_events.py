"""Sysmon events 11 FileCreate, 9 RawAccessRead, 23 FileDelete and 2 FileCreateTime (records from
bpf/file.bpf.c).

User is filled for root too (upstream leaves `-` for root in 9, 11 and 23). FileDelete's
TargetFilename is the name as given when absolute, else the directory (cwd or dirfd, from the
kernel) + "/" + the name, not normalised: upstream's rule.
"""

from __future__ import annotations

from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index, join_path

from .actor import actor, event_time
from .process_create import format_hashes
from .registry import EventData, Options, Produces, event_data

# the three kinds share these positions (checked: a layout change must not move one silently)
TIME, PID, FLAGS, UID = (field_index(records.FILE_CREATE, n) for n in ("time_ns", "pid", "flags", "uid"))
for _kind in (records.RAW_ACCESS, records.FILE_DELETE, records.FILE_TIME):
    assert [field_index(_kind, n) for n in ("time_ns", "pid", "flags", "uid")] == [TIME, PID, FLAGS, UID]

FileCreate = event_data(11)
RawAccessRead = event_data(9)
# Hashes, IsExecutable, Archived: nothing is hashed or archived on Linux (upstream prints `-`)
FileDelete = event_data(23, Hashes="-", IsExecutable="-", Archived="-")
FileDeleteDetected = event_data(26)
D_INO, D_CTIME, D_DEV = (field_index(records.FILE_DELETE, n) for n in ("ino", "ctime", "dev"))
FileCreateTime = event_data(2)
MTIME, PREV_MTIME, MTIME_NS, PREV_MTIME_NS, HAVE_PREV = (
    field_index(records.FILE_TIME, n)
    for n in ("mtime_sec", "prev_mtime_sec", "mtime_nsec", "prev_mtime_nsec", "have_prev")
)


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
    if not text:  # the call named the file by descriptor (futimens): base is its own path
        return _path(v, base)
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


def file_delete_detected(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData:
    """Hashes come from the collector (an IMAGE_HASH of the unlinked inode's identity, sent just
    before this record): only a file still running as some process's image can be read once its
    name is gone, and such a file is one the kernel executed, so IsExecutable is true. Any other
    file: `-` for both, and the collector counts why (sysmon_collector_image_hashes_total)."""
    guid, image = actor(host, v[PID])
    known = host.image_hashes.get((v[D_DEV], v[D_INO], v[D_CTIME])) if v[D_INO] else None
    hashes = format_hashes(known[0], known[1], opts.hash_algorithms) if known else ""
    return FileDeleteDetected(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        User=host.user_name(v[UID]),
        Image=image,
        TargetFilename=target_filename(v, strings[0], strings[1]),
        Hashes=hashes or "-",
        IsExecutable="true" if hashes else "-",
    )


def file_create_time(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData:
    """Linux has no creation time to set: the modification time stands in for it."""
    guid, image = actor(host, v[PID])
    previous = utc_time(v[PREV_MTIME] * 1_000_000_000 + v[PREV_MTIME_NS]) if v[HAVE_PREV] else "-"
    return FileCreateTime(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        TargetFilename=target_filename(v, strings[0], strings[1]),
        CreationUtcTime=utc_time(v[MTIME] * 1_000_000_000 + v[MTIME_NS]),
        PreviousCreationUtcTime=previous,
        User=host.user_name(v[UID]),
    )


DECLARATIONS = (
    Produces(11, records.FILE_CREATE, file_create),
    Produces(9, records.RAW_ACCESS, raw_access_read),
    Produces(23, records.FILE_DELETE, file_delete),
    Produces(26, records.FILE_DELETE, file_delete_detected),
    Produces(2, records.FILE_TIME, file_create_time),
)
