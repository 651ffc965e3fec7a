"""Per-collector (origin) state: its host context and process cache.

A filterd may be fed by many collectors; pids, users and clocks are per host, so every lookup
goes through the origin's HostState. Batches of an origin whose context has not arrived yet
are parked (bounded) and replayed when it does. The context comes from the wire, so update()
takes each field only when it has a usable type and range, and never raises: one bad field
must not cost the whole context (its stream position lives in filterd/state/streams.py).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from filterd.guid import logon_guid, machine_id_from

from .process_cache import ProcessCache

MAX_PARKED_BATCHES = 64
MAX_PARKED_BYTES = 64 << 20  # all origins together
MAX_USERS = 1 << 16
MAX_LOGINS = 4096
MAX_COUNTER_DEPTH = 4
_U64 = 1 << 64


class Parked(NamedTuple):
    """A batch waiting for its host context; or, with `dropped`, batches that did not fit (their
    blobs gone, their place in the stream kept: seq to end_seq, records first_record to end_record)."""

    epoch: int
    seq: int
    first_record: int
    kernel_drops: int
    blob: bytes
    end_seq: int = 0
    end_record: int = 0
    dropped: int = 0  # kernel records in the batches dropped
    placeholder: bool = False


def _int(v: Any, default: int, lo: int = 0, hi: int = _U64) -> int:
    return v if type(v) is int and lo <= v < hi else default


def _text(v: Any, default: str) -> str:
    return v if isinstance(v, str) and v else default


def _plain(v: Any, depth: int) -> Any:
    """A JSON-safe copy of a wire value (the counters end up in the stats file and the control
    replies, whose json.dumps() must not meet bytes or NaN): None where it is not."""
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        return v if -(1 << 63) <= v < _U64 else None
    if t is float:
        return v if math.isfinite(v) else None
    if depth <= 0:
        return None
    if t is dict:
        return {k: _plain(x, depth - 1) for k, x in v.items() if type(k) in (str, int)}
    if t is list:
        return [_plain(x, depth - 1) for x in v]
    return None


class HostState:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.ready = False
        self.hostname = "-"
        self.machine_id = 0
        self.boot_epoch_ns = 0
        self.users: dict[int, str] = {}
        self.collector_version = "-"
        self.collector_uptime_s = 0.0
        self.logins: dict[tuple[str, str], int] = {}
        self._logon_guids: dict[tuple[int, int, str], str] = {}
        self.collector_pid = 0
        self.counters: dict[str, Any] = {}
        self.cache = ProcessCache()
        self.parked: list[Parked] = []
        self.parked_bytes = 0
        self.image_hashes: dict[tuple[int, int, int], tuple[int, bytes]] = {}  # identity -> (algos, digests)
        self.marker: int | None = None  # token of the last drain marker handled (filterd/events/marker.py)
        self.pending: dict[int, Any] = {}  # event id -> what its module keeps waiting (dns_query.py)
        self.bad_fields = 0  # context fields ignored for their type or range

    def update(self, ctx: dict[str, Any]) -> None:
        self.hostname = _text(ctx.get("hostname"), "-")
        mid = ctx.get("machine_id", "")
        self.machine_id = machine_id_from(mid if isinstance(mid, str) else "")
        # The first boot epoch is kept: re-measured values jitter by microseconds and a GUID's
        # seconds must not change between a process's create and terminate events. Kept within
        # +-2**62 ns (year 2116) so every time stays printable.
        if not self.boot_epoch_ns:
            self.boot_epoch_ns = self._field(ctx, "boot_epoch_ns", 0, -(1 << 62), 1 << 62)
        users = ctx.get("users", {})
        if isinstance(users, dict) and len(users) <= MAX_USERS:
            self.users = {}
            for k, v in users.items():
                uid = (
                    k
                    if type(k) is int
                    else int(k)
                    if isinstance(k, str) and k.isdecimal() and len(k) < 12
                    else -1
                )
                if 0 <= uid < 1 << 32 and isinstance(v, str):
                    self.users[uid] = v
                else:
                    self.bad_fields += 1
        elif users:
            self.bad_fields += 1
        logins = ctx.get("logins", [])
        if isinstance(logins, list) and len(logins) <= MAX_LOGINS:
            self.logins = {}
            for e in logins:
                if isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[1], str):
                    self.logins[(e[0], e[1])] = _int(e[2], 0, -(1 << 63), 1 << 63)
                else:
                    self.bad_fields += 1
        elif logins:
            self.bad_fields += 1
        self.collector_pid = self._field(ctx, "collector_pid", 0, 0, 1 << 32)
        self.collector_version = _text(ctx.get("collector_version"), "-")
        up = ctx.get("uptime_s", 0.0)
        self.collector_uptime_s = float(up) if type(up) in (int, float) and math.isfinite(up) else 0.0
        self._logon_guids = {}
        counters = _plain(ctx.get("counters", {}), MAX_COUNTER_DEPTH)
        if isinstance(counters, dict):
            self.counters = {k: v for k, v in counters.items() if isinstance(k, str)}  # `**counters` works
        else:
            self.counters = {}
            self.bad_fields += 1
        self.ready = True

    def _field(self, ctx: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
        v = ctx.get(key, default)
        out = _int(v, default, lo, hi)
        if out is not v:
            self.bad_fields += 1
        return out

    def user_name(self, uid: int) -> str:
        return self.users.get(uid, "-")

    def logon_guid(self, tty: int, uid: int, user: str) -> str:
        """LogonGuid: login time of `user` on pts/<tty> from utmp (0 if none), memoised."""
        key = (tty, uid, user)
        g = self._logon_guids.get(key)
        if g is None:
            secs = self.logins.get((f"pts/{tty}", user), 0)
            g = self._logon_guids[key] = logon_guid(self.machine_id, secs, tty, uid)
        return g
