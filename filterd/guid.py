"""Sysmon ProcessGuid / LogonGuid strings (`SysmonCommon:eventsCommon.cpp GenerateUniqueId`).

A Sysmon GUID is 16 little-endian bytes `DWORD machineId | DWORD seconds | DWORD64 key`
printed as a Windows GUID (`StringFromGUID2`, lower-case). Owned here so that the
correlator (process cache) and the renderer agree on one implementation:

* ProcessGuid: seconds = process start time (whole epoch seconds), key = `mm->end_code`
  (0 for kernel threads). The pid is not part of it.
* LogonGuid: seconds = utmp login time (0 if none), key = `(tty_index << 32) | uid`.
* machine id = `strtol(first 8 chars of /etc/machine-id, NULL, 16)`, 0 if unreadable.
"""

from __future__ import annotations

ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_HEX = frozenset("0123456789abcdefABCDEF")


def _guid(machine_id: int, seconds: int, key: int) -> str:
    # Data1 = machine id, Data2/Data3 = low/high half of seconds, Data4 = key bytes in LE order.
    s = seconds & _M32
    k = (key & _M64).to_bytes(8, "little").hex()
    return f"{{{machine_id & _M32:08x}-{s & 0xFFFF:04x}-{s >> 16:04x}-{k[:4]}-{k[4:]}}}"


def process_guid(machine_id: int, start_seconds: int, end_code: int) -> str:
    """ProcessGuid from the machine id, the process start time (epoch s) and `mm->end_code`."""
    return _guid(machine_id, start_seconds, end_code)


def logon_guid(machine_id: int, logon_seconds: int, tty: int, uid: int) -> str:
    """LogonGuid from the machine id, the utmp login time, the tty index and the uid."""
    return _guid(machine_id, logon_seconds, ((tty & _M32) << 32) | (uid & _M32))


def machine_id_from(text: str) -> int:
    """The GUID machine id from /etc/machine-id content: C `strtol(first 8 chars, 16)` as a DWORD.

    Like strtol: leading whitespace, a sign and a `0x` prefix are accepted, parsing stops at the
    first non-hex character, and no digits at all gives 0.
    """
    s = text[:8].lstrip(" \t\n\v\f\r")
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s[:2] in ("0x", "0X") and s[2:3] in _HEX:
        s = s[2:]
    n = 0
    for ch in s:
        if ch not in _HEX:
            break
        n = n * 16 + int(ch, 16)
    return (-n if neg else n) & _M32
