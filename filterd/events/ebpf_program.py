"""Sysmon event 100 eBPFEvent from a BPF_PROGRAM record (bpf/bpfload.bpf.c).

BpfProgramId is the kernel's program id (what `bpftool prog show id N` takes), where upstream
prints the returned file descriptor; type and name come from the loaded struct bpf_prog.
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index

from .actor import actor, event_time
from .registry import EventData, Options, Produces, event_data

TIME, PID, UID, COMMAND, TYPE, PROG_ID = (
    field_index(records.BPF_PROGRAM, n) for n in ("time_ns", "pid", "uid", "command", "prog_type", "prog_id")
)
EbpfEvent = event_data(100)

COMMANDS = {5: "BPF_PROG_LOAD", 8: "BPF_PROG_ATTACH"}
# enum bpf_prog_type, without the BPF_PROG_TYPE_ prefix (include/uapi/linux/bpf.h order)
PROG_TYPES = (
    "UNSPEC",
    "SOCKET_FILTER",
    "KPROBE",
    "SCHED_CLS",
    "SCHED_ACT",
    "TRACEPOINT",
    "XDP",
    "PERF_EVENT",
    "CGROUP_SKB",
    "CGROUP_SOCK",
    "LWT_IN",
    "LWT_OUT",
    "LWT_XMIT",
    "SOCK_OPS",
    "SK_SKB",
    "CGROUP_DEVICE",
    "SK_MSG",
    "RAW_TRACEPOINT",
    "CGROUP_SOCK_ADDR",
    "LWT_SEG6LOCAL",
    "LIRC_MODE2",
    "SK_REUSEPORT",
    "FLOW_DISSECTOR",
    "CGROUP_SYSCTL",
    "RAW_TRACEPOINT_WRITABLE",
    "CGROUP_SOCKOPT",
    "TRACING",
    "STRUCT_OPS",
    "EXT",
    "LSM",
    "SK_LOOKUP",
    "SYSCALL",
    "NETFILTER",
)


def build(host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, state: None) -> EventData:
    guid, image = actor(host, v[PID])
    uid = v[UID]
    ptype = v[TYPE]
    return EbpfEvent(
        UtcTime=event_time(host, v[TIME]),
        ProcessGuid=guid,
        ProcessId=str(v[PID]),
        Image=image,
        User=host.users.get(uid, str(uid)),  # upstream: name, else the numeric uid
        BpfCommand=COMMANDS.get(v[COMMAND], str(v[COMMAND])),
        BpfProgramType=PROG_TYPES[ptype] if ptype < len(PROG_TYPES) else str(ptype),
        BpfProgramId=str(v[PROG_ID]),
        BpfProgramName=strings[0].split(b"\0", 1)[0].decode("utf-8", "replace"),
    )


DECLARATIONS = (Produces(100, records.BPF_PROGRAM, build),)
