"""Is each collector alive? A hung or dead collector must not look like a quiet host.

Every collector sends its host context each `heartbeat_s` seconds (default 2) with `progress`,
a counter its main loop increases every iteration. An origin is silent when no heartbeat
with new progress has come for more than max(3 * heartbeat_s, 5 s): either no heartbeat at all
(dead, stopped, cut off) or heartbeats whose progress stands still (the loop is stuck while
something else still sends). A heartbeat whose progress has not moved for a whole heartbeat
period says so at once. filterd then writes event 255 ID "CollectorSilent", and ID
"CollectorResumed" with the length of the silence when progress shows again. Heartbeats
without `progress` (older collectors) count as progress.

A batch of records from an origin counts as progress too: only the collector's loop sends them,
and behind a backlog (filterd slower than the collector) heartbeats queue up behind the data.
A stuck collector sends no more batches, so once filterd's queue is drained the silence shows.

Origins are watched from their first heartbeat on; the clock is injected (tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_HEARTBEAT_S = 2.0
MIN_SILENCE_S = 5.0
SILENT, RESUMED = "CollectorSilent", "CollectorResumed"


def _number(v: Any, lo: float, hi: float) -> float | None:
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
        return None
    return float(v)


@dataclass
class _Beat:
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    progress: int | None = None
    alive_at: float = 0.0  # last heartbeat that showed progress
    silent: bool = False


class CollectorWatch:
    def __init__(
        self, report: Callable[[str, str], None], clock: Callable[[], float], name: Callable[[str], str] = str
    ) -> None:
        self.report = report
        self.clock = clock
        self.name = name
        self.beats: dict[str, _Beat] = {}

    def limit(self, b: _Beat) -> float:
        return max(3 * b.heartbeat_s, MIN_SILENCE_S)

    def heartbeat(self, origin: str, ctx: dict[str, Any]) -> None:
        now = self.clock()
        b = self.beats.get(origin)
        if b is None:
            b = self.beats[origin] = _Beat(alive_at=now)
        hb = _number(ctx.get("heartbeat_s"), 0.01, 86400.0)
        if hb is not None:
            b.heartbeat_s = hb
        p = ctx.get("progress")
        progress = p if type(p) is int else None
        moved = progress is None or progress != b.progress
        if moved:
            self._alive(origin, b, now)
            b.progress = progress
        elif not b.silent and now - b.alive_at >= b.heartbeat_s:
            b.silent = True
            self.report(
                SILENT,
                f"the collector of {self.name(origin)} made no progress for {now - b.alive_at:.1f} s "
                f"(its heartbeats arrive, its loop counter stays at {progress})",
            )

    def activity(self, origin: str) -> None:
        """A batch arrived from `origin`: its collector's loop ran recently."""
        b = self.beats.get(origin)
        if b is None:
            return
        self._alive(origin, b, self.clock())

    def _alive(self, origin: str, b: _Beat, now: float) -> None:
        if b.silent:
            b.silent = False
            self.report(
                RESUMED,
                f"the collector of {self.name(origin)} is back after {now - b.alive_at:.1f} s of silence",
            )
        b.alive_at = now

    def tick(self) -> None:
        now = self.clock()
        for origin, b in self.beats.items():
            if not b.silent and now - b.alive_at > self.limit(b):
                b.silent = True
                self.report(
                    SILENT,
                    f"no heartbeat from the collector of {self.name(origin)} for {now - b.alive_at:.1f} s",
                )
