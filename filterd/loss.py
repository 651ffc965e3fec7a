"""In-band loss reports: every drop on the way from the kernel to syslog becomes an event 255.

Why in band: a SIEM reads the log, not filterd's counters, so the log itself must say that and
where events are missing. Each hop reports the exact number of records (or frames, or events)
it lost; counts are summed per (hop, subject) and sent as one summary at most every
`interval_s` seconds (the first drop of a quiet hop at once), so a storm of drops costs a
handful of events, not one per drop, and every drop is in a report within interval_s plus one
tick.

Hops and their descriptions (`subject` is the collector's host name, or the sink's name):
  kernel    the kernel ring buffer of <host> dropped N records (KIND n, ...)
  transit   N records from <host> lost in transit (B batches missing): records are
            counted by their numbers, batches by their sequence numbers, so 0 records and
            some batches means batches of the collector's own records (snapshot, hashes)
  frames    filterd dropped N malformed frames (MalformedFrame n, ...)
  content   filterd dropped N records from <host> whose content it could not use (KIND n, ...)
  unknown   filterd dropped N records of unknown kinds from <host> (kind K: n, ...)
  parked    filterd dropped N records (B batches) from <host> that came before its host context
  sink      the <sink> sink dropped N events (last error: ...)
A slow `sysmonctl tail` client is not a hop: it loses only its own copy and is told so itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_INTERVAL_S = 5.0

KERNEL, TRANSIT, FRAMES, CONTENT, UNKNOWN, PARKED, SINK = (
    "kernel",
    "transit",
    "frames",
    "content",
    "unknown",
    "parked",
    "sink",
)


def _detail(c: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(c.items()) if n)


def _n(count: int, noun: str) -> str:
    return (
        f"{count} {noun}"
        if count == 1
        else f"{count} {noun}es"
        if noun.endswith("ch")
        else f"{count} {noun}s"
    )


def describe(hop: str, subject: str, count: int, detail: Counter[str], extra: int, note: str) -> str:
    """The Description text of one summary (tests compare it whole)."""
    d = _detail(detail)
    paren = f" ({d})" if d else ""
    if hop == KERNEL:
        return f"the kernel ring buffer of {subject} dropped {_n(count, 'record')}{paren}"
    if hop == TRANSIT:
        return f"{_n(count, 'record')} from {subject} lost in transit ({_n(extra, 'batch')} missing)"
    if hop == FRAMES:
        return f"filterd dropped {_n(count, 'malformed frame')}{paren}"
    if hop == CONTENT:
        return f"filterd dropped {_n(count, 'record')} from {subject} whose content it could not use{paren}"
    if hop == UNKNOWN:
        return f"filterd dropped {_n(count, 'record')} of unknown kinds from {subject}{paren}"
    if hop == PARKED:
        return (
            f"filterd dropped {_n(count, 'record')} ({_n(extra, 'batch')}) from {subject} "
            "that came before its host context"
        )
    if hop == SINK:
        why = f" (last error: {note})" if note else ""
        return f"the {subject} sink dropped {_n(count, 'event')}{why}"
    return f"{subject}: {hop} lost {count}{paren}"


@dataclass
class _Pending:
    count: int = 0
    extra: int = 0  # batches, where the hop counts them besides records
    detail: Counter[str] = field(default_factory=Counter)
    note: str = ""
    last_sent: float = -math.inf


class LossReporter:
    """Accumulates drops per (hop, subject key) and emits rate-limited summaries.

    `emit(description)` writes the event; `name(key)` turns a subject key (an origin) into the
    name printed, looked up at emission time so a host whose context arrives late is named."""

    def __init__(
        self,
        emit: Callable[[str], None],
        clock: Callable[[], float],
        interval_s: float = DEFAULT_INTERVAL_S,
        name: Callable[[str], str] = str,
    ) -> None:
        self.emit = emit
        self.clock = clock
        self.interval_s = interval_s
        self.name = name
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.reported: Counter[str] = Counter()  # hop -> units reported so far
        self._due = False

    def add(
        self,
        hop: str,
        key: str,
        count: int,
        detail: dict[str, int] | None = None,
        extra: int = 0,
        note: str = "",
    ) -> None:
        if count <= 0 and not extra:
            return
        p = self.pending.get((hop, key))
        if p is None:
            p = self.pending[(hop, key)] = _Pending()
        p.count += count
        p.extra += extra
        if detail:
            p.detail.update(detail)
        if note:
            p.note = note
        self._due = True

    def flush(self, force: bool = False) -> None:
        """Emit every summary whose hop has been quiet for interval_s (all of them with force)."""
        if not self._due:
            return
        now = self.clock()
        waiting = False
        for (hop, key), p in self.pending.items():
            if not p.count and not p.extra:
                continue
            if not force and now - p.last_sent < self.interval_s:
                waiting = True
                continue
            text = describe(hop, self.name(key), p.count, p.detail, p.extra, p.note)
            self.reported[hop] += p.count
            p.count = p.extra = 0
            p.detail = Counter()
            p.last_sent = now
            self.emit(text)
        self._due = waiting
