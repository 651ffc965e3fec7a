"""Dropping root: filterd handles data from the monitored host and from the network, so it must
not keep any privilege. Started as root (systemd without User=, or the foreground runner), it
opens what it needs first (state files, syslog socket) and then becomes its own user for good.
"""

from __future__ import annotations

import ctypes
import os
import pwd

PR_SET_NO_NEW_PRIVS = 38


def no_new_privs() -> None:
    """execve can never grant privileges again (setuid binaries, file capabilities)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def drop_to(user: str) -> None:
    """Become `user` (uid, primary gid, no supplementary groups) irrevocably."""
    pw = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("still root after setuid")


def user_ids(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid
