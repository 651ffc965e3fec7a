"""Sysmon timestamp strings: event `UtcTime` and the `<TimeCreated SystemTime=...>` attribute.

Owned here because both are on the hot path (every event renders at least two) and both must
match Sysmon byte for byte: `UtcTime` is `%04u-%02u-%02u %02u:%02u:%02u.%03u` UTC with the
milliseconds truncated (`TimestampFormat`), `SystemTime` is `...T...%09uZ` built from a
microsecond clock, so its last three digits are always `000` (`LargeIntegerToSystemTimeString`).
The expensive part (calendar conversion) is done once per second and cached.
"""

from __future__ import annotations

import time

_NS_PER_S = 1_000_000_000

# Tiny caches keyed by whole epoch seconds. Events are roughly time ordered, so a handful of
# distinct seconds is live at any moment; the dicts are cleared when they grow past the bound.
_CACHE_MAX = 256
_utc_prefix: dict[int, str] = {}
_sys_prefix: dict[int, str] = {}


def _calendar(sec: int) -> tuple[str, str]:
    try:
        t = time.gmtime(sec)
    except (OverflowError, OSError, ValueError):  # a file time any user can set: any s64
        return _civil(sec)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")


def _civil(sec: int) -> tuple[str, str]:
    """Proleptic Gregorian date of any integer second (H. Hinnant's civil_from_days)."""
    days, rem = divmod(sec, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (m <= 2)
    h, rem = divmod(rem, 3600)
    return f"{y:04d}-{m:02d}-{d:02d}", f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"


def _new_utc_prefix(sec: int) -> str:
    if len(_utc_prefix) >= _CACHE_MAX:
        _utc_prefix.clear()
    day, hms = _calendar(sec)
    p = _utc_prefix[sec] = f"{day} {hms}."
    return p


def _new_sys_prefix(sec: int) -> str:
    if len(_sys_prefix) >= _CACHE_MAX:
        _sys_prefix.clear()
    day, hms = _calendar(sec)
    p = _sys_prefix[sec] = f"{day}T{hms}."
    return p


def utc_time(epoch_ns: int) -> str:
    """`YYYY-MM-DD HH:MM:SS.mmm` (UTC, milliseconds truncated) for an epoch time in ns."""
    sec, ns = divmod(epoch_ns, _NS_PER_S)  # floor: pre-1970 times still truncate downwards
    p = _utc_prefix.get(sec) or _new_utc_prefix(sec)
    return f"{p}{ns // 1_000_000:03d}"


def system_time(epoch_ns: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.uuuuuu000Z` (UTC, microsecond precision padded to 9 digits)."""
    sec, ns = divmod(epoch_ns, _NS_PER_S)
    p = _sys_prefix.get(sec) or _new_sys_prefix(sec)
    return f"{p}{ns // 1000:06d}000Z"
