"""PROCESS_EXEC records (flag REC_F_SNAPSHOT) for the processes running when a filterd subscribes.

Why: a process started before the monitor is the parent of later ones; without this its
children would show `-` parents, as upstream Sysmon does. Read on the collector's own host, as
root, and sent in the same record layout as the kernel's so filterd needs no /proc.
/proc gives the start time in clock ticks, so filterd matches it with a one-tick tolerance.
"""

from __future__ import annotations

import os

from shared import records
from shared.decode import encode, split_path

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, tty_nr, start_ns, end_code) from /proc/<pid>/stat."""
    try:
        raw = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()
    return int(rest[1]), int(rest[4]), int(rest[19]) * _TICK_NS, int(rest[24])


def _int_file(path: str, default: int) -> int:
    try:
        return int(_read(path))
    except (OSError, ValueError):
        return default


def snapshot_records() -> list[bytes]:
    """One record per running user-space process, parents before children where possible."""
    stats: dict[int, tuple[int, int, int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None:
            stats[int(name)] = st
    out = []
    for pid in sorted(stats, key=lambda p: stats[p][2]):
        ppid, tty_nr, start_ns, end_code = stats[pid]
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            args = _read(f"/proc/{pid}/cmdline")
        except OSError:
            continue  # kernel thread, or gone
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        uid = gid = 0xFFFFFFFF
        try:
            for line in _read(f"/proc/{pid}/status").splitlines():
                if line.startswith(b"Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith(b"Gid:"):
                    gid = int(line.split()[1])
        except OSError:
            continue
        flags = records.REC_F_SNAPSHOT | (0 if tty_nr else records.REC_F_NO_TTY)
        parent = stats.get(ppid)
        out.append(
            encode(
                records.PROCESS_EXEC,
                (split_path(exe), split_path(cwd), args[: records.ARGS_MAX_BYTES - 1]),
                flags=flags,
                time_ns=start_ns,
                pid=pid,
                tid=pid,
                ppid=ppid,
                uid=uid,
                gid=gid,
                auid=_int_file(f"/proc/{pid}/loginuid", 0xFFFFFFFF) & 0xFFFFFFFF,
                sessionid=_int_file(f"/proc/{pid}/sessionid", 0xFFFFFFFF) & 0xFFFFFFFF,
                tty=os.minor(tty_nr) if tty_nr else 0,
                start_ns=start_ns,
                parent_start_ns=parent[2] if parent else 0,
                end_code=end_code,
            )
        )
    return out
