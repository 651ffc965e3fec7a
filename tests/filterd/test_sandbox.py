"""filterd's self-sandbox, applied for real in a child process: writes outside the state
directory and exec both fail; the state directory stays writable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from filterd.sandbox import ALLOWED_SYSCALLS, landlock_abi, seccomp_program

CHILD = r"""
import os, sys
from filterd.privileges import no_new_privs
from filterd.sandbox import confine
state, outside = sys.argv[1], sys.argv[2]
no_new_privs()
c = confine(readable=[], writable=[state])
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return f"errno {e.errno}"
print("landlock", c.landlock_abi)
print("write-state", attempt(lambda: open(os.path.join(state, "x"), "w").write("1")))
print("write-outside", attempt(lambda: open(outside, "w").write("1")))
print("exec", attempt(lambda: os.execv("/bin/true", ["true"])))
print("read-etc", attempt(lambda: open("/etc/hostname").read()))
"""


def test_write_outside_and_exec_fail_inside_the_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    outside = tmp_path / "elsewhere.txt"
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(state), str(outside)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=dict(os.environ, PYTHONPATH="."),
    )
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert int(out["landlock"]) == landlock_abi() > 0
    assert out["write-state"] == "ok"
    assert out["write-outside"] == "errno 13"  # EACCES from Landlock
    assert out["exec"] == "errno 1"  # EPERM from seccomp
    assert out["read-etc"] == "ok"
    assert not outside.exists()


def test_seccomp_program_shape() -> None:
    prog = seccomp_program()
    assert len(prog) % 8 == 0 and len(prog) // 8 == len(ALLOWED_SYSCALLS) + 7
    for denied in (59, 322, 101, 165, 321, 105, 272):  # execve(at), ptrace, mount, bpf, setuid, unshare
        assert denied not in ALLOWED_SYSCALLS
