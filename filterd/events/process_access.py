"""Sysmon event 10 ProcessAccess from a PROCESS_ACCESS record (bpf/ptrace.bpf.c).

The target's GUID, image and user come from the kernel's view of the tracee, so they are right
even for a process the cache never saw (upstream reads /proc, and its sample shows the
source's GUID as TargetProcessGUID). GrantedAccess `0x0` and CallTrace `-` as upstream.
"""

from __future__ import annotations

from filterd.guid import process_guid
from filterd.state.hosts import HostState
from shared import records
from shared.decode import join_path

from .actor import actor, event_time

_F = {f.name: i for i, f in enumerate(records.PROCESS_ACCESS.all_fields)}
TIME, PID, TID, UID, FLAGS = _F["time_ns"], _F["pid"], _F["tid"], _F["uid"], _F["flags"]
T_PID, T_UID, T_START, T_END = (
    _F["target_pid"],
    _F["target_uid"],
    _F["target_start_ns"],
    _F["target_end_code"],
)


def build(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
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
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        str(v[TID]),
        image,
        t_guid,
        str(v[T_PID]),
        t_image,
        "0x0",
        "-",
        host.user_name(v[UID]),
        host.user_name(v[T_UID]),
    )
