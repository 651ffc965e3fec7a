"""Sysmon event 3 NetworkConnect (records from bpf/net.bpf.c).

Rendering as upstream: `tcp`/`udp`, `true`/`false`, IPv4 dotted, IPv6 as 8 uncompressed
lower-case hex groups (`0:0:0:0:0:0:0:1`), both IsIpv6 fields from the socket family, host
and port names always `-` (upstream never resolves them on Linux).
"""

from __future__ import annotations

import functools

from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index

from .actor import actor, event_time
from .registry import EventData, Options, Produces, event_data

TIME, PID, UID, FAMILY, PROTO, INITIATED, SPORT, DPORT, SHI, SLO, DHI, DLO = (
    field_index(records.NET_CONNECT, n)
    for n in ("time_ns", "pid", "uid", "family", "protocol", "initiated", "sport", "dport")
    + ("saddr_hi", "saddr_lo", "daddr_hi", "daddr_lo")
)
AF_INET6 = 10
# host and port names: never resolved (as upstream on Linux)
NetworkConnect = event_data(
    3, SourceHostname="-", SourcePortName="-", DestinationHostname="-", DestinationPortName="-"
)


@functools.lru_cache(maxsize=4096)
def ip_text(family: int, hi: int, lo: int) -> str:
    """Address as upstream's IPAddressToString prints it (hi/lo hold the raw bytes, little-endian)."""
    if family != AF_INET6:
        b = lo.to_bytes(8, "little")
        return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
    b = hi.to_bytes(8, "little") + lo.to_bytes(8, "little")
    return ":".join(f"{(b[i] << 8) | b[i + 1]:x}" for i in range(0, 16, 2))


def build(host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None) -> EventData:
    guid, image = actor(host, v[PID])
    fam = v[FAMILY]
    v6 = "true" if fam == AF_INET6 else "false"
    return NetworkConnect(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        User=host.user_name(v[UID]),
        Protocol="tcp" if v[PROTO] == 6 else "udp",
        Initiated="true" if v[INITIATED] else "false",
        SourceIsIpv6=v6,
        SourceIp=ip_text(fam, v[SHI], v[SLO]),
        SourcePort=str(v[SPORT]),
        DestinationIsIpv6=v6,
        DestinationIp=ip_text(fam, v[DHI], v[DLO]),
        DestinationPort=str(v[DPORT]),
    )


DECLARATIONS = (Produces(3, records.NET_CONNECT, build),)
