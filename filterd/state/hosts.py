"""Per-collector (origin) state: its host context, process cache and stream position.

A filterd may be fed by many collectors; pids, users and clocks are per host, so every lookup
goes through the origin's HostState. Records of an origin whose context has not arrived yet
are parked (bounded) and replayed when it does.
"""

from __future__ import annotations

from typing import Any

from filterd.guid import logon_guid, machine_id_from

from .process_cache import ProcessCache

MAX_PARKED_BATCHES = 64


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
        self.next_seq: int | None = None
        self.kernel_drops = 0  # as last reported by this origin's batches
        self.parked: list[bytes] = []
        self.image_hashes: dict[tuple[int, int, int], tuple[int, bytes]] = {}  # identity -> (algos, digests)

    def update(self, ctx: dict[str, Any]) -> None:
        self.hostname = str(ctx.get("hostname") or "-")
        self.machine_id = machine_id_from(str(ctx.get("machine_id", "")))
        # The first boot epoch is kept: re-measured values jitter by microseconds and a GUID's
        # seconds must not change between a process's create and terminate events.
        if not self.boot_epoch_ns:
            self.boot_epoch_ns = int(ctx.get("boot_epoch_ns", 0))
        self.users = {int(k): str(v) for k, v in dict(ctx.get("users", {})).items()}
        self.logins = {(str(line), str(user)): int(sec) for line, user, sec in ctx.get("logins", [])}
        self.collector_pid = int(ctx.get("collector_pid", 0))
        self.collector_version = str(ctx.get("collector_version", "-"))
        self.collector_uptime_s = float(ctx.get("uptime_s", 0.0))
        self._logon_guids: dict[tuple[int, int, str], str] = {}
        self.counters = dict(ctx.get("counters", {}))
        self.ready = True

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
