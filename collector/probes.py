"""Every BPF source the collector loads, the hooks in it and the record kinds it produces.

One table so that "where is event X born" has one answer. Programs use bcc's
TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE names, which bcc attaches by itself on load.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import records


@dataclass(frozen=True)
class Probe:
    source: str  # file in bpf/
    hooks: tuple[str, ...]
    kinds: tuple[int, ...]


PROBES: tuple[Probe, ...] = (
    Probe(
        "process.bpf.c",
        (
            "tracepoint:sched:sched_process_exec",
            "tracepoint:sched:sched_process_exit",
            "raw_tracepoint:sched_process_fork",
        ),
        (records.PROCESS_EXEC.kind, records.PROCESS_EXIT.kind, records.PROCESS_FORK.kind),
    ),
)
