"""The few bpf(2) and perf_event_open(2) calls the long-running collector needs, through ctypes.

Why not bcc or libbpf: once the programs are loaded and pinned (collector/loader.py, a
short-lived step), the reader only opens pinned objects, reads and writes small maps and
creates or removes links. Twenty lines of syscalls keep LLVM (over 100 MB) and libbpf's
version differences out of the process that runs for months.

Attribute layouts are `union bpf_attr` members from include/uapi/linux/bpf.h; the kernel
accepts a shorter attr than its own (the rest reads as zero).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

SYS_BPF = 321  # x86_64
SYS_PERF_EVENT_OPEN = 298

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_LINK_CREATE = 28
BPF_PERF_EVENT = 41  # enum bpf_attach_type

PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    pass


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    r = _libc.syscall(SYS_BPF, ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if r < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({cmd}): {os.strerror(err)}")
    return r


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
        ("path_fd", ctypes.c_int32),
        ("pad", ctypes.c_uint32),
    ]


class _RawTpAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class _LinkAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("extra", ctypes.c_uint64 * 4),
    ]


def _addr(buf: ctypes.Array | ctypes.c_char_p | bytes) -> int:
    return ctypes.cast(buf, ctypes.c_void_p).value or 0


def obj_get(path: str) -> int:
    """fd of the object pinned at `path` (FileNotFoundError when there is none)."""
    name = ctypes.create_string_buffer(path.encode())
    try:
        return _bpf(BPF_OBJ_GET, _ObjAttr(pathname=_addr(name)))
    except BpfError as e:
        if e.errno == 2:
            raise FileNotFoundError(2, "no pinned object", path) from None
        raise


def obj_pin(fd: int, path: str) -> None:
    name = ctypes.create_string_buffer(path.encode())
    _bpf(BPF_OBJ_PIN, _ObjAttr(pathname=_addr(name), bpf_fd=fd))


def lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    try:
        _bpf(BPF_MAP_LOOKUP_ELEM, _ElemAttr(map_fd=fd, key=_addr(k), value=_addr(v)))
    except BpfError as e:
        if e.errno == 2:
            return None
        raise
    return v.raw


def update(fd: int, key: bytes, value: bytes) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, _ElemAttr(map_fd=fd, key=_addr(k), value=_addr(v)))


def delete(fd: int, key: bytes) -> bool:
    k = ctypes.create_string_buffer(key, len(key))
    try:
        _bpf(BPF_MAP_DELETE_ELEM, _ElemAttr(map_fd=fd, key=_addr(k)))
    except BpfError as e:
        if e.errno == 2:
            return False
        raise
    return True


def keys(fd: int, key_size: int, limit: int = 1 << 16) -> list[bytes]:
    """Every key of a hash map (bounded)."""
    out: list[bytes] = []
    cur = ctypes.create_string_buffer(key_size)
    nxt = ctypes.create_string_buffer(key_size)
    attr = _ElemAttr(map_fd=fd, key=0, value=_addr(nxt))
    while len(out) < limit:
        try:
            _bpf(BPF_MAP_GET_NEXT_KEY, attr)
        except BpfError as e:
            if e.errno == 2:
                break
            raise
        out.append(nxt.raw)
        ctypes.memmove(cur, nxt, key_size)
        attr.key = _addr(cur)
    return out


@cache
def possible_cpus() -> int:
    """Per-CPU map values hold one slot per possible CPU (not online)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n


def percpu_sum_u64(fd: int, key: bytes) -> int:
    raw = lookup(fd, key, 8 * possible_cpus())
    if raw is None:
        return 0
    return sum(int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8))


def tracepoint_id(category: str, name: str) -> int:
    for root in TRACEFS:
        try:
            with open(f"{root}/events/{category}/{name}/id") as f:
                return int(f.read())
        except FileNotFoundError:
            continue
    raise FileNotFoundError(2, "no such tracepoint (is tracefs mounted?)", f"{category}:{name}")


class _PerfAttr(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


def attach_tracepoint(prog_fd: int, category: str, name: str) -> int:
    """A bpf_link running `prog_fd` at a tracepoint on every CPU; pin it to outlive us."""
    attr = _PerfAttr(type=PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(_PerfAttr))
    attr.config = tracepoint_id(category, name)
    attr.sample_period = 1
    attr.wakeup_events = 1
    pfd = _libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if pfd < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"perf_event_open({category}:{name}): {os.strerror(err)}")
    try:
        return _bpf(BPF_LINK_CREATE, _LinkAttr(prog_fd=prog_fd, target_fd=pfd, attach_type=BPF_PERF_EVENT))
    finally:
        os.close(pfd)  # the link holds the perf event


def attach_raw_tracepoint(prog_fd: int, name: str) -> int:
    tp = ctypes.create_string_buffer(name.encode())
    return _bpf(BPF_RAW_TRACEPOINT_OPEN, _RawTpAttr(name=_addr(tp), prog_fd=prog_fd))
