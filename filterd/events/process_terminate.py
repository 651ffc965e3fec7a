"""Sysmon event 5, ProcessTerminate, from a PROCESS_EXIT record (last thread of the group).

User is the exiting process's user, root included (upstream prints `-` for root here).
"""

from __future__ import annotations

from filterd.guid import process_guid
from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState
from filterd.state.process_cache import Process
from shared import records
from shared.decode import field_index

from .registry import EventData, Options, Produces, Tracks, event_data

TIME, PID, UID, START, END_CODE = (
    field_index(records.PROCESS_EXIT, n) for n in ("time_ns", "pid", "uid", "start_ns", "end_code")
)
ProcessTerminate = event_data(5)


def track_exit(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> Process | None:
    """The cache keeps an exited process a while (late events, children), logged or not."""
    return host.cache.exited(v[PID], v[START], v[TIME])


def build(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, proc: Process | None
) -> EventData:
    """`proc`: the exiting process as the cache knew it (track_exit), None if it did not."""
    if proc is not None:
        guid, image = proc.guid, proc.image
    else:  # started before the monitor and missed by its snapshot: the GUID is still computable
        guid = process_guid(host.machine_id, (v[START] + host.boot_epoch_ns) // 1_000_000_000, v[END_CODE])
        image = ""
    return ProcessTerminate(
        UtcTime=utc_time(v[TIME] + host.boot_epoch_ns),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        User=host.user_name(v[UID]),
    )


DECLARATIONS = (
    Tracks(records.PROCESS_EXIT, track_exit),
    Produces(5, records.PROCESS_EXIT, build),
)
