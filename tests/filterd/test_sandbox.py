"""filterd's self-sandbox, for real: in a child process that tries each forbidden thing, in a model
of the seccomp program (hypothesis), and in a real filterd (started as root, dropped to `sysmon`)
asked through its control socket to try what it must not be able to do."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.sandbox import (
    ALLOWED,
    ARG_CHECKED,
    AUDIT_ARCH_X86_64,
    CLONE_NAMESPACES,
    CLONE_THREAD,
    PRCTL_ALLOWED,
    RET_ALLOW,
    RET_ERRNO,
    landlock_abi,
    seccomp_program,
)
from sysmonctl.keys import make_pair

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: confine (everything, or seccomp alone), then try things.
CHILD = r"""
import ctypes, errno, json, os, resource, signal, socket, sys, threading
from filterd.privileges import no_new_privs
from filterd.sandbox import apply_seccomp, confine, selftest
arg = json.loads(sys.argv[1])
no_new_privs()
if arg["mode"] == "full":
    c = confine(readable=[], writable=[arg["state"]], tcp_ports=arg["tcp_ports"])
    out = {"abi": c.landlock_abi, "seccomp": c.seccomp, "mdwe": c.mdwe, "describe": c.describe()}
else:
    out = {"seccomp": apply_seccomp(inet=bool(arg["tcp_ports"]))}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def attempt(f):
    try:
        r = f()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    if isinstance(r, int) and r < 0:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"
def sock(family, kind, proto=0):
    socket.socket(family, kind, proto).close()
def connect(path_or_port):
    family = socket.AF_UNIX if isinstance(path_or_port, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path_or_port if family == socket.AF_UNIX else ("127.0.0.1", path_or_port))
me, parent, tid = os.getpid(), os.getppid(), threading.get_native_id()
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
out.update(selftest(arg["state"]))
out.update({
    "write_outside_given": attempt(lambda: open(arg["outside"], "w").write("1") and None),
    "read_passwd": attempt(lambda: open("/etc/passwd").read() and None),
    "read_hostname": attempt(lambda: open("/etc/hostname").read() and None),
    "unshare_user": attempt(lambda: libc.unshare(0x10000000)),
    "ptrace": attempt(lambda: libc.ptrace(16, parent, 0, 0)),  # PTRACE_ATTACH
    "packet_socket": attempt(lambda: sock(socket.AF_PACKET, socket.SOCK_RAW)),
    "inet_raw": attempt(lambda: sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
    "inet_tcp_nonblock": attempt(lambda: sock(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)),
    "inet_mptcp": attempt(lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 262)),
    "inet_udp_socket": attempt(lambda: sock(socket.AF_INET, socket.SOCK_DGRAM)),
    "netlink_route": attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 0)),
    "netlink_audit": attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 9)),
    "unix_connect": attempt(lambda: connect(arg["listener"])),
    "tcp_allowed_port": attempt(lambda: connect(arg["tcp_ports"][0])) if arg["tcp_ports"] else "-",
    "tcp_other_port": attempt(lambda: connect(arg["other_port"])),
    "thread": attempt(lambda: threading.Thread(target=int).start()),
    # signals: only to itself
    "kill_self": attempt(lambda: os.kill(me, 0)),
    "raise_self": attempt(lambda: signal.raise_signal(signal.SIGUSR1)),
    "tgkill_self": attempt(lambda: libc.syscall(234, me, tid, 0)),
    "tkill_self": attempt(lambda: libc.syscall(200, me, 0)),
    "kill_parent": attempt(lambda: os.kill(parent, 0)),
    "kill_group": attempt(lambda: os.kill(0, 0)),
    "kill_parent_group": attempt(lambda: os.kill(-os.getpgid(parent), 0)),
    "kill_all": attempt(lambda: os.kill(-1, 0)),
    "tgkill_parent": attempt(lambda: libc.syscall(234, parent, parent, 0)),
    "tkill_parent": attempt(lambda: libc.syscall(200, parent, 0)),
    # prctl: thread names and getters only
    "prctl_set_name": attempt(lambda: libc.prctl(15, b"sandboxed", 0, 0, 0)),
    "prctl_get_name": attempt(lambda: libc.prctl(16, ctypes.create_string_buffer(16), 0, 0, 0)),
    "prctl_set_dumpable": attempt(lambda: libc.prctl(4, 1, 0, 0, 0)),
    "prctl_set_ptracer": attempt(lambda: libc.prctl(0x59616D61, -1, 0, 0, 0)),  # PR_SET_PTRACER_ANY
    "prctl_set_seccomp": attempt(lambda: libc.prctl(22, 1, 0, 0, 0)),  # strict mode
    "prctl_set_pdeathsig": attempt(lambda: libc.prctl(1, 9, 0, 0, 0)),
    "prctl_set_subreaper": attempt(lambda: libc.prctl(36, 1, 0, 0, 0)),
    "prctl_set_mm": attempt(lambda: libc.prctl(35, 8, 0, 0, 0)),
    "prlimit_self": attempt(lambda: resource.prlimit(0, resource.RLIMIT_NOFILE)),
    "prlimit_parent": attempt(lambda: resource.prlimit(parent, resource.RLIMIT_NOFILE)),
})
out["dumpable"] = libc.prctl(3, 0, 0, 0, 0)
out["signal_delivered"] = bool(got)
print(json.dumps(out))
"""


class Listeners:
    """A unix and two TCP listeners on loopback the child may or may not reach."""

    def __init__(self, tmp: Path) -> None:
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix_path = str(tmp / "l.sock")
        self.unix.bind(self.unix_path)
        self.tcp = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
        for s in (self.unix, *self.tcp):
            s.listen(4)
        self.ports = [s.getsockname()[1] for s in self.tcp]

    def close(self) -> None:
        for s in (self.unix, *self.tcp):
            s.close()


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[Listeners]:
    ls = Listeners(tmp_path)
    try:
        yield ls
    finally:
        ls.close()


def run_child(tmp: Path, listeners: Listeners, mode: str, remote: bool) -> dict:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    arg = {"mode": mode, "state": str(state), "outside": str(tmp / "elsewhere.txt"),
           "listener": listeners.unix_path, "tcp_ports": listeners.ports[:1] if remote else [],
           "other_port": listeners.ports[1]}  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(arg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


SIGNALS_AND_PRCTL = {  # what seccomp decides, whatever else is applied
    "kill_self": "ok", "raise_self": "ok", "tgkill_self": "ok", "tkill_self": "ok",
    "kill_parent": "EPERM", "kill_group": "EPERM", "kill_parent_group": "EPERM", "kill_all": "EPERM",
    "tgkill_parent": "EPERM", "tkill_parent": "EPERM",
    "prctl_set_name": "ok", "prctl_get_name": "ok", "prctl_set_dumpable": "EPERM",
    "prctl_set_ptracer": "EPERM", "prctl_set_seccomp": "EPERM", "prctl_set_pdeathsig": "EPERM",
    "prctl_set_subreaper": "EPERM", "prctl_set_mm": "EPERM",
    "prlimit_self": "ok", "prlimit_parent": "EPERM",
    "exec": "EPERM", "exec_interpreter": "EPERM", "execve": "EPERM", "fork": "EPERM",
    "unshare_user": "EPERM", "ptrace": "EPERM", "thread": "ok", "unix_connect": "ok",
}  # fmt: skip
NO_INET = {key: "EAFNOSUPPORT" for key in (
    "inet_udp", "inet_tcp", "inet6_udp", "inet6_tcp", "inet_raw", "inet_tcp_nonblock", "inet_mptcp",
    "inet_udp_socket", "netlink_route", "netlink_audit", "packet_socket", "tcp_other_port")}  # fmt: skip


def subset(out: dict, expected: dict) -> dict:
    return {k: out.get(k) for k in expected}


def test_confine_in_a_child(tmp_path: Path, listeners: Listeners) -> None:
    out = run_child(tmp_path, listeners, "full", remote=False)
    assert out["abi"] == landlock_abi() > 0 and out["seccomp"] and out["mdwe"]
    assert out["describe"].endswith("seccomp (unix only), mdwe")
    assert out["write_state"] == "ok"
    # /tmp, /var/tmp, /dev/shm are world-writable: only Landlock stops it
    assert set(out["write_outside"].values()) == {"EACCES"} and out["write_outside_given"] == "EACCES"
    assert out["list_etc"] == "EACCES"  # /etc: only named files
    assert out["read_passwd"] == "ok" and out["read_hostname"] == "EACCES"
    assert subset(out, SIGNALS_AND_PRCTL) == SIGNALS_AND_PRCTL
    assert subset(out, NO_INET) == NO_INET  # no internet socket at all, UDP included
    assert out["signal_delivered"] and out["dumpable"] == 1  # root child: dumpable, and stays as it was
    assert not (tmp_path / "elsewhere.txt").exists()


def test_confine_with_tcp_collectors_in_a_child(tmp_path: Path, listeners: Listeners) -> None:
    """Remote collectors configured: TCP sockets, and connect only to their ports; still no UDP."""
    out = run_child(tmp_path, listeners, "full", remote=True)
    assert out["describe"].endswith("tcp ports, scoped, seccomp (unix, tcp), mdwe")
    assert out["tcp_allowed_port"] == "ok" and out["inet_tcp_nonblock"] == "ok"
    assert out["tcp_other_port"] == out["inet_tcp"] == out["inet6_tcp"] == "EACCES"  # Landlock ports
    assert out["inet_udp"] == out["inet6_udp"] == out["inet_udp_socket"] == "EPERM"  # seccomp: type
    assert out["inet_raw"] == out["inet_mptcp"] == out["netlink_audit"] == "EPERM"
    assert out["netlink_route"] == "ok"  # getaddrinfo
    assert out["packet_socket"] == "EAFNOSUPPORT"
    assert subset(out, SIGNALS_AND_PRCTL) == SIGNALS_AND_PRCTL


def test_seccomp_alone_in_a_child(tmp_path: Path, listeners: Listeners) -> None:
    """Without Landlock (its signal scope, its file rules) seccomp still refuses signals to others,
    prctl changes, exec, fork and internet sockets: the layer the systemd unit cannot add."""
    out = run_child(tmp_path, listeners, "seccomp", remote=False)
    assert out["seccomp"]
    assert subset(out, SIGNALS_AND_PRCTL) == SIGNALS_AND_PRCTL
    assert subset(out, NO_INET) == NO_INET
    assert out["write_outside"]["/tmp"] == "ok" and out["list_etc"] == "ok"  # files are Landlock's job


def test_confine_refuses_once_threads_run() -> None:
    code = (
        "import threading, time; from filterd.sandbox import confine\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "try:\n    confine([], [])\nexcept RuntimeError as e:\n    print('refused', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.stdout.startswith("refused"), r.stderr


# -- the seccomp program, in a model of classic BPF ---------------------------------------------------
def run_filter(prog: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int:
    """Evaluate the program on one struct seccomp_data, as the kernel does."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    a, pc = 0, 0
    while True:
        code, jt, jf, k = struct.unpack_from("<HBBI", prog, pc * 8)
        pc += 1
        if code == 0x20:  # LD W ABS
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # ALU AND K
            a &= k
        elif code == 0x15:  # JEQ K
            pc += jt if a == k else jf
        elif code == 0x45:  # JSET K
            pc += jt if a & k else jf
        elif code == 0x06:  # RET K
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")


EPERM, EAFNOSUPPORT = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.EAFNOSUPPORT
pids = st.integers(1, 1 << 22)
u64 = st.integers(0, (1 << 64) - 1)


@given(pid=pids, other=st.integers(-(1 << 31), (1 << 31) - 1), sig=st.integers(0, 64), inet=st.booleans())
@settings(max_examples=300)
def test_model_signals_only_to_itself(pid: int, other: int, sig: int, inet: bool) -> None:
    prog = seccomp_program(pid, inet)
    target = other & 0xFFFFFFFF  # as the kernel sees a negative pid_t in a register
    for name in ("kill", "tkill"):
        assert run_filter(prog, ARG_CHECKED[name], (pid, sig)) == RET_ALLOW
        if other != pid:  # 0 (own group) and negative (a group, -1: everyone) included
            assert run_filter(prog, ARG_CHECKED[name], (target, sig)) == EPERM
    assert run_filter(prog, ARG_CHECKED["tgkill"], (pid, target, sig)) == RET_ALLOW
    if other != pid:
        assert run_filter(prog, ARG_CHECKED["tgkill"], (target, pid, sig)) == EPERM
        expected = RET_ALLOW if other == 0 else EPERM
        assert run_filter(prog, ARG_CHECKED["prlimit64"], (target, 7, 0, 0)) == expected


@given(family=st.integers(0, 50), kind=st.integers(0, 0xFFFFF), proto=st.integers(0, 300), inet=st.booleans())
@settings(max_examples=500)
def test_model_sockets(family: int, kind: int, proto: int, inet: bool) -> None:
    verdict = run_filter(seccomp_program(1234, inet), ARG_CHECKED["socket"], (family, kind, proto))
    if family == 1:
        assert verdict == RET_ALLOW
    elif not inet or family not in (2, 10, 16):
        assert verdict == EAFNOSUPPORT
    elif family == 16:
        assert verdict == (RET_ALLOW if proto == 0 else EPERM)
    else:
        assert verdict == (RET_ALLOW if kind & 0xF == 1 and proto in (0, 6) else EPERM)


@given(option=st.integers(0, (1 << 32) - 1), flags=u64)
@settings(max_examples=500)
def test_model_prctl_and_clone(option: int, flags: int) -> None:
    prog = seccomp_program(1234)
    expected = RET_ALLOW if option in PRCTL_ALLOWED else EPERM
    assert run_filter(prog, ARG_CHECKED["prctl"], (option, 1)) == expected
    low = flags & 0xFFFFFFFF
    thread = low & CLONE_THREAD and not low & CLONE_NAMESPACES
    assert run_filter(prog, ARG_CHECKED["clone"], (flags,)) == (RET_ALLOW if thread else EPERM)
    assert run_filter(prog, ARG_CHECKED["clone3"], (flags,)) == RET_ERRNO | errno.ENOSYS


@given(nr=st.integers(0, 1000))
def test_model_unlisted_calls_fail(nr: int) -> None:
    verdict = run_filter(seccomp_program(1234), nr)
    if nr in ALLOWED.values():
        assert verdict == RET_ALLOW
    elif nr not in ARG_CHECKED.values():
        assert verdict == EPERM
    assert run_filter(seccomp_program(1234), nr, arch=0x40000003) == 0x80000000  # i386: killed


def test_seccomp_program_shape() -> None:
    for inet in (False, True):
        prog = seccomp_program(os.getpid(), inet)
        assert len(prog) % 8 == 0 and len(prog) // 8 < 4096  # BPF_MAXINSNS
        for i in range(0, len(prog), 8):  # every jump is short and forward within the program
            code, jt, jf = prog[i] | prog[i + 1] << 8, prog[i + 2], prog[i + 3]
            if code & 0x07 == 0x05:  # BPF_JMP
                assert i // 8 + 1 + max(jt, jf) < len(prog) // 8
    denied = {"execve": 59, "execveat": 322, "ptrace": 101, "mount": 165, "bpf": 321, "unshare": 272,
              "setns": 308, "setuid": 105, "seccomp": 317, "init_module": 175, "process_vm_writev": 311,
              "io_uring_setup": 425, "keyctl": 250, "perf_event_open": 298, "fork": 57, "vfork": 58,
              "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
              "pidfd_open": 434, "process_madvise": 440}  # fmt: skip
    assert not set(denied.values()) & set(ALLOWED.values()) and not set(denied) & set(ALLOWED)
    assert not set(denied.values()) & set(ARG_CHECKED.values())
    assert not set(ALLOWED.values()) & set(ARG_CHECKED.values())
    assert len(set(ALLOWED.values())) == len(ALLOWED)


# -- a real filterd ---------------------------------------------------------------------------------
def control(path: str, cmd: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        return json.loads(s.makefile("rb").readline())


@pytest.fixture
def filterd_dir() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (filterd drops to the sysmon user)")
    d = Path(tempfile.mkdtemp(prefix="sysmon-sandbox-", dir="/run"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start_filterd(d: Path, *extra: str) -> subprocess.Popen[bytes]:
    cfg = d / "config.xml"
    cfg.write_text('<Sysmon schemaversion="4.90"><EventFiltering/></Sysmon>')
    cfg.chmod(0o644)
    args = ["--endpoint", f"ipc://{d}/nobody.sock", "--no-syslog", "--config", str(cfg),
            "--control-socket", str(d / "filterd.ctl"), "--state-dir", str(d / "state"), *extra]  # fmt: skip
    p = subprocess.Popen(
        [sys.executable, "-m", "filterd", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=open(d / "filterd.log", "wb"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while not (d / "filterd.ctl").exists():
        assert p.poll() is None and time.monotonic() < deadline, (d / "filterd.log").read_text()
        time.sleep(0.05)
    return p


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10)
    if p.poll() is None:
        p.kill()
        p.wait()


FORBIDDEN = {"exec": "EPERM", "exec_interpreter": "EPERM", "execve": "EPERM", "fork": "EPERM",
             "list_etc": "EACCES", "inet_udp": "EAFNOSUPPORT", "inet_tcp": "EAFNOSUPPORT",
             "inet6_udp": "EAFNOSUPPORT", "inet6_tcp": "EAFNOSUPPORT"}  # fmt: skip


def test_real_filterd_cannot_write_outside_its_state_nor_exec(filterd_dir: Path) -> None:
    p = start_filterd(filterd_dir)
    try:
        r = control(str(filterd_dir / "filterd.ctl"), "selftest")
        assert r["ok"] and r["sandbox"].startswith(f"landlock ABI {landlock_abi()}"), r
        assert r["write_state"] == "ok"
        assert r["write_outside"] == {"/tmp": "EACCES", "/var/tmp": "EACCES", "/dev/shm": "EACCES"}
        assert subset(r, FORBIDDEN) == FORBIDDEN
        # and it still works: the config (re-read on reload) and its state are reachable
        reloaded = control(str(filterd_dir / "filterd.ctl"), "reload")
        assert reloaded["ok"] and reloaded["hash"].startswith("SHA256="), reloaded
        assert p.poll() is None
    finally:
        stop(p)
    assert b"seccomp (unix only)" in (filterd_dir / "filterd.log").read_bytes()


def test_real_filterd_with_a_tcp_collector(filterd_dir: Path) -> None:
    keys = filterd_dir / "keys"
    collector_public, _ = make_pair(keys, "collector")
    _, filterd_secret = make_pair(keys, "filterd")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free now; nothing listens there during the test
    p = start_filterd(filterd_dir, "--endpoint", f"tcp://127.0.0.1:{port}={collector_public}",
                      "--curve-secret", str(filterd_secret))  # fmt: skip
    try:
        r = control(str(filterd_dir / "filterd.ctl"), "selftest")
        assert "tcp ports" in r["sandbox"] and "seccomp (unix, tcp)" in r["sandbox"], r
        assert r["inet_tcp"] == r["inet6_tcp"] == "EACCES"  # port 1 is no collector's
        assert r["inet_udp"] == r["inet6_udp"] == "EPERM"
        assert r["exec"] == r["execve"] == "EPERM" and set(r["write_outside"].values()) == {"EACCES"}
    finally:
        stop(p)


def test_no_sandbox_switch(filterd_dir: Path) -> None:
    p = start_filterd(filterd_dir, "--no-sandbox")
    try:
        r = control(str(filterd_dir / "filterd.ctl"), "selftest")
        assert r["sandbox"] == "none" and r["write_outside"]["/tmp"] == "ok", r
        assert r["exec"] == r["execve"] == r["fork"] == r["inet_udp"] == "ok", r  # the probes are real
        assert r["inet_tcp"] == "ECONNREFUSED"
    finally:
        stop(p)
