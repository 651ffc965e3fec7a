"""MARKER: the collector's answer to a drain request (`mark/<token>`, filterd/receiver.py).

Everything the kernel produced before it has been published, so once filterd has handled it,
every event before it is written. Tests and benchmarks wait on this instead of sleeping
(`sysmonctl` control request `mark`, then the `markers` of `stats`).
"""

from __future__ import annotations

from filterd.state.hosts import HostState
from shared import records
from shared.decode import field_index

from .registry import Tracks

TOKEN = field_index(records.MARKER, "token")


def track_marker(host: HostState, v: tuple, strings: tuple[bytes, ...]) -> None:
    host.marker = v[TOKEN]


DECLARATIONS = (Tracks(records.MARKER, track_marker),)
