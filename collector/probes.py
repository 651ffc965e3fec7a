"""Every BPF source the collector loads, every hook in it, and the record kinds each hook feeds.

One table so that "where is event X born" has one answer. Programs use bcc's
TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE names; bcc attaches them on load, and
collector/loader.py then keeps attached only the hooks whose kinds someone wants: a syscall
whose events nobody logs does not even enter a BPF program.
"""

from __future__ import annotations

from typing import NamedTuple

from shared import records

EXEC, EXIT, FORK = records.PROCESS_EXEC.kind, records.PROCESS_EXIT.kind, records.PROCESS_FORK.kind
CREATE, RAW, DELETE = records.FILE_CREATE.kind, records.RAW_ACCESS.kind, records.FILE_DELETE.kind
FTIME = records.FILE_TIME.kind
UNLINKED_INODE = records.SWITCH_UNLINKED_INODE  # a switch, not a kind (shared/records.py)
CTIME_TRACEPOINTS = ("ctime_ns_xchg", "ctime_xchg_skip", "inode_set_ctime_to_ts")  # timestamp:*
NET, DNS = records.NET_CONNECT.kind, records.DNS_PACKET.kind
PTRACE, BPFPROG = records.PROCESS_ACCESS.kind, records.BPF_PROGRAM.kind


class Hook(NamedTuple):
    tracepoint: str  # "category:name" for tracepoints, "name" for raw tracepoints
    raw: bool
    kinds: tuple[int, ...]  # attached while any of these is wanted

    @property
    def fn_name(self) -> str:
        """The function bcc generates for TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE."""
        if self.raw:
            return f"raw_tracepoint__{self.tracepoint}"
        return "tracepoint__" + self.tracepoint.replace(":", "__")


class Probe(NamedTuple):
    source: str  # file in bpf/
    hooks: tuple[Hook, ...]


def _syscalls(names: str, kinds: tuple[int, ...]) -> tuple[Hook, ...]:
    return tuple(Hook(f"syscalls:{n}", False, kinds) for n in names.split())


PROBES: tuple[Probe, ...] = (
    Probe(
        "process.bpf.c",
        (
            Hook("sched:sched_process_exec", False, (EXEC,)),
            Hook("sched:sched_process_exit", False, (EXIT,)),
            Hook("sched_process_fork", True, (FORK,)),
        ),
    ),
    Probe(
        "file.bpf.c",
        _syscalls("sys_exit_open sys_exit_openat sys_exit_openat2", (CREATE, RAW))
        + _syscalls("sys_exit_creat", (CREATE,))
        + _syscalls("sys_enter_unlink sys_enter_unlinkat sys_exit_unlink sys_exit_unlinkat", (DELETE,))
        + _syscalls(
            "sys_enter_utimensat sys_enter_futimesat sys_enter_utimes sys_enter_utime "
            "sys_exit_utimensat sys_exit_futimesat sys_exit_utimes sys_exit_utime",
            (FTIME,),
        )
        # the inode a utime call or an unlink changes
        + tuple(Hook(n, True, (FTIME, UNLINKED_INODE)) for n in CTIME_TRACEPOINTS),
    ),
    Probe(
        "net.bpf.c",
        (Hook("sock:inet_sock_set_state", False, (NET,)), Hook("net:net_dev_queue", False, (NET,)))
        + _syscalls("sys_exit_accept sys_exit_accept4", (NET,))
        # sends: UDP flow owners (NET) and DNS queries, so unanswered ones are reported (DNS)
        + _syscalls("sys_enter_sendto sys_enter_sendmsg sys_enter_sendmmsg", (NET, DNS))
        + _syscalls(
            "sys_enter_recvfrom sys_enter_recvmsg sys_enter_recvmmsg "
            "sys_exit_recvfrom sys_exit_recvmsg sys_exit_recvmmsg",
            (NET, DNS),
        )
        + _syscalls("sys_enter_read sys_exit_read", (DNS,)),
    ),
    Probe("ptrace.bpf.c", _syscalls("sys_enter_ptrace sys_exit_ptrace", (PTRACE,))),
    Probe("bpfload.bpf.c", _syscalls("sys_enter_bpf sys_exit_bpf", (BPFPROG,))),
)

HOOKS: tuple[Hook, ...] = tuple(h for p in PROBES for h in p.hooks)
