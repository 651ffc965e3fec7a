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

from .registry import EventData, Options, Produces, Tracks, event_data

FLAGS, PID, PPID, UID, SESSION, TTY, START, PSTART, END_CODE, EXE_DEV, EXE_INO, EXE_CTIME = (
    field_index(records.PROCESS_EXEC, n)
    for n in ("flags", "pid", "ppid", "uid", "sessionid", "tty", "start_ns", "parent_start_ns", "end_code")
    + ("exe_dev", "exe_ino", "exe_ctime")
)
H_INO, H_CTIME, H_DEV, H_ALGOS = (
    field_index(records.IMAGE_HASH, n) for n in ("exe_ino", "exe_ctime", "exe_dev", "algos")
)
MAX_IMAGE_HASHES = 8192  # file identities remembered per host
ProcessCreate = event_data(
    1,
    # PE version resources do not exist on Linux; no integrity levels; Hashes empty until known
    FileVersion="",
    Description="",
    Product="",
    Company="",
    OriginalFileName="",
    IntegrityLevel="no level",
    groups={"Parent": ("ParentProcessGuid", "ParentImage", "ParentCommandLine", "ParentUser")},
)
Parent = ProcessCreate.Parent  # the parent's four fields, one argument (see event_data's groups)
NO_PARENT = Parent(ParentProcessGuid=ZERO_GUID, ParentImage="", ParentCommandLine="", ParentUser="")


def command_line(raw: bytes) -> str:
    """argv with NULs as single spaces, no quoting (upstream's N_LinuxCommandLine)."""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def cache_process(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> Process:
    """Every exec enters the cache, snapshot or not, logged or not: later events need it."""
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


def build(host: HostState, v: tuple, strings: tuple[bytes, ...], opts: Options, proc: Process) -> EventData:
    """`proc`: what cache_process (the PROCESS_EXEC tracker) made of this record."""
    known = host.image_hashes.get((v[EXE_DEV], v[EXE_INO], v[EXE_CTIME]))
    user = host.user_name(proc.uid)
    tty = 0 if v[FLAGS] & records.REC_F_NO_TTY else v[TTY]
    parent = host.cache.get(v[PPID], v[PSTART])
    if parent is not None:
        parent_fields = Parent(
            ParentProcessGuid=parent.guid,
            ParentImage=parent.image,
            ParentCommandLine=parent.command_line,
            ParentUser=host.user_name(parent.uid),
        )
    else:
        parent_fields = NO_PARENT
    return ProcessCreate(
        UtcTime=utc_time(proc.start_ns + host.boot_epoch_ns),
        ProcessGuid=proc.guid,
        ProcessId=str(proc.pid),
        Image=proc.image,
        CommandLine=proc.command_line,
        CurrentDirectory=proc.cwd,
        User=user,
        LogonGuid=host.logon_guid(tty, proc.uid, user),
        LogonId=str(proc.uid & 0xFFFF),
        TerminalSessionId=str(v[SESSION]),
        Hashes=format_hashes(known[0], known[1], opts.hash_algorithms) if known else "",
        ParentProcessId=str(v[PPID]),
        Parent=parent_fields,
    )


def remember_hash(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> None:
    """IMAGE_HASH: the collector sends a file identity's digests once, before its first exec."""
    hashes = host.image_hashes
    if len(hashes) >= MAX_IMAGE_HASHES:
        hashes.pop(next(iter(hashes)))
    hashes[(v[H_DEV], v[H_INO], v[H_CTIME])] = (v[H_ALGOS], strings[0])


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


DECLARATIONS = (
    Tracks(records.PROCESS_EXEC, cache_process),
    Produces(1, records.PROCESS_EXEC, build),
    Tracks(records.IMAGE_HASH, remember_hash),
)
