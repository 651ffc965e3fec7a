"""The acting process of a non-process event: ProcessGuid and Image from the process cache.

Records of file, network, ptrace and BPF events carry only the pid (the kernel knows no more
at that point); every process got into the cache by its exec, its fork or the collector's
start-up snapshot, so a miss is rare and rendered as upstream does: a zero GUID and
`<unknown process>`.
"""

from __future__ import annotations

from filterd.guid import ZERO_GUID
from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState

UNKNOWN_IMAGE = "<unknown process>"


def actor(host: HostState, pid: int) -> tuple[str, str]:
    """(ProcessGuid, Image) of pid."""
    p = host.cache.get(pid)
    if p is None:
        return ZERO_GUID, UNKNOWN_IMAGE
    return p.guid, p.image


def event_time(host: HostState, boot_ns: int) -> str:
    """UtcTime of a kernel timestamp (CLOCK_BOOTTIME ns)."""
    return utc_time(boot_ns + host.boot_epoch_ns)
