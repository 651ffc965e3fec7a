"""filterd's self-sandbox, for real: in a child process, and in a real filterd (started as root,
dropped to `sysmon`) asked through its control socket to try what it must not be able to do."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from filterd.sandbox import ALLOWED, landlock_abi, seccomp_program

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import ctypes, json, os, socket, sys
from filterd.privileges import no_new_privs
from filterd.sandbox import confine, selftest
state, outside, listener = sys.argv[1:4]
no_new_privs()
c = confine(readable=[], writable=[state], tcp_ports=[])
libc = ctypes.CDLL(None, use_errno=True)
def attempt(f):
    try:
        r = f()
        return "ok" if r is None or r >= 0 else f"errno {ctypes.get_errno()}"
    except OSError as e:
        return f"errno {e.errno}"
def unix_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(listener)
    s.close()
out = dict(selftest(state))
out.update({
    "abi": c.landlock_abi, "seccomp": c.seccomp, "mdwe": c.mdwe,
    "write_outside_given": attempt(lambda: open(outside, "w").write("1") and None),
    "read_passwd": attempt(lambda: open("/etc/passwd").read() and None),
    "read_hostname": attempt(lambda: open("/etc/hostname").read() and None),
    "unshare_user": attempt(lambda: libc.unshare(0x10000000)),
    "ptrace": attempt(lambda: libc.ptrace(16, os.getppid(), 0, 0)),  # PTRACE_ATTACH
    "packet_socket": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()),
    "tcp_connect": attempt(lambda: socket.create_connection(("127.0.0.1", 9), 1)),
    "unix_connect": attempt(unix_connect),
    "signal_parent": attempt(lambda: os.kill(os.getppid(), 0)),
    "thread": attempt(lambda: __import__("threading").Thread(target=int).start()),
})
print(json.dumps(out))
"""


def test_confine_in_a_child(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    outside = tmp_path / "elsewhere.txt"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "l.sock"))
    listener.listen(1)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(state), str(outside), str(tmp_path / "l.sock")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    listener.close()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["abi"] == landlock_abi() > 0 and out["seccomp"] and out["mdwe"]
    assert out["write_state"] == "ok"
    assert out["write_outside"] == "EACCES" and out["write_outside_given"] == "errno 13"  # Landlock
    assert out["exec"] == "EPERM"  # seccomp (Landlock would say EACCES)
    assert out["list_etc"] == "EACCES"  # /etc: only named files
    assert out["read_passwd"] == "ok" and out["read_hostname"] == "errno 13"
    assert out["unshare_user"] == out["ptrace"] == "errno 1"
    assert out["packet_socket"] == "errno 97"  # EAFNOSUPPORT
    assert out["tcp_connect"] == "errno 13"  # Landlock ABI >= 4: no port allowed
    assert out["signal_parent"] == "errno 1"  # Landlock ABI >= 6 signal scope
    assert out["unix_connect"] == "ok"  # path-named AF_UNIX: not governed by Landlock on this ABI
    assert out["thread"] == "ok"  # clone() without namespace flags still works
    assert not outside.exists()


def test_confine_refuses_once_threads_run() -> None:
    code = (
        "import threading, time; from filterd.sandbox import confine\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "try:\n    confine([], [])\nexcept RuntimeError as e:\n    print('refused', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.stdout.startswith("refused"), r.stderr


def test_seccomp_program_shape() -> None:
    prog = seccomp_program()
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096  # BPF_MAXINSNS
    # every jump is short and forward within the program
    for i in range(0, len(prog), 8):
        code, jt, jf = prog[i] | prog[i + 1] << 8, prog[i + 2], prog[i + 3]
        if code & 0x07 == 0x05:  # BPF_JMP
            assert i // 8 + 1 + max(jt, jf) < len(prog) // 8
    denied = {"execve": 59, "execveat": 322, "ptrace": 101, "mount": 165, "bpf": 321, "unshare": 272,
              "setns": 308, "setuid": 105, "seccomp": 317, "init_module": 175, "process_vm_writev": 311,
              "io_uring_setup": 425, "keyctl": 250, "perf_event_open": 298, "clone3": 435}  # fmt: skip
    assert not set(denied.values()) & set(ALLOWED.values()) and not set(denied) & set(ALLOWED)
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


def test_real_filterd_cannot_write_outside_its_state_nor_exec(filterd_dir: Path) -> None:
    p = start_filterd(filterd_dir)
    try:
        r = control(str(filterd_dir / "filterd.ctl"), "selftest")
        assert r["ok"] and r["sandbox"].startswith(f"landlock ABI {landlock_abi()}"), r
        assert r["write_state"] == "ok"
        assert r["write_outside"] == "EACCES"  # /tmp is world-writable: only Landlock stops it
        assert r["exec"] == "EPERM"
        assert r["list_etc"] == "EACCES"
        # and it still works: the config (re-read on reload) and its state are reachable
        reloaded = control(str(filterd_dir / "filterd.ctl"), "reload")
        assert reloaded["ok"] and reloaded["hash"].startswith("SHA256="), reloaded
        assert p.poll() is None
    finally:
        stop(p)
    assert b"sandbox: landlock ABI" in (filterd_dir / "filterd.log").read_bytes()


def test_no_sandbox_switch(filterd_dir: Path) -> None:
    p = start_filterd(filterd_dir, "--no-sandbox")
    try:
        r = control(str(filterd_dir / "filterd.ctl"), "selftest")
        assert r["sandbox"] == "none" and r["write_outside"] == "ok" and r["exec"] == "ok", r
    finally:
        stop(p)
