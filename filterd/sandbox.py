"""filterd confines itself after dropping root, under the supervisor and under systemd alike.

Why: filterd parses configs and frames that may come from the network, so a bug in it must not
become a foothold. confine() applies, for good and in this order:
- Landlock (kernel >= 5.13): files readable only under Python's trees, a few /etc files and the
  directories of its config; writable only in its state directory (and the stats file's).
  ABI >= 4: no TCP bind at all, TCP connect only to the ports of its tcp:// collectors.
  ABI >= 6: no abstract AF_UNIX sockets outside the sandbox, no signals to processes outside it.
  Landlock does not govern connect() to path-named AF_UNIX sockets on this kernel's ABI (7), nor
  UDP at all; the syslog and ipc:// sockets keep working without rules (their file modes guard
  them), and seccomp below closes UDP.
- MDWE (prctl PR_SET_MDWE, kernel >= 6.3): no memory that is both writable and executable.
- seccomp: an allow-list of the system calls a Python + libzmq daemon makes. Everything else
  (exec, ptrace, mount, bpf, module loading, namespaces, setuid, io_uring, keyrings, ...) gets
  EPERM rather than a kill, so an unexpected but harmless call fails visibly instead of taking the
  monitor down. Arguments are checked where Landlock leaves gaps:
    clone() only for threads (CLONE_THREAD, no namespace flags): no fork, so no child to exec
      from or to outlive a restart; clone3() -> ENOSYS (flags out of reach; glibc falls back);
    socket(): AF_UNIX only; with tcp:// collectors also AF_INET/AF_INET6 SOCK_STREAM (TCP, whose
      ports Landlock checks) and NETLINK_ROUTE (getaddrinfo); never UDP, raw or packet sockets;
    prctl(): only the options filterd and its libraries use (thread names, a few getters): no
      PR_SET_DUMPABLE (ptrace by another `sysmon` process), PR_SET_PTRACER, PR_SET_SECCOMP, ...;
    kill()/tgkill()/tkill(): only filterd's own pid (its main thread for tkill); kill(0) and
      negative pids (process groups: under the supervisor, the group is the supervisor's) refused;
    prlimit64(): only pid 0 or its own; no TIOCSTI/TIOCLINUX terminal injection.
  Applied with SECCOMP_FILTER_FLAG_SPEC_ALLOW: the speculative-store-bypass mitigation seccomp
  would switch on costs a Python process a third of its speed.
Landlock binds only the calling thread, so confine() refuses to run once a second thread exists.
Under systemd the unit's own sandbox comes first (it also forbids exec from outside the
interpreter's paths and every address family but AF_UNIX); this one is a second, tighter layer
the unit cannot express (no exec of the interpreter itself, no fork, argument checks).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import socket
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# -- Landlock (include/uapi/linux/landlock.h) -----------------------------------------------------
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH, LANDLOCK_RULE_NET_PORT = 1, 2
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_REG, TRUNCATE = 1 << 4, 1 << 5, 1 << 8, 1 << 14
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | (1 << 15)  # rights that apply to a file
READ = READ_FILE | READ_DIR
WRITE = READ | WRITE_FILE | REMOVE_FILE | MAKE_REG | TRUNCATE
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
FS_LATEST = (1 << 16) - 1  # ABI 5 added IOCTL_DEV; rights of later ABIs are not handled (= allowed)
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

# What reading Python, resolving names and formatting local times needs in /etc (nothing else)
ETC_FILES = (
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf",
    "/etc/resolv.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime",
    "/etc/ld.so.cache",
)  # fmt: skip
SYSTEM_READ = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/share/zoneinfo", "/dev/null",
               "/dev/urandom", "/sys/devices/system/cpu")  # fmt: skip

# -- seccomp (x86_64 only; other architectures get no seccomp filter) -----------------------------
SYS_SECCOMP = 317
ALLOWED = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6, "poll": 7, "lseek": 8,
    "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14,
    "rt_sigreturn": 15, "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21, "pipe": 22,
    "select": 23, "sched_yield": 24, "mremap": 25, "msync": 26, "mincore": 27, "madvise": 28, "dup": 32,
    "dup2": 33, "pause": 34, "nanosleep": 35, "getitimer": 36, "alarm": 37, "setitimer": 38, "getpid": 39,
    "sendfile": 40, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46,
    "recvmsg": 47, "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51, "getpeername": 52,
    "socketpair": 53, "setsockopt": 54, "getsockopt": 55, "exit": 60, "wait4": 61, "uname": 63,
    "fcntl": 72, "flock": 73, "fsync": 74, "fdatasync": 75, "truncate": 76, "ftruncate": 77,
    "getdents": 78, "getcwd": 79, "chdir": 80, "fchdir": 81, "rename": 82, "mkdir": 83, "rmdir": 84,
    "creat": 85, "unlink": 87, "readlink": 89, "umask": 95, "gettimeofday": 96, "getrlimit": 97,
    "getrusage": 98, "sysinfo": 99, "times": 100, "getuid": 102, "getgid": 104, "geteuid": 107,
    "getegid": 108, "getppid": 110, "getpgrp": 111, "getgroups": 115, "getresuid": 118, "getresgid": 120,
    "getpgid": 121, "getsid": 124, "sigaltstack": 131, "statfs": 137, "fstatfs": 138, "getpriority": 140,
    "setpriority": 141, "sched_getparam": 143, "sched_get_priority_max": 146, "sched_get_priority_min": 147,
    "sched_getscheduler": 145, "arch_prctl": 158, "gettid": 186, "time": 201,
    "futex": 202, "sched_setaffinity": 203, "sched_getaffinity": 204, "epoll_create": 213,
    "getdents64": 217, "set_tid_address": 218, "restart_syscall": 219, "fadvise64": 221,
    "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230, "exit_group": 231, "epoll_wait": 232,
    "epoll_ctl": 233, "utimes": 235, "openat": 257, "mkdirat": 258, "newfstatat": 262,
    "unlinkat": 263, "renameat": 264, "readlinkat": 267, "faccessat": 269, "pselect6": 270, "ppoll": 271,
    "set_robust_list": 273, "utimensat": 280, "epoll_pwait": 281, "timerfd_create": 283, "eventfd": 284,
    "fallocate": 285, "timerfd_settime": 286, "timerfd_gettime": 287, "accept4": 288, "eventfd2": 290,
    "epoll_create1": 291, "dup3": 292, "pipe2": 293, "preadv": 295, "pwritev": 296, "recvmmsg": 299,
    "sendmmsg": 307, "getcpu": 309, "renameat2": 316, "getrandom": 318,
    "membarrier": 324, "statx": 332, "rseq": 334, "faccessat2": 439, "epoll_pwait2": 441,
    # libzmq's I/O thread calls pthread_setschedparam() with unchanged values and aborts on EPERM
    "sched_setparam": 142, "sched_setscheduler": 144,
}  # fmt: skip
# checked argument by argument in seccomp_program(), never allowed outright
ARG_CHECKED = {"ioctl": 16, "socket": 41, "clone": 56, "kill": 62, "prctl": 157, "tkill": 200,
               "tgkill": 234, "prlimit64": 302, "clone3": 435}  # fmt: skip
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
CLONE_THREAD = 0x00010000
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_STREAM, SOCK_TYPE_MASK, IPPROTO_TCP, NETLINK_ROUTE = 1, 0xF, 6, 0
PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS = 15, 16, 3, 39
PR_SET_VMA = 0x53564D41  # names anonymous mappings (newer glibc and CPython do)
PRCTL_ALLOWED = (PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS, PR_SET_VMA)
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 0, 1 << 2
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


@dataclass(frozen=True)
class Confinement:
    """What confine() could apply on this kernel (for `sysmonctl status` and the start-up line)."""

    landlock_abi: int = 0  # 0: no Landlock on this kernel
    landlock_net: bool = False
    landlock_scoped: bool = False
    seccomp: bool = False
    mdwe: bool = False
    inet: bool = False  # seccomp lets TCP sockets through (tcp:// collectors)

    def describe(self) -> str:
        if not self.landlock_abi and not self.seccomp:
            return "none"
        parts = [f"landlock ABI {self.landlock_abi}" if self.landlock_abi else "no landlock"]
        seccomp = "seccomp (unix, tcp)" if self.inet else "seccomp (unix only)"
        parts += [name for name, on in (("tcp ports", self.landlock_net), ("scoped", self.landlock_scoped),
                                        (seccomp, self.seccomp), ("mdwe", self.mdwe)) if on]  # fmt: skip
        return ", ".join(parts)


# -- Landlock ---------------------------------------------------------------------------------------
def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 if Landlock is missing or disabled."""
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def _add_path(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            access &= FILE_RIGHTS
        if not access:
            return
        attr = struct.pack("<Qi", access, fd)  # struct landlock_path_beneath_attr (packed)
        if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, attr, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _add_port(ruleset: int, port: int, access: int) -> None:
    attr = struct.pack("<QQ", access, port)  # struct landlock_net_port_attr
    if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_NET_PORT, attr, 0) != 0:
        raise OSError(ctypes.get_errno(), f"landlock_add_rule(port {port})")


def python_paths() -> list[str]:
    """What imports may still read: the interpreter's trees and everything on sys.path."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(os.path.abspath(p) for p in sys.path if p)
    return sorted(paths)


def apply_landlock(
    readable: Iterable[str], writable: Iterable[str], tcp_ports: Iterable[int] = ()
) -> Confinement:
    abi = landlock_abi()
    if abi == 0:
        return Confinement()
    fs = FS_BY_ABI.get(abi, FS_LATEST)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("<QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for p in [*python_paths(), *SYSTEM_READ, *ETC_FILES, f"/proc/{os.getpid()}", *readable]:
            _add_path(ruleset, p, READ & fs)
        for p in writable:
            _add_path(ruleset, p if os.path.isdir(p) else os.path.dirname(p) or ".", WRITE & fs)
        if net:
            for port in sorted(set(tcp_ports)):
                _add_port(ruleset, port, NET_CONNECT_TCP)
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return Confinement(landlock_abi=abi, landlock_net=bool(net), landlock_scoped=bool(scoped))


# -- seccomp ----------------------------------------------------------------------------------------
class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


LD_W_ABS, JEQ_K, JSET_K, RET_K, AND_K = 0x20, 0x15, 0x45, 0x06, 0x54
OFF_NR, OFF_ARCH, OFF_ARG0, OFF_ARG1, OFF_ARG2 = 0, 4, 16, 24, 32  # struct seccomp_data (low 32 bits)


def _one_of(offset: int, values: tuple[int, ...], action_if: int, otherwise: int) -> list[bytes]:
    """Load one argument; return action_if if it equals one of values, else otherwise."""
    n = len(values)
    block = [_ins(LD_W_ABS, offset)]
    block += [_ins(JEQ_K, v, n - i, 0) for i, v in enumerate(values)]  # -> the action_if return
    return [*block, _ins(RET_K, otherwise), _ins(RET_K, action_if)]


def _if_eq(value: int, body: list[bytes]) -> list[bytes]:
    """`if A == value: body` (body ends in returns); otherwise fall through with A unchanged."""
    return [_ins(JEQ_K, value, 0, len(body)), *body]


def _syscall_block(nr: int, body: list[bytes]) -> list[bytes]:
    """`if nr == this: body` (body ends in returns); otherwise fall through to the next block."""
    return _if_eq(nr, body)


def _socket_rules(inet: bool) -> list[bytes]:
    allow, eperm, no_family = RET_ALLOW, RET_ERRNO | errno.EPERM, RET_ERRNO | errno.EAFNOSUPPORT
    rules = [_ins(LD_W_ABS, OFF_ARG0), *_if_eq(AF_UNIX, [_ins(RET_K, allow)])]
    if inet:
        tcp = [
            _ins(LD_W_ABS, OFF_ARG1),
            _ins(AND_K, SOCK_TYPE_MASK),  # without SOCK_NONBLOCK / SOCK_CLOEXEC
            _ins(JEQ_K, SOCK_STREAM, 1, 0),
            _ins(RET_K, eperm),  # UDP, raw, ...: Landlock would not see them
            *_one_of(OFF_ARG2, (0, IPPROTO_TCP), allow, eperm),  # not MPTCP, SCTP
        ]
        rules += _if_eq(AF_INET, tcp) + _if_eq(AF_INET6, tcp)
        rules += _if_eq(AF_NETLINK, _one_of(OFF_ARG2, (NETLINK_ROUTE,), allow, eperm))
    return [*rules, _ins(RET_K, no_family)]


def seccomp_program(pid: int, inet: bool = False, allowed: dict[str, int] = ALLOWED) -> bytes:
    """Classic BPF for the process `pid` (the only target its signals may have); `inet` when it
    has tcp:// collectors. Only short forward jumps (each block skips itself), so the list can
    grow freely; the kernel caches the verdict of argument-free allowed calls, so the length
    costs nothing there."""
    eperm, allow = RET_ERRNO | errno.EPERM, RET_ALLOW
    prog = [
        _ins(LD_W_ABS, OFF_ARCH),
        _ins(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _ins(RET_K, RET_KILL_PROCESS),  # another ABI's numbers would mean other calls
        _ins(LD_W_ABS, OFF_NR),
        _ins(JSET_K, 0x40000000, 0, 1),  # x32 calls
        _ins(RET_K, eperm),
    ]
    nr = ARG_CHECKED
    prog += _syscall_block(nr["clone3"], [_ins(RET_K, RET_ERRNO | errno.ENOSYS)])
    threads_only = [
        _ins(LD_W_ABS, OFF_ARG0),
        _ins(JSET_K, CLONE_NAMESPACES, 0, 1),
        _ins(RET_K, eperm),
        _ins(JSET_K, CLONE_THREAD, 1, 0),
        _ins(RET_K, eperm),  # fork, vfork, posix_spawn
        _ins(RET_K, allow),
    ]
    prog += _syscall_block(nr["clone"], threads_only)
    prog += _syscall_block(nr["socket"], _socket_rules(inet))
    prog += _syscall_block(nr["ioctl"], _one_of(OFF_ARG1, (TIOCSTI, TIOCLINUX), eperm, allow))
    prog += _syscall_block(nr["prctl"], _one_of(OFF_ARG0, PRCTL_ALLOWED, allow, eperm))
    for name in ("kill", "tgkill", "tkill"):  # tkill: pid == tid of the main thread
        prog += _syscall_block(nr[name], _one_of(OFF_ARG0, (pid,), allow, eperm))
    prog += _syscall_block(nr["prlimit64"], _one_of(OFF_ARG0, (0, pid), allow, eperm))
    for n in sorted(allowed.values()):
        prog += _syscall_block(n, [_ins(RET_K, allow)])
    prog.append(_ins(RET_K, eperm))
    return b"".join(prog)


def apply_seccomp(inet: bool = False) -> bool:
    if platform.machine() != "x86_64":
        return False  # the allow-list is in x86_64 numbers
    prog = seccomp_program(os.getpid(), inet)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    flags = SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_SPEC_ALLOW
    if _libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SET_MODE_FILTER)")
    return True


def apply_mdwe() -> bool:
    """No page may become executable once writable (systemd's MemoryDenyWriteExecute)."""
    if _libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL:
        return False  # kernel < 6.3
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


# -- together ---------------------------------------------------------------------------------------
def thread_count() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


def confine(readable: Iterable[str], writable: Iterable[str], tcp_ports: Iterable[int] = ()) -> Confinement:
    """Landlock, MDWE, then seccomp, for good. no_new_privs must already be set, and the process
    must still be single-threaded: Landlock binds only the calling thread. Internet sockets are
    allowed only when there are tcp:// collectors (`tcp_ports`), and then only TCP."""
    if thread_count() != 1:
        raise RuntimeError("confine() must run before any thread starts (ZeroMQ, control)")
    ports = list(tcp_ports)
    c = apply_landlock(readable, writable, ports)
    mdwe = apply_mdwe()
    seccomp = apply_seccomp(inet=bool(ports))
    inet = bool(ports) and seccomp
    return Confinement(c.landlock_abi, c.landlock_net, c.landlock_scoped, seccomp, mdwe, inet)


# Shared, world-writable places a process could leave something in (or read it back from)
OUTSIDE = ("/tmp", "/var/tmp", "/dev/shm")
NR_EXECVE = 59


def selftest(state_dir: str, outside: Iterable[str] = OUTSIDE) -> dict[str, Any]:
    """Try what the sandbox must forbid and what it must allow: 'ok' or the errno name for each.
    Used by the hidden `selftest` control request and the tests. Harmless when unconfined: files
    are removed, a forked child exits at once, spawned programs are /bin/true and `python -c pass`,
    the in-place execve has an invalid argv (the kernel refuses it before the point of no return:
    EFAULT, reported as 'ok', means exec would have been allowed), nothing is sent anywhere."""

    def attempt(f: Callable[[], object]) -> str:
        try:
            f()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno or 0, str(e.errno))

    def write_in(directory: str) -> None:
        fd, path = tempfile.mkstemp(prefix=".sysmon-selftest-", dir=directory)
        os.close(fd)
        os.unlink(path)

    def spawn(*argv: str) -> None:
        pid = os.posix_spawn(argv[0], list(argv), {})
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def execve_in_place() -> None:
        if platform.machine() != "x86_64":
            raise OSError(errno.ENOSYS, "x86_64 only")
        argv = ctypes.c_void_p(8)  # unreadable: the kernel fails with EFAULT if exec is allowed
        if _libc.syscall(NR_EXECVE, b"/bin/true", argv, None) != 0:
            err = ctypes.get_errno()
            if err != errno.EFAULT:
                raise OSError(err, "execve")

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    def inet(family: socket.AddressFamily, kind: socket.SocketKind) -> None:
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        with socket.socket(family, kind) as s:
            s.settimeout(2)
            if kind == socket.SOCK_DGRAM:
                s.sendto(b"", (host, 9))  # discard
            else:
                s.connect((host, 1))  # nothing listens: ECONNREFUSED means it got through

    return {
        "write_state": attempt(lambda: write_in(state_dir)),
        "write_outside": {d: attempt(lambda d=d: write_in(d)) for d in outside},
        "exec": attempt(lambda: spawn("/bin/true")),
        "exec_interpreter": attempt(lambda: spawn(sys.executable, "-c", "pass")),
        "execve": attempt(execve_in_place),
        "fork": attempt(fork),
        "list_etc": attempt(lambda: os.listdir("/etc")),
        **{
            f"{fam}_{kind}": attempt(lambda f=f, k=k: inet(f, k))
            for fam, f in (("inet", socket.AF_INET), ("inet6", socket.AF_INET6))
            for kind, k in (("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM))
        },
    }
