"""Sysmon event 100 eBPFEvent from a BPF_PROGRAM record (bpf/bpfload.bpf.c).

BpfProgramId is the kernel's program id (what `bpftool prog show id N` takes), where upstream
prints the returned file descriptor; type and name come from the loaded struct bpf_prog.
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from shared import records

from .actor import actor, event_time

_F = {f.name: i for i, f in enumerate(records.BPF_PROGRAM.all_fields)}
TIME, PID, UID = _F["time_ns"], _F["pid"], _F["uid"]
COMMAND, TYPE, PROG_ID = _F["command"], _F["prog_type"], _F["prog_id"]

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


def build(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> tuple[str, ...]:
    guid, image = actor(host, v[PID])
    uid = v[UID]
    user = host.users.get(uid, str(uid))  # upstream: name, else the numeric uid
    ptype = v[TYPE]
    return (
        "",
        event_time(host, v[TIME]),
        guid,
        str(v[PID]),
        image,
        user,
        COMMANDS.get(v[COMMAND], str(v[COMMAND])),
        PROG_TYPES[ptype] if ptype < len(PROG_TYPES) else str(ptype),
        str(v[PROG_ID]),
        strings[0].split(b"\0", 1)[0].decode("utf-8", "replace"),
    )
