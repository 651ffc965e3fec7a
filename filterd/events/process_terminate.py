"""Sysmon event 5, ProcessTerminate, from a PROCESS_EXIT record (last thread of the group).

User is the exiting process's user, root included (upstream prints `-` for root here).
"""

from __future__ import annotations

from filterd.guid import process_guid
from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState
from shared import records

_F = {f.name: i for i, f in enumerate(records.PROCESS_EXIT.all_fields)}
TIME, PID, UID, START, END_CODE = _F["time_ns"], _F["pid"], _F["uid"], _F["start_ns"], _F["end_code"]


def build(host: HostState, v: tuple) -> tuple[str, ...]:
    proc = host.cache.exited(v[PID], v[START], v[TIME])
    if proc is not None:
        guid, image = proc.guid, proc.image
    else:
        guid = process_guid(host.machine_id, (v[START] + host.boot_epoch_ns) // 1_000_000_000, v[END_CODE])
        image = ""
    return ("", utc_time(v[TIME] + host.boot_epoch_ns), guid, str(v[PID]), image, host.user_name(v[UID]))
