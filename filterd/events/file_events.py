"""Sysmon events 11 FileCreate, 9 RawAccessRead and 23 FileDelete (records from bpf/file.bpf.c).

User is filled for root too (upstream leaves `-` for root in 9, 11 and 23). FileDelete's
TargetFilename is the name as given when absolute, else the directory (cwd or dirfd, from the
kernel) + "/" + the name, not normalised: upstream's rule.
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from shared import records
from shared.decode import join_path

from .actor import actor, event_time

_C = {f.name: i for i, f in enumerate(records.FILE_CREATE.all_fields)}
_D = {f.name: i for i, f in enumerate(records.FILE_DELETE.all_fields)}
TIME, PID, FLAGS, UID = _C["time_ns"], _C["pid"], _C["flags"], _C["uid"]
assert (_D["time_ns"], _D["pid"], _D["flags"], _D["uid"]) == (TIME, PID, FLAGS, UID)


def _path(v: tuple, raw: bytes) -> str:
    return join_path(raw, bool(v[FLAGS] & records.REC_F_PATH_TRUNC))


def file_create(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
    guid, image = actor(host, v[PID])
    t = event_time(host, v[TIME])
    return ("", t, guid, str(v[PID]), image, _path(v, strings[0]), t, host.user_name(v[UID]))


def raw_access_read(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
    guid, image = actor(host, v[PID])
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        image,
        _path(v, strings[0]),
        host.user_name(v[UID]),
    )


def target_filename(v: tuple, name: bytes, base: bytes) -> str:
    text = name.decode("utf-8", "surrogateescape")
    if text.startswith("/"):
        return text
    return _path(v, base).rstrip("/") + "/" + text


def file_delete(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
    guid, image = actor(host, v[PID])
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        host.user_name(v[UID]),
        image,
        target_filename(v, strings[0], strings[1]),
        "-",
        "-",
        "-",
    )
