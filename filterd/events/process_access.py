"""Sysmon event 10 ProcessAccess from a PROCESS_ACCESS record (bpf/ptrace.bpf.c).

The target's GUID, image and user come from the kernel's view of the tracee, so they are right
even for a process the cache never saw (upstream reads /proc, and its sample shows the
source's GUID as TargetProcessGUID). GrantedAccess `0x0` and CallTrace `-` as upstream.
"""

from __future__ import annotations

from filterd.guid import process_guid
from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index, join_path

from .actor import actor, event_time
from .registry import EventData, Options, Produces, event_data

TIME, PID, TID, UID, FLAGS, T_PID, T_UID, T_START, T_END = (
    field_index(records.PROCESS_ACCESS, n)
    for n in ("time_ns", "pid", "tid", "uid", "flags", "target_pid", "target_uid", "target_start_ns")
    + ("target_end_code",)
)
ProcessAccess = event_data(10, GrantedAccess="0x0", CallTrace="-")  # as upstream on Linux


def build(host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None) -> EventData:
    guid, image = actor(host, v[PID])
    target = host.cache.get(v[T_PID], v[T_START])
    if target is not None:
        t_guid = target.guid
    else:
        t_guid = process_guid(host.machine_id, (v[T_START] + host.boot_epoch_ns) // 1_000_000_000, v[T_END])
    t_image = (
        join_path(strings[0], bool(v[FLAGS] & records.REC_F_PATH_TRUNC))
        if strings[0]
        else (target.image if target else "")
    )
    return ProcessAccess(
        UtcTime=event_time(host, v[TIME]),
        SourceProcessGUID=guid,
        SourceProcessId=str(v[PID]),
        SourceThreadId=str(v[TID]),
        SourceImage=image,
        TargetProcessGUID=t_guid,
        TargetProcessId=str(v[T_PID]),
        TargetImage=t_image,
        SourceUser=host.user_name(v[UID]),
        TargetUser=host.user_name(v[T_UID]),
    )


DECLARATIONS = (Produces(10, records.PROCESS_ACCESS, build),)
