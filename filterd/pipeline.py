"""Batch in, XML out: decode -> correlate -> build the Sysmon event -> rules -> trim -> render -> sinks.

No socket code here (filterd/receiver.py feeds it), so tests and the replay tool drive it with
plain bytes. Every hop counts (stats): batches, sequence gaps, malformed frames, unknown kinds,
records decoded, events included/excluded, events written.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from filterd.config.model import Config
from filterd.events import (
    dns_query,
    ebpf_program,
    file_events,
    network_connect,
    process_access,
    process_create,
    process_terminate,
)
from filterd.render.timefmt import utc_time
from filterd.render.xml import SystemHeader, render_event
from filterd.schema import BY_ID
from filterd.sink import Sink
from filterd.state.hosts import MAX_PARKED_BATCHES, HostState
from filterd.state.process_cache import Process
from filterd.state.record_id import RecordIdCounter
from shared import records
from shared.decode import decode, split
from shared.errors import FrameError

_EXEC, _EXIT, _FORK = records.PROCESS_EXEC.kind, records.PROCESS_EXIT.kind, records.PROCESS_FORK.kind
_HASH, _MARKER = records.IMAGE_HASH.kind, records.MARKER.kind
_FORK_F = {f.name: i for i, f in enumerate(records.PROCESS_FORK.all_fields)}
_HASH_F = {f.name: i for i, f in enumerate(records.IMAGE_HASH.all_fields)}
MAX_IMAGE_HASHES = 8192

# Record kind -> (Sysmon event id, builder(host, values, strings) -> EventData or None).
# Process records are handled by Pipeline methods: they also maintain the process cache.
SIMPLE_EVENTS = {
    records.FILE_CREATE.kind: (11, file_events.file_create),
    records.RAW_ACCESS.kind: (9, file_events.raw_access_read),
    records.FILE_DELETE.kind: (23, file_events.file_delete),
    records.NET_CONNECT.kind: (3, network_connect.build),
    records.PROCESS_ACCESS.kind: (10, process_access.build),
    records.BPF_PROGRAM.kind: (100, ebpf_program.build),
    records.DNS_PACKET.kind: (22, dns_query.build),
}


class Pipeline:
    def __init__(self, config: Config, sinks: Sequence[Sink], record_ids: RecordIdCounter) -> None:
        self.sinks = list(sinks)
        self.record_ids = record_ids
        self.hosts: dict[str, HostState] = {}
        self.headers: dict[str, SystemHeader] = {}
        self.stats: Counter[str] = Counter()
        self.markers: dict[str, int] = {}
        self.rule_hits: Counter[str] = Counter()  # RuleName -> events it included
        self._out: list[str] = []  # rendered events of the batch being processed
        self.local_header = SystemHeader(socket.gethostname(), os.getpid(), os.getpid(), 0)
        self.set_config(config)

    def set_config(self, config: Config) -> None:
        self.config = config
        self.m_create = config.matcher(1)
        self.m_terminate = config.matcher(5)
        self.enabled = config.enabled_event_ids()
        # kind -> (event id, builder, matcher), only for event types this config can log
        self.simple = {
            kind: (eid, build, config.matcher(eid))
            for kind, (eid, build) in SIMPLE_EVENTS.items()
            if eid in self.enabled
        }

    # -- output ----------------------------------------------------------------------------
    def write(self, event_id: int, values: Sequence[str], header: SystemHeader) -> None:
        self._out.append(render_event(BY_ID[event_id], values, header, self.record_ids.next()))
        self.stats["written"] += 1

    def flush(self) -> None:
        """Hand the events of a batch to the sinks together (syslog sends them with sendmmsg)."""
        out, self._out = self._out, []
        if not out:
            return
        for sink in self.sinks:
            many = getattr(sink, "send_many", None)
            if many is not None:
                many(out)
            else:
                for xml in out:
                    sink.send(xml)

    def filtered(self, event_id: int, matcher: Any, values: tuple[str, ...], header: SystemHeader) -> None:
        include, rule_name = matcher.decide(values)
        if not include:
            self.stats["excluded"] += 1
            return
        self.stats["included"] += 1
        if rule_name != "-":
            self.rule_hits[rule_name] += 1
        values = (rule_name, *values[1:])
        if self.config.field_sizes:
            values = self.config.trim(event_id, values)
        self.write(event_id, values, header)

    def report_loss(self, what: str) -> None:
        """Event 255 (Sysmon's error report): the log itself says that and where events were lost."""
        self.stats["loss_reports"] += 1
        self.service_event(255, (utc_time(time.time_ns()), "EventsLost", what))

    def service_event(self, event_id: int, values: tuple[str, ...]) -> None:
        """Events 4, 16 and 255: never filtered (upstream bypasses the rules for them)."""
        self.write(event_id, values, self.local_header)
        self.flush()

    # -- input -----------------------------------------------------------------------------
    def host(self, origin: str) -> HostState:
        h = self.hosts.get(origin)
        if h is None:
            h = self.hosts[origin] = HostState(origin)
        return h

    def on_host(self, origin: str, ctx: dict[str, Any]) -> None:
        h = self.host(origin)
        h.update(ctx)
        header = SystemHeader(h.hostname, h.collector_pid, h.collector_pid, 0)
        if self.headers.get(origin) != header:
            self.headers[origin] = header
        parked, h.parked = h.parked, []
        for blob in parked:
            self.records(h, blob)

    def on_batch(
        self, origin: str, seq: int, blob: bytes, kernel_drops: int = 0, epoch: int = 0, first_record: int = 0
    ) -> None:
        h = self.host(origin)
        self.stats["batches"] += 1
        if kernel_drops > h.kernel_drops:
            lost = kernel_drops - h.kernel_drops
            self.stats["kernel_dropped"] += lost
            h.kernel_drops = kernel_drops
            self.report_loss(f"the kernel ring buffer of {h.hostname} dropped {lost} records")
        if h.next_seq is not None and seq != h.next_seq:
            if seq > h.next_seq:
                self.stats["gap_batches"] += seq - h.next_seq
                self.report_loss(f"{seq - h.next_seq} batches from {h.hostname} were lost in transit")
            else:
                self.stats["seq_restarts"] += 1  # collector restarted
        h.next_seq = seq + 1
        if not h.ready:
            if len(h.parked) < MAX_PARKED_BATCHES:
                h.parked.append(blob)
            else:
                self.stats["parked_dropped"] += 1
            return
        self.records(h, blob)

    def records(self, h: HostState, blob: bytes) -> None:
        header = self.headers[h.origin]
        try:
            for rec in split(blob):
                try:
                    spec, v, strings = decode(rec)
                except FrameError as e:
                    self.stats[type(e).__name__] += 1
                    continue
                self.stats["decoded"] += 1
                kind = spec.kind
                if kind == _EXEC:
                    self.on_exec(h, v, strings, header)
                elif kind == _EXIT:
                    if 5 in self.enabled:
                        self.filtered(5, self.m_terminate, process_terminate.build(h, v), header)
                    else:
                        h.cache.exited(
                            v[process_terminate.PID], v[process_terminate.START], v[process_terminate.TIME]
                        )
                elif kind == _FORK:
                    self.on_fork(h, v)
                elif kind == _HASH:
                    self.on_hash(h, v, strings)
                elif kind in self.simple:
                    eid, build, matcher = self.simple[kind]
                    values = build(h, v, strings)
                    if values is None:
                        self.stats[f"unparsed_{spec.name}"] += 1
                    else:
                        self.filtered(eid, matcher, values, header)
                elif kind == _MARKER:
                    self.markers[h.origin] = v[-1]
                    self.stats["markers"] += 1
        except FrameError as e:
            self.stats[type(e).__name__] += 1
        self.flush()

    def on_exec(self, h: HostState, v: tuple, strings: tuple[bytes, ...], header: SystemHeader) -> None:
        proc = process_create.cache_process(h, v, strings)
        if v[process_create.FLAGS] & records.REC_F_SNAPSHOT or 1 not in self.enabled:
            return
        known = h.image_hashes.get(
            (v[process_create.EXE_DEV], v[process_create.EXE_INO], v[process_create.EXE_CTIME])
        )
        hashes = (
            process_create.format_hashes(known[0], known[1], self.config.hash_algorithms) if known else ""
        )
        values = process_create.build(h, proc, v, hashes)
        self.filtered(1, self.m_create, values, header)

    def on_fork(self, h: HostState, v: tuple) -> None:
        parent = h.cache.get(v[_FORK_F["pid"]], v[_FORK_F["parent_start_ns"]])
        if parent is None:
            self.stats["fork_parent_unknown"] += 1
            return
        start = v[_FORK_F["child_start_ns"]]
        h.cache.put(
            Process(
                pid=v[_FORK_F["child_pid"]],
                start_ns=start,
                start_s=(start + h.boot_epoch_ns) // 1_000_000_000,
                machine_id=h.machine_id,
                image=parent.image,
                command_line=parent.command_line,
                cwd=parent.cwd,
                uid=v[_FORK_F["uid"]],
                end_code=parent.end_code,
            )
        )

    def on_hash(self, h: HostState, v: tuple, strings: tuple[bytes, ...]) -> None:
        if len(h.image_hashes) >= MAX_IMAGE_HASHES:
            h.image_hashes.pop(next(iter(h.image_hashes)))
        key = (v[_HASH_F["exe_dev"]], v[_HASH_F["exe_ino"]], v[_HASH_F["exe_ctime"]])
        h.image_hashes[key] = (v[_HASH_F["algos"]], strings[0])
