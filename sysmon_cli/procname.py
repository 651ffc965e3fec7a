"""Make the supervisor findable as `sysmon` (`pgrep -x sysmon`, `ps`), as upstream's daemon is.

Two layers: the supervisor is exec'd through a symlink named `sysmon` to the Python interpreter
(`<home>/sysmon`, where upstream keeps its binary), so the kernel sets comm and argv[0] from it;
and writing /proc/self/comm (what PR_SET_NAME does) sets it again in case it was started some
other way. Rewriting the whole
/proc/<pid>/cmdline would need CAP_SYS_RESOURCE (PR_SET_MM), which we do not rely on.

A Python started through that symlink does not see a virtualenv's site-packages (the venv is
found next to argv[0]), so `python_env` hands the current import path down in PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from sysmon_cli.paths import PACKAGE_ROOT


def set_process_name(name: str) -> None:
    """Set the main thread's comm (at most 15 bytes): no ctypes, no ldconfig lookup, in a
    process that stays small."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as f:
        f.write(name.encode()[:15])


def python_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python that must import exactly what this one imports."""
    out = dict(os.environ if env is None else env)
    paths = [str(PACKAGE_ROOT)] + [p for p in sys.path[1:] if p and p != str(PACKAGE_ROOT)]
    out["PYTHONPATH"] = os.pathsep.join(paths)
    return out


def named_interpreter(directory: Path, name: str = "sysmon") -> Path:
    """A symlink `directory/name` -> the running interpreter, (re)created atomically."""
    link = directory / name
    target = os.path.realpath(sys.executable)
    if os.path.islink(link) and os.readlink(link) == target:
        return link
    tmp = directory / f".{name}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link
