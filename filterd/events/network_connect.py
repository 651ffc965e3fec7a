"""Sysmon event 3 NetworkConnect (records from bpf/net.bpf.c).

Rendering as upstream: `tcp`/`udp`, `true`/`false`, IPv4 dotted, IPv6 as 8 uncompressed
lower-case hex groups (`0:0:0:0:0:0:0:1`), both IsIpv6 fields from the socket family, host
and port names always `-` (upstream never resolves them on Linux).
"""

from __future__ import annotations

import functools

from filterd.state.hosts import HostState
from shared import records

from .actor import actor, event_time

_F = {f.name: i for i, f in enumerate(records.NET_CONNECT.all_fields)}
TIME, PID, UID = _F["time_ns"], _F["pid"], _F["uid"]
FAMILY, PROTO, INITIATED = _F["family"], _F["protocol"], _F["initiated"]
SPORT, DPORT = _F["sport"], _F["dport"]
SHI, SLO, DHI, DLO = _F["saddr_hi"], _F["saddr_lo"], _F["daddr_hi"], _F["daddr_lo"]
AF_INET6 = 10


@functools.lru_cache(maxsize=4096)
def ip_text(family: int, hi: int, lo: int) -> str:
    """Address as upstream's IPAddressToString prints it (hi/lo hold the raw bytes, little-endian)."""
    if family != AF_INET6:
        b = lo.to_bytes(8, "little")
        return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
    b = hi.to_bytes(8, "little") + lo.to_bytes(8, "little")
    return ":".join(f"{(b[i] << 8) | b[i + 1]:x}" for i in range(0, 16, 2))


def build(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
    guid, image = actor(host, v[PID])
    fam = v[FAMILY]
    v6 = "true" if fam == AF_INET6 else "false"
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        image,
        host.user_name(v[UID]),
        "tcp" if v[PROTO] == 6 else "udp",
        "true" if v[INITIATED] else "false",
        v6,
        ip_text(fam, v[SHI], v[SLO]),
        "-",
        str(v[SPORT]),
        "-",
        v6,
        ip_text(fam, v[DHI], v[DLO]),
        "-",
        str(v[DPORT]),
        "-",
    )
