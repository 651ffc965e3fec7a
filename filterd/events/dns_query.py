"""Sysmon event 22 DnsQuery from DNS_PACKET records: an answer read by the asking process, or a
query it sent that got no answer in QUERY_TIMEOUT_S.

Sysmon for Linux never implemented this event (its issues #57, #183). The answer carries the
question, so one answer makes one event; a query (outbound) makes none by itself, it waits in
the host's PendingQueries until its answer takes it out, or until Pipeline.tick() expires it
into an event with QueryStatus 1460 (Windows Sysmon's timeout, WSAETIMEDOUT) and QueryResults
`-`. An answer: QueryName from the question, QueryStatus the rcode as Windows Sysmon prints it
(0, or 9000 + rcode: 9003 for NXDOMAIN), QueryResults in Windows Sysmon's format: A as
`::ffff:a.b.c.d;`, AAAA as the address, other types as `type:  N data;`. Parsing is bounded: a
malformed message gives what could be read.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index

from .actor import actor, event_time
from .registry import EventData, Expires, Options, Produces, event_data

TIME, PID, UID, PROTO, OUTBOUND, LENGTH = (
    field_index(records.DNS_PACKET, n) for n in ("time_ns", "pid", "uid", "protocol", "outbound", "length")
)
DnsQuery = event_data(22)
IPPROTO_TCP = 6
QUERY_TIMEOUT_S = 5.0
MAX_PENDING = 4096  # queries waiting per host; the oldest is dropped (and counted) past it
TIMEOUT_STATUS = "1460"
NO_EVENT: EventData = ()  # a query: nothing to log until its answer or its timeout
QR_RESPONSE = 0x8000
MAX_NAME_JUMPS = 16
MAX_NAME_BYTES = 255  # RFC 1035 3.1, wire form
_HEADER = struct.Struct(">HHHHHH")
_RR = struct.Struct(">HHIH")


class DnsError(ValueError):
    pass


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """Domain name at pos (with compression); returns (name, position after it).

    Hostile input is the norm here (any host can send a UDP packet from port 53), so every read
    is bounded: a label must fit the message, a pointer must point before the run of labels it
    ends (so no chain of pointers can loop), at most MAX_NAME_JUMPS pointers are followed and a
    name is at most 255 bytes on the wire. Anything else raises DnsError."""
    size = len(msg)
    labels: list[str] = []
    end = -1
    limit = pos  # a pointer must go below the start of the labels being read
    jumps = wire = 0
    while True:
        if pos >= size:
            raise DnsError("name runs past the message")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= size:
                raise DnsError("truncated pointer")
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            if target >= limit or jumps >= MAX_NAME_JUMPS:
                raise DnsError("compression pointer loops or points forward")
            if end < 0:
                end = pos + 2
            jumps += 1
            pos = limit = target
            continue
        if n & 0xC0:
            raise DnsError("extended label type")
        wire += n + 1
        if wire > MAX_NAME_BYTES or pos + 1 + n > size:
            raise DnsError("label too long or runs past the message")
        labels.append(msg[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    return ".".join(labels), (end if end >= 0 else pos)


def _rdata_text(msg: bytes, rtype: int, pos: int, rdlen: int) -> str:
    rdata = msg[pos : pos + rdlen]
    if rtype == 1 and rdlen == 4:
        return f"::ffff:{rdata[0]}.{rdata[1]}.{rdata[2]}.{rdata[3]};"
    if rtype == 28 and rdlen == 16:
        return f"{ipaddress.IPv6Address(rdata)};"
    if rtype in (5, 2, 12):  # CNAME, NS, PTR: a name, which must lie inside the RDATA
        try:
            name = read_name(msg[: pos + rdlen], pos)[0]
        except DnsError:
            return f"type:  {rtype};"
        return f"type:  {rtype} {name};"
    return f"type:  {rtype};"


def parse_answer(msg: bytes) -> tuple[str, int, str]:
    """(query name, rcode, results text) of a DNS response.

    Counts are not trusted: parsing stops at the first record that does not fit (a truncated
    record, or more records announced than sent) and returns what was read before it. Without
    a readable first question there is no query name, and DnsError is raised."""
    size = len(msg)
    if size < 12:
        raise DnsError("shorter than a header")
    _, flags, qd, an, _, _ = _HEADER.unpack_from(msg)
    rcode = flags & 0xF
    if qd == 0:
        raise DnsError("no question")
    qname, pos = read_name(msg, 12)
    pos += 4
    results: list[str] = []
    try:
        for _ in range(qd - 1):  # further questions (never sent in practice): skipped
            pos = read_name(msg, pos)[1] + 4
        for _ in range(an):
            pos = read_name(msg, pos)[1]
            if pos + 10 > size:
                break
            rtype, _, _, rdlen = _RR.unpack_from(msg, pos)
            pos += 10
            if pos + rdlen > size:
                break  # RDATA cut short
            results.append(_rdata_text(msg, rtype, pos, rdlen))
            pos += rdlen
    except DnsError:
        pass  # a broken record ends the answer: keep what came before it
    return qname, rcode, "".join(results)


def query_status(rcode: int) -> str:
    return "0" if rcode == 0 else str(9000 + rcode)


class Waiting(NamedTuple):
    deadline: float | None  # None: queued before the table saw a clock (set at the next expire)
    event: EventData  # what is logged if no answer comes


class PendingQueries:
    """One host's queries waiting for their answer, by (pid, DNS id, lower-cased name).

    Why no clock of its own: queries arrive in builders, which have none; the deadline is taken
    from the time of the last expire() (the main loop calls it every poll, so it is at most one
    poll old). Deadlines therefore grow in insertion order and expiry stops at the first entry
    still in time. Bounded: past `limit` the oldest is dropped and counted in `evicted`."""

    def __init__(self, limit: int = MAX_PENDING, timeout_s: float = QUERY_TIMEOUT_S) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.entries: dict[tuple[int, int, str], Waiting] = {}
        self.now: float | None = None
        self.evicted = 0

    def add(self, key: tuple[int, int, str], event: EventData) -> None:
        entries = self.entries
        if entries.pop(key, None) is None and len(entries) >= self.limit:
            del entries[next(iter(entries))]
            self.evicted += 1
        entries[key] = Waiting(None if self.now is None else self.now + self.timeout_s, event)

    def answer(self, key: tuple[int, int, str]) -> bool:
        return self.entries.pop(key, None) is not None

    def expire(self, now: float) -> list[EventData]:
        """The events of the queries whose time ran out (removed)."""
        self.now = now
        done: list[tuple[int, int, str]] = []
        for key, w in self.entries.items():
            if w.deadline is None:
                self.entries[key] = w._replace(deadline=now + self.timeout_s)
            elif w.deadline <= now:
                done.append(key)
            else:
                break
        return [self.entries.pop(k).event for k in done]


def pending(host: HostState) -> PendingQueries:
    table = host.pending.get(22)
    if table is None:
        table = host.pending[22] = PendingQueries()
    return table


def expire(host: HostState, now: float) -> tuple[list[EventData], int]:
    """Pipeline.tick(): the timed-out queries' events, and how many were evicted since the last call."""
    table = host.pending.get(22)
    if table is None:
        return [], 0
    evicted, table.evicted = table.evicted, 0
    return table.expire(now), evicted


def _query_key(v: tuple, msg: bytes, qname: str) -> tuple[int, int, str]:
    return (v[PID], int.from_bytes(msg[:2], "big"), qname.lower())


def build(
    host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None
) -> EventData | None:
    msg = strings[0]
    if v[PROTO] == IPPROTO_TCP and len(msg) >= 2 and int.from_bytes(msg[:2], "big") == v[LENGTH] - 2:
        msg = msg[2:]  # read together with TCP's 2-byte length prefix
    try:
        qname, rcode, results = parse_answer(msg)
    except (DnsError, struct.error):
        return None
    if not qname:
        return None
    response = int.from_bytes(msg[2:4], "big") & QR_RESPONSE
    if v[OUTBOUND]:
        if response:
            return None  # a process answering queries: not what event 22 reports
    else:
        table = host.pending.get(22)
        if table is not None:
            table.answer(_query_key(v, msg, qname))
    guid, image = actor(host, v[PID])
    values = DnsQuery(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        QueryName=qname,
        QueryStatus=TIMEOUT_STATUS if v[OUTBOUND] else query_status(rcode),
        QueryResults="-" if v[OUTBOUND] else results,
        Image=image,
        User=host.user_name(v[UID]),
    )
    if v[OUTBOUND]:
        pending(host).add(_query_key(v, msg, qname), values)
        return NO_EVENT
    return values


DECLARATIONS = (Produces(22, records.DNS_PACKET, build), Expires(22, expire))
