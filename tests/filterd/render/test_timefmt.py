"""filterd/render/timefmt.py: the calendar for any second a file time can hold."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from filterd.render import timefmt


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_civil_agrees_with_gmtime(sec: int) -> None:
    try:
        t = time.gmtime(sec)
    except (OverflowError, OSError, ValueError):
        return
    if not 0 < t.tm_year <= 9999:
        return  # gmtime's own range; _civil is what serves beyond it
    assert timefmt._civil(sec) == (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}",
    )


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(0, 999_999_999))
def test_utc_time_never_raises(sec: int, ns: int) -> None:
    out = timefmt.utc_time(sec * 1_000_000_000 + ns)
    assert out.endswith(f".{ns // 1_000_000:03d}")
