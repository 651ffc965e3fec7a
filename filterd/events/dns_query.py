"""Sysmon event 22 DnsQuery from a DNS_PACKET record: an answer read by the asking process.

Sysmon for Linux never implemented this event (its issues #57, #183). The answer carries the
question, so one answer makes one event: QueryName from the question, QueryStatus the rcode as
Windows Sysmon prints it (0, or 9000 + rcode: 9003 for NXDOMAIN), QueryResults in Windows
Sysmon's format: A as `::ffff:a.b.c.d;`, AAAA as the address, other types as
`type:  N data;`. Parsing is bounded: a malformed message gives what could be read.
"""

from __future__ import annotations

import ipaddress
import struct

from filterd.state.hosts import HostState
from shared import records

from .actor import actor, event_time

_F = {f.name: i for i, f in enumerate(records.DNS_PACKET.all_fields)}
TIME, PID, UID, PROTO, LENGTH = _F["time_ns"], _F["pid"], _F["uid"], _F["protocol"], _F["length"]
IPPROTO_TCP = 6
MAX_NAME_JUMPS = 16


class DnsError(ValueError):
    pass


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """Domain name at pos (with compression); returns (name, position after it)."""
    labels: list[str] = []
    end = -1
    for _ in range(MAX_NAME_JUMPS * 8):
        if pos >= len(msg):
            raise DnsError("name runs past the message")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DnsError("truncated pointer")
            if end < 0:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        labels.append(msg[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    else:
        raise DnsError("name too long or looping")
    return ".".join(labels), (end if end >= 0 else pos)


def parse_answer(msg: bytes) -> tuple[str, int, str]:
    """(query name, rcode, results text) of a DNS response."""
    if len(msg) < 12:
        raise DnsError("shorter than a header")
    _, flags, qd, an, _, _ = struct.unpack_from(">HHHHHH", msg)
    rcode = flags & 0xF
    pos = 12
    qname = ""
    for i in range(qd):
        name, pos = read_name(msg, pos)
        pos += 4
        if i == 0:
            qname = name
    results = []
    for _ in range(an):
        _, pos = read_name(msg, pos)
        if pos + 10 > len(msg):
            break
        rtype, _, _, rdlen = struct.unpack_from(">HHIH", msg, pos)
        pos += 10
        rdata = msg[pos : pos + rdlen]
        if rtype == 1 and rdlen == 4:
            results.append(f"::ffff:{rdata[0]}.{rdata[1]}.{rdata[2]}.{rdata[3]};")
        elif rtype == 28 and rdlen == 16:
            results.append(f"{ipaddress.IPv6Address(rdata)};")
        elif rtype in (5, 2, 12):  # CNAME, NS, PTR: a name
            results.append(f"type:  {rtype} {read_name(msg, pos)[0]};")
        else:
            results.append(f"type:  {rtype};")
        pos += rdlen
    return qname, rcode, "".join(results)


def query_status(rcode: int) -> str:
    return "0" if rcode == 0 else str(9000 + rcode)


def build(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...] | None:
    msg = strings[0]
    if v[PROTO] == IPPROTO_TCP and len(msg) >= 2 and int.from_bytes(msg[:2], "big") == v[LENGTH] - 2:
        msg = msg[2:]  # read together with TCP's 2-byte length prefix
    try:
        qname, rcode, results = parse_answer(msg)
    except (DnsError, struct.error):
        return None
    if not qname:
        return None
    guid, image = actor(host, v[PID])
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        qname,
        query_status(rcode),
        results,
        image,
        host.user_name(v[UID]),
    )
