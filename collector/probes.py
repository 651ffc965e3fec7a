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
    Probe(
        "file.bpf.c",
        (
            "tracepoint:syscalls:sys_exit_{open,openat,openat2,creat}",
            "tracepoint:syscalls:sys_{enter,exit}_{unlink,unlinkat}",
        ),
        (records.FILE_CREATE.kind, records.RAW_ACCESS.kind, records.FILE_DELETE.kind),
    ),
    Probe(
        "net.bpf.c",
        (
            "tracepoint:sock:inet_sock_set_state",
            "tracepoint:syscalls:sys_exit_{accept,accept4}",
            "tracepoint:syscalls:sys_enter_{sendto,sendmsg,sendmmsg}",
            "tracepoint:net:net_dev_queue",
            "tracepoint:syscalls:sys_{enter,exit}_{recvfrom,recvmsg,read}",
        ),
        (records.NET_CONNECT.kind, records.DNS_PACKET.kind),
    ),
    Probe(
        "ptrace.bpf.c",
        ("tracepoint:syscalls:sys_{enter,exit}_ptrace",),
        (records.PROCESS_ACCESS.kind,),
    ),
    Probe(
        "bpfload.bpf.c",
        ("tracepoint:syscalls:sys_{enter,exit}_bpf",),
        (records.BPF_PROGRAM.kind,),
    ),
)
