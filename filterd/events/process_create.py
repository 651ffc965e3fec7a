"""Sysmon event 1, ProcessCreate, from a PROCESS_EXEC record (bpf/process.bpf.c).

Also the place where a process enters the cache: every exec is cached, even when the rules
exclude its event, because later events and children need it (upstream does the same).
Differences from upstream, on purpose: ParentCommandLine is the parent's full command line
(upstream keeps only argv[0] for parents it saw exec), and parents started before the monitor
are known (from the collector's snapshot) instead of `-`.
"""

from __future__ import annotations

import functools

from filterd.guid import ZERO_GUID
from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState
from filterd.state.process_cache import Process
from shared import records
from shared.decode import field_index, join_path

_F = {f.name: i for i, f in enumerate(records.PROCESS_EXEC.all_fields)}
FLAGS, PID, PPID, UID = _F["flags"], _F["pid"], _F["ppid"], _F["uid"]
SESSION, TTY, START, PSTART, END_CODE = (
    _F["sessionid"],
    _F["tty"],
    _F["start_ns"],
    _F["parent_start_ns"],
    _F["end_code"],
)
EXE_DEV, EXE_INO, EXE_CTIME = _F["exe_dev"], _F["exe_ino"], _F["exe_ctime"]
assert field_index(records.PROCESS_EXEC, "end_code") == END_CODE


def command_line(raw: bytes) -> str:
    """argv with NULs as single spaces, no quoting (upstream's N_LinuxCommandLine)."""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def cache_process(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> Process:
    flags = v[FLAGS]
    start_ns = v[START]
    proc = Process(
        pid=v[PID],
        start_ns=start_ns,
        start_s=(start_ns + host.boot_epoch_ns) // 1_000_000_000,
        machine_id=host.machine_id,
        image=join_path(strings[0], bool(flags & records.REC_F_EXE_TRUNC)),
        command_line=command_line(strings[2]),
        cwd=join_path(strings[1], bool(flags & records.REC_F_CWD_TRUNC)),
        uid=v[UID],
        end_code=v[END_CODE],
    )
    host.cache.put(proc)
    return proc


def build(host: HostState, proc: Process, v: tuple, hashes: str) -> tuple[str, ...]:
    user = host.user_name(proc.uid)
    tty = 0 if v[FLAGS] & records.REC_F_NO_TTY else v[TTY]
    parent = host.cache.get(v[PPID], v[PSTART])
    if parent is None:
        p_guid, p_image, p_cmd, p_user = ZERO_GUID, "", "", ""
    else:
        p_guid, p_image, p_cmd, p_user = (
            parent.guid,
            parent.image,
            parent.command_line,
            host.user_name(parent.uid),
        )
    return (
        "",  # RuleName
        utc_time(proc.start_ns + host.boot_epoch_ns),
        proc.guid,
        str(proc.pid),
        proc.image,
        "",
        "",
        "",
        "",
        "",  # FileVersion, Description, Product, Company, OriginalFileName
        proc.command_line,
        proc.cwd,
        user,
        host.logon_guid(tty, proc.uid, user),
        str(proc.uid & 0xFFFF),  # LogonId
        str(v[SESSION]),  # TerminalSessionId
        "no level",
        hashes,
        p_guid,
        str(v[PPID]),
        p_image,
        p_cmd,
        p_user,
    )


@functools.lru_cache(maxsize=1024)
def format_hashes(mask: int, digests: bytes, wanted: tuple[str, ...]) -> str:
    """IMAGE_HASH digests -> `SHA1=..,MD5=..,SHA256=..` for the algorithms the config names."""
    out, pos = [], 0
    for bit, name, size in records.HASH_ORDER:
        if mask & bit:
            if name in wanted:
                out.append(f"{name}={digests[pos : pos + size].hex()}")
            pos += size
    return ",".join(out)
