"""The host context a filterd needs to render this host's events anywhere (topic b"host").

Hostname (Computer), machine id (GUID prefix), boot id and the boot epoch (kernel boot-time ns
-> wall clock), uid -> user name, and utmp logins (LogonGuid seconds). A remote filterd cannot
read this host's /etc/passwd or utmp, so they travel with the events.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
import time
from typing import Any

UTMP_PATH = "/var/run/utmp"
_UTMP = struct.Struct("<hxxi32s4s32s256s4xi ii 16s20x")  # glibc x86_64 struct utmp, 384 bytes
USER_PROCESS = 7


def boot_epoch_ns() -> int:
    """Wall-clock ns at kernel boot, measured against CLOCK_BOOTTIME (what the BPF side stamps)."""
    a = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    now = time.time_ns()
    b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return now - (a + b) // 2


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def users() -> dict[int, str]:
    return {p.pw_uid: p.pw_name for p in pwd.getpwall()}


def logins(path: str = UTMP_PATH) -> list[tuple[str, str, int]]:
    """(line, user, login seconds) of USER_PROCESS entries."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for off in range(0, len(data) - _UTMP.size + 1, _UTMP.size):
        ut = _UTMP.unpack_from(data, off)
        if ut[0] == USER_PROCESS:
            line = ut[2].split(b"\0", 1)[0].decode(errors="replace")
            user = ut[4].split(b"\0", 1)[0].decode(errors="replace")
            out.append((line, user, ut[7]))
    return out


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class HostContext:
    """Builds the context map and tells when its slowly changing parts changed."""

    def __init__(self, version: str) -> None:
        self.machine_id = _read_text("/etc/machine-id")
        self.boot_id = _read_text("/proc/sys/kernel/random/boot_id")
        self.origin = f"{self.machine_id}/{self.boot_id}"
        self.version = version
        self.started = time.monotonic()
        self._stamps: tuple[float, float] = (-1.0, -1.0)
        self._users: dict[int, str] = {}
        self._logins: list[tuple[str, str, int]] = []
        self.refresh()

    def refresh(self) -> bool:
        """Re-read passwd/utmp if they changed; True when the context changed."""
        stamps = (_mtime("/etc/passwd"), _mtime(UTMP_PATH))
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        self._users = users()
        self._logins = logins()
        return True

    def build(self, counters: dict[str, Any]) -> dict[str, Any]:
        return {
            "hostname": socket.gethostname(),
            "machine_id": self.machine_id,
            "boot_id": self.boot_id,
            "boot_epoch_ns": boot_epoch_ns(),
            "users": self._users,
            "logins": self._logins,
            "collector_version": self.version,
            "collector_pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "counters": counters,
        }
