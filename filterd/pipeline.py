"""Batch in, XML out: decode -> correlate -> build the Sysmon event -> rules -> trim -> render -> sinks.

No socket code here (filterd/receiver.py feeds it), so tests and the replay tool drive it with
plain bytes. Every hop counts (stats) and every loss is also written in band as event 255
(filterd/loss.py): kernel ring drops, records missing from a stream, malformed frames, records
whose content cannot be used, unknown kinds, parked batches that overflowed, sink drops.

Nothing in a record can stop filterd: each record is handled under a guard, and one that raises
is counted (stats["bad_record_<KIND>"]), reported and dropped, never its batch or the process.
Streams (filterd/state/streams.py) tell gaps and resent duplicates apart by record number;
the position written is persisted after every batch so a restart resumes where it stood.
`tick()` runs the timers (loss summaries, sink drop counters, collector liveness) and is called
from the main loop (Receiver.poll).
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filterd.config.model import Config
from filterd.events.registry import EventData, Options, event_data, registry
from filterd.liveness import CollectorWatch
from filterd.loss import (
    CONTENT,
    DEFAULT_INTERVAL_S,
    FRAMES,
    KERNEL,
    PARKED,
    SINK,
    TRANSIT,
    UNKNOWN,
    LossReporter,
)
from filterd.render.timefmt import utc_time
from filterd.render.xml import SystemHeader, render_event
from filterd.rules import rule_set
from filterd.schema import BY_ID
from filterd.sink import Sink, ValueSink
from filterd.state.hosts import MAX_PARKED_BATCHES, MAX_PARKED_BYTES, HostState, Parked
from filterd.state.record_id import RecordIdCounter
from filterd.state.streams import Stream, StreamTable
from shared import records
from shared.decode import decode, split
from shared.errors import FrameError, UnknownKind

_SNAPSHOT = records.REC_F_SNAPSHOT
_MAX_BPF_KIND = records.MAX_BPF_KIND  # kernel kinds are below it: the numbered ones (state/streams.py)
_KIND_NAMES = {k.kind: k.name for k in records.KINDS}
SELF = "filterd"  # subject of losses not tied to one collector
MAX_ORIGINS = 1024  # collectors one filterd serves

# Which record kinds feed which events: declared by each filterd/events module (registry.py).
# Collected at import, before filterd's sandbox closes the file system.
REGISTRY = registry()
ErrorReport = event_data(255)


def kind_name(kind: int) -> str:
    return _KIND_NAMES.get(kind) or f"kind {kind}"


def count_numbered(blob: bytes) -> int:
    """Kernel records (numbered in the stream) of a batch, up to the first bad length."""
    n = 0
    try:
        for rec in split(blob):
            if 0 < rec[0] < _MAX_BPF_KIND and not rec[1] and not rec[2] & _SNAPSHOT:
                n += 1
    except FrameError:
        pass
    return n


class Pipeline:
    def __init__(
        self,
        config: Config,
        sinks: Sequence[Sink | ValueSink],
        record_ids: RecordIdCounter,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        loss_interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.sinks = sinks
        self.record_ids = record_ids
        self.hosts: dict[str, HostState] = {}
        self.headers: dict[str, SystemHeader] = {}
        self.stats: Counter[str] = Counter()
        self.rule_hits: Counter[str] = Counter()  # RuleName -> events it included
        self._decided: dict[int, list[int]] = {}  # event id -> [excluded, included]
        self._n_included = self._n_excluded = 0  # of the batch, added to stats on flush
        self.frame_errors: Counter[str] = Counter()  # unusable frames by reason (filterd/metrics.py)
        self._out: list[str] = []  # rendered events of the batch being processed
        # the same events as values, for sinks that render their own format (send_events: JSON)
        self._events: list[tuple[Any, ...]] = []
        self.parked_bytes = 0  # batches of all origins waiting for their host context
        self.local_header = SystemHeader(socket.gethostname(), os.getpid(), os.getpid(), 0)
        self.clock = clock
        self.streams = StreamTable(Path(state_dir) if state_dir is not None else None)
        self.loss = LossReporter(self.report_loss, clock, loss_interval_s, name=self.host_name)
        self.watch = CollectorWatch(self.report, clock, name=self.host_name)
        # Sinks given here are the log; their drops are losses. A tail client added later is not.
        self.loss_sinks = list(sinks)
        self._sink_dropped = [self._dropped(s) for s in self.loss_sinks]
        self.set_config(config)

    def set_config(self, config: Config) -> None:
        self.config = config
        self.rules = rules = rule_set(config)
        self.enabled = rules.enabled
        self.options = Options(hash_algorithms=config.hash_algorithms)
        # kind -> (state update or None, ((event id, builder, matcher), ...) of the events this
        # config can log); every kind some module consumes is here, logged or not
        self.dispatch = REGISTRY.dispatch(self.enabled, rules.matcher)

    @property
    def sinks(self) -> tuple[Sink | ValueSink, ...]:
        return self._sinks

    @sinks.setter
    def sinks(self, sinks: Sequence[Sink | ValueSink]) -> None:
        """Which call each sink takes is settled here, once, not per batch (isinstance against
        a Protocol costs microseconds)."""
        self._sinks = tuple(sinks)
        self._senders = tuple(
            (s.send_events, True) if isinstance(s, ValueSink) else (s.send_many, False) for s in self._sinks
        )
        self._by_values = any(by_values for _, by_values in self._senders)

    @property
    def decisions(self) -> Counter[tuple[int, bool]]:
        """(event id, included) -> events the rules decided."""
        return Counter(
            {(eid, bool(i)): n for eid, counts in self._decided.items() for i, n in enumerate(counts) if n}
        )

    # -- output ----------------------------------------------------------------------------
    def write(self, event_id: int, values: EventData, header: SystemHeader) -> None:
        etype, record_id, now_ns = BY_ID[event_id], self.record_ids.next(), time.time_ns()
        self._out.append(render_event(etype, values, header, record_id, now_ns))
        if self._by_values:
            self._events.append((etype, values, header, record_id, now_ns))

    def flush(self) -> None:
        """Hand the events of a batch to the sinks together (syslog sends them with sendmmsg);
        the batch's counters are added here, once."""
        out, self._out = self._out, []
        events, self._events = self._events, []
        if self._n_included or self._n_excluded:
            self.stats["included"] += self._n_included
            self.stats["excluded"] += self._n_excluded
            self._n_included = self._n_excluded = 0
        if not out:
            return
        self.stats["written"] += len(out)
        for send, by_values in self._senders:
            send(events if by_values else out)

    def filtered(self, event_id: int, matcher: Any, values: EventData, header: SystemHeader) -> None:
        include, rule_name = matcher.decide(values)
        counts = self._decided.get(event_id)
        if counts is None:
            counts = self._decided[event_id] = [0, 0]
        counts[include] += 1
        if not include:
            self._n_excluded += 1
            return
        self._n_included += 1
        if rule_name != "-":
            self.rule_hits[rule_name] += 1
        values = (rule_name, *values[1:])
        if self.config.field_sizes:
            values = self.rules.trim(event_id, values)
        self.write(event_id, values, header)

    def report_loss(self, what: str) -> None:
        """Event 255 (Sysmon's error report): the log itself says that and where events were lost."""
        self.report("EventsLost", what)

    def report(self, ident: str, what: str) -> None:
        self.stats["loss_reports" if ident == "EventsLost" else "health_reports"] += 1
        self.service_event(255, ErrorReport(UtcTime=utc_time(time.time_ns()), ID=ident, Description=what))

    def service_event(self, event_id: int, values: EventData) -> None:
        """Events 4, 16 and 255: never filtered (upstream bypasses the rules for them)."""
        self.write(event_id, values, self.local_header)
        self.flush()

    def host_name(self, key: str) -> str:
        """How a loss report names an origin: its host name once known, else the origin."""
        h = self.hosts.get(key)
        if h is None or h.hostname == "-":
            return key
        return h.hostname

    # -- timers ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Called from the main loop every poll: sink drops, collector liveness, loss summaries."""
        for i, s in enumerate(self.loss_sinks):
            now = self._dropped(s)
            if now > self._sink_dropped[i]:
                err = getattr(s, "last_error", None)
                name = type(s).__name__.removesuffix("Sink").lower() or "?"
                self.stats["sink_dropped"] += now - self._sink_dropped[i]
                self.loss.add(SINK, name, now - self._sink_dropped[i], note=str(err) if err else "")
            self._sink_dropped[i] = now
        self.watch.tick()
        self.expire()
        self.loss.flush()

    def expire(self) -> None:
        """Events of state left waiting whose time ran out (registry.Expires: unanswered DNS queries)."""
        now = self.clock()
        for h in self.hosts.values():
            header = self.headers.get(h.origin)
            for x in REGISTRY.expires:
                due, evicted = x.expire(h, now)
                if evicted:
                    self.stats[f"pending_evicted_{x.event_id}"] += evicted
                if due and header is not None and x.event_id in self.enabled:
                    matcher = self.rules.matcher(x.event_id)
                    for values in due:
                        self.filtered(x.event_id, matcher, values, header)
        self.flush()

    @staticmethod
    def _dropped(sink: Sink | ValueSink) -> int:
        return sink.dropped

    # -- input -----------------------------------------------------------------------------
    def host(self, origin: str) -> HostState | None:
        """The origin's state; None past MAX_ORIGINS (a flood of made-up origins must not take
        the memory: what such an origin sends is dropped and reported as a malformed frame)."""
        h = self.hosts.get(origin)
        if h is None:
            if len(self.hosts) >= MAX_ORIGINS:
                self.stats["origins_refused"] += 1
                self.on_frame_error("too many origins")
                return None
            h = self.hosts[origin] = HostState(origin)
        return h

    def on_host(self, origin: str, ctx: dict[str, Any]) -> None:
        h = self.host(origin)
        if h is None:
            return
        h.update(ctx)
        header = SystemHeader(h.hostname, h.collector_pid, h.collector_pid, 0)
        if self.headers.get(origin) != header:
            self.headers[origin] = header
        self._kernel_per_kind(origin, h.counters.get("kernel_dropped"))
        self.watch.heartbeat(origin, ctx)
        parked, h.parked = h.parked, []
        self.parked_bytes -= h.parked_bytes
        h.parked_bytes = 0
        for p in parked:
            if not p.placeholder:
                self._batch(h, p.epoch, p.seq, p.first_record, p.kernel_drops, p.blob)
            else:
                self._dropped_batches(h, p)
        self.loss.flush()

    def on_batch(
        self, origin: str, seq: int, blob: bytes, kernel_drops: int = 0, epoch: int = 0, first_record: int = 0
    ) -> None:
        h = self.host(origin)
        if h is None:
            return
        self.stats["batches"] += 1
        self.watch.activity(origin)
        if h.ready:
            self._batch(h, epoch, seq, first_record, kernel_drops, blob)
        elif len(h.parked) < MAX_PARKED_BATCHES and self.parked_bytes + len(blob) <= MAX_PARKED_BYTES:
            h.parked.append(Parked(epoch, seq, first_record, kernel_drops, blob))
            h.parked_bytes += len(blob)
            self.parked_bytes += len(blob)
        else:
            self._park_overflow(h, Parked(epoch, seq, first_record, kernel_drops, blob))
        self.loss.flush()

    def _park_overflow(self, h: HostState, p: Parked) -> None:
        """No room: the batch is dropped and reported now, its place in the stream kept (merged
        with the drops just before it), so the records it held are not reported again as a gap."""
        lost = count_numbered(p.blob)
        self.stats["parked_dropped"] += 1
        self.stats["parked_dropped_records"] += lost
        self.loss.add(PARKED, h.origin, lost, extra=1)
        last = h.parked[-1] if h.parked else None
        if last is not None and last.placeholder and last.epoch == p.epoch:
            h.parked[-1] = last._replace(
                end_seq=p.seq,
                end_record=max(last.end_record, p.first_record + lost),
                dropped=last.dropped + lost,
            )
        else:
            h.parked.append(
                p._replace(
                    blob=b"", end_seq=p.seq, end_record=p.first_record + lost, dropped=lost, placeholder=True
                )
            )

    # -- streams and drops -----------------------------------------------------------------
    def _kernel_per_kind(self, origin: str, raw: Any) -> None:
        """Kernel ring drops per kind from the host context (counters since the BPF objects were
        made; a counter that went down was reset, so its whole value is new)."""
        if not isinstance(raw, dict):
            return
        s = self.streams.get(origin)
        cur: dict[int, int] = {}
        for k, v in raw.items():
            kind = (
                k if type(k) is int else int(k) if isinstance(k, str) and k.isdecimal() and len(k) < 4 else -1
            )
            if 0 <= kind < records.MAX_BPF_KIND and type(v) is int and 0 <= v < 1 << 64:
                cur[kind] = v
        if not cur:
            return
        detail: Counter[str] = Counter()
        for kind, v in cur.items():
            old = s.kind_drops.get(kind, 0)
            d = v - old if v >= old else v
            if d:
                detail[kind_name(kind)] += d
        s.kind_drops = cur
        total = sum(detail.values())
        if total:
            self.stats["kernel_dropped"] += total
            self.loss.add(KERNEL, origin, total, detail)
        self.streams.save(s)

    def _kernel_total(self, s: Stream, total: int) -> None:
        """The envelope's total: reported only for collectors whose context has no per-kind counters."""
        if total == s.env_drops:
            return
        d = total - s.env_drops if total > s.env_drops else total
        s.env_drops = total
        if d and not s.kind_drops:
            self.stats["kernel_dropped"] += d
            self.loss.add(KERNEL, s.origin, d)

    def _batch(self, h: HostState, epoch: int, seq: int, first: int, kernel_drops: int, blob: bytes) -> None:
        s = self.streams.get(h.origin)
        self._kernel_total(s, kernel_drops)
        v = s.arrive(epoch, seq, first)
        if v.new_stream:
            self.stats["new_streams"] += 1
        if v.lost_batches:
            self.stats["gap_batches"] += v.lost_batches
        if v.lost or v.lost_batches:
            self.stats["gap_records"] += v.lost
            self.loss.add(TRANSIT, h.origin, v.lost, extra=v.lost_batches)
        n = self.records(h, blob, v.skip) if blob else 0
        if v.skip:
            if n > 0 and v.skip >= n:
                self.stats["duplicate_batches"] += 1
            self.stats["duplicate_records"] += min(v.skip, n)
        s.advance(seq, first + n)
        s.written = s.next_record
        self.streams.save(s)

    def _dropped_batches(self, h: HostState, p: Parked) -> None:
        """Batches dropped while parked (already reported) take their place in the stream."""
        s = self.streams.get(h.origin)
        v = s.arrive(p.epoch, p.seq, p.first_record)
        missing = v.lost + max(0, p.end_record - p.first_record - p.dropped)
        if missing or v.lost_batches:
            self.stats["gap_batches"] += v.lost_batches
            self.stats["gap_records"] += missing
            self.loss.add(TRANSIT, h.origin, missing, extra=v.lost_batches)
        s.advance(p.end_seq, p.end_record)
        s.written = s.next_record
        self.streams.save(s)

    # -- records ---------------------------------------------------------------------------
    @property
    def markers(self) -> dict[str, int]:
        """origin -> token of the last drain marker handled (filterd/events/marker.py)."""
        return {o: h.marker for o, h in self.hosts.items() if h.marker is not None}

    def records(self, h: HostState, blob: bytes, skip: int = 0) -> int:
        """Handle a batch's records, the first `skip` kernel records excepted (seen before);
        returns how many kernel (numbered) records it held. The dispatch is inline: it is the
        hot path, and a try block costs nothing until something raises. A snapshot record
        (the collector's view of a process running before it started) updates state only."""
        header = self.headers[h.origin]
        stats = self.stats
        dispatch = self.dispatch
        opts = self.options
        numbered = decoded = 0
        try:
            for rec in split(blob):
                kind = rec[0] | (rec[1] << 8)
                snapshot = rec[2] & _SNAPSHOT
                if 0 < kind < _MAX_BPF_KIND and not snapshot:
                    numbered += 1
                    if numbered <= skip:
                        continue
                try:
                    spec, v, strings = decode(rec)
                    decoded += 1
                    handler = dispatch.get(kind)
                    if handler is None:  # a kind shared.records knows and no event module consumes
                        stats[f"unhandled_{spec.name}"] += 1
                        self.loss.add(UNKNOWN, h.origin, 1, {f"{spec.name}:": 1})
                        continue
                    update, builds = handler
                    state = update(h, v, strings) if update is not None else None
                    if snapshot:
                        continue
                    for eid, build, matcher in builds:
                        values = build(h, v, strings, opts, state)
                        if values is None:
                            stats[f"unparsed_{spec.name}"] += 1
                        elif values:  # empty: kept for later (Expires), nothing to log now
                            self.filtered(eid, matcher, values, header)
                except UnknownKind:
                    stats["UnknownKind"] += 1
                    self.loss.add(UNKNOWN, h.origin, 1, {f"kind {kind}:": 1})
                except Exception:  # noqa: BLE001  anything a record can make a builder raise
                    name = kind_name(kind)
                    stats[f"bad_record_{name}"] += 1
                    self.loss.add(CONTENT, h.origin, 1, {name: 1})
        except FrameError as e:  # a length that does not fit: the rest of the batch is unreadable
            stats[type(e).__name__] += 1
            stats["truncated_batches"] += 1
            self.frame_errors["truncated batch"] += 1
            self.loss.add(FRAMES, SELF, 1, {"truncated batch": 1})
        stats["decoded"] += decoded  # once per batch: a counter update per record costs
        self.flush()
        return numbered

    def on_frame_error(self, error: str) -> None:
        """A frame the receiver could not use (its records, if any, show up as a stream gap)."""
        self.frame_errors[error] += 1
        self.loss.add(FRAMES, SELF, 1, {error: 1})
        self.loss.flush()
