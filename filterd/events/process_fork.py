"""PROCESS_FORK: a new process that runs its parent's image until it execs. No event of its own.

The child enters the cache as a copy of its parent, so its file, network and other events name
the right image. The kernel sends the record only when the child does something before exec
(bpf/include/common.h, `forked`), so most forks cost nothing here.
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from filterd.state.process_cache import Process
from shared import records
from shared.decode import field_index

from .registry import Tracks

PID, PSTART, CHILD, CSTART, UID = (
    field_index(records.PROCESS_FORK, n)
    for n in ("pid", "parent_start_ns", "child_pid", "child_start_ns", "uid")
)


def track_fork(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> None:
    parent = host.cache.get(v[PID], v[PSTART])
    if parent is None:  # forked before the monitor started and missed by its snapshot
        return
    start = v[CSTART]
    host.cache.put(
        Process(
            pid=v[CHILD],
            start_ns=start,
            start_s=(start + host.boot_epoch_ns) // 1_000_000_000,
            machine_id=host.machine_id,
            image=parent.image,
            command_line=parent.command_line,
            cwd=parent.cwd,
            uid=v[UID],
            end_code=parent.end_code,
        )
    )


DECLARATIONS = (Tracks(records.PROCESS_FORK, track_fork),)
