"""filterd confines itself after dropping root: Landlock for files, a seccomp allow-list for calls.

Why both: filterd parses configs and frames that may come from the network, so a bug in it must
not become a foothold. Landlock (kernel >= 5.13) limits the files it can touch to reading
Python, its config and /etc, and writing its state directory; seccomp lets through only the
system calls a Python + ZeroMQ daemon makes, and answers EPERM to everything else (exec, ptrace,
mount, bpf, module loading, namespaces, setuid, ...). EPERM rather than a kill: an unexpected but
harmless call fails and is logged instead of taking the monitor down.
Applied with SECCOMP_FILTER_FLAG_SPEC_ALLOW: the default speculative-store-bypass mitigation
that seccomp would switch on costs a Python process a third of its speed.
Under systemd the unit's own sandbox does the same job; this is for everything else.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_SECCOMP = 317
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Landlock filesystem rights
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_REG, TRUNCATE = 1 << 4, 1 << 5, 1 << 8, 1 << 14
READ = READ_FILE | READ_DIR
WRITE = READ | WRITE_FILE | REMOVE_FILE | MAKE_REG | TRUNCATE
HANDLED_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
HANDLED_LATEST = (1 << 16) - 1  # ABI 5+: IOCTL_DEV

# x86_64 system calls a Python + libzmq daemon needs (names in comments, grouped)
ALLOWED_SYSCALLS = frozenset({
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,  # io, memory, signals
    22, 23, 24, 25, 26, 27, 28, 32, 33, 34, 35, 36, 37, 38, 39, 40,  # pipe..sendfile
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,  # sockets
    56, 60, 61, 62, 63, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 87, 89,  # clone (threads)..
    95, 96, 97, 98, 99, 100, 102, 104, 107, 108, 110, 111, 115, 118, 120, 121, 124, 131,  # ids, rlimits
    137, 138, 140, 141, 143, 144, 145, 146, 147, 157, 158, 186, 200, 201, 202, 203, 204,  # sched, prctl
    213, 217, 218, 219, 228, 229, 230, 231, 232, 233, 234, 235, 257, 258, 262, 263, 264,  # epoll, *at
    267, 269, 270, 271, 273, 274, 280, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293,
    295, 296, 299, 302, 307, 309, 316, 318, 319, 324, 332, 334, 435, 439, 441,  # statx, rseq, clone3
})  # fmt: skip
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
EPERM = 1


@dataclass(frozen=True)
class Confinement:
    landlock_abi: int  # 0: not available on this kernel
    seccomp: bool


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def seccomp_program(allowed: frozenset[int] = ALLOWED_SYSCALLS) -> bytes:
    """Classic BPF: wrong arch -> kill; x32 or unknown call -> EPERM; allowed call -> allow."""
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    nrs = sorted(allowed)
    prog = [
        _bpf(ld_w_abs, 4),  # seccomp_data.arch
        _bpf(jeq_k, AUDIT_ARCH_X86_64, 1, 0),
        _bpf(ret_k, SECCOMP_RET_KILL_PROCESS),
        _bpf(ld_w_abs, 0),  # seccomp_data.nr
        _bpf(jge_k, 0x40000000, len(nrs) + 1, 0),  # x32 ABI -> EPERM
    ]
    for i, nr in enumerate(nrs):
        prog.append(_bpf(jeq_k, nr, len(nrs) - i, 0))  # -> the ALLOW at the end
    prog.append(_bpf(ret_k, SECCOMP_RET_ERRNO | EPERM))
    prog.append(_bpf(ret_k, SECCOMP_RET_ALLOW))
    return b"".join(prog)


def landlock_abi() -> int:
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def _add_rule(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            access &= READ_FILE | WRITE_FILE | EXECUTE | TRUNCATE  # only file rights apply to a file
        attr = struct.pack("<Qi", access, fd)
        if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, attr, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def python_paths() -> list[str]:
    """What imports may still read: the interpreter's trees and everything on sys.path."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        "/usr/lib",
        "/usr/local/lib",
        "/usr/share/zoneinfo",
    }
    paths.update(p for p in sys.path if p)
    return sorted(paths)


def apply_landlock(readable: list[str], writable: list[str]) -> int:
    abi = landlock_abi()
    if abi == 0:
        return 0
    handled = HANDLED_BY_ABI.get(abi, HANDLED_LATEST)
    attr = struct.pack("<Q", handled)
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for p in [*python_paths(), "/etc", "/proc/self", "/dev/null", "/dev/urandom", *readable]:
            _add_rule(ruleset, p, READ & handled)
        for p in writable:
            target = p if os.path.isdir(p) else os.path.dirname(p) or "."
            _add_rule(ruleset, target, WRITE & handled)
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def apply_seccomp() -> None:
    prog = seccomp_program()
    buf = ctypes.create_string_buffer(prog)
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    if (
        _libc.syscall(
            SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, ctypes.byref(fprog)
        )
        != 0
    ):
        raise OSError(ctypes.get_errno(), "seccomp(SET_MODE_FILTER)")


def confine(readable: list[str], writable: list[str]) -> Confinement:
    """Landlock then seccomp, for good (no_new_privs must already be set)."""
    abi = apply_landlock(readable, writable)
    apply_seccomp()
    return Confinement(abi, True)
