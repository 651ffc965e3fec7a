"""Where rendered events go. Every sink counts what it delivered and what it lost, and never
raises into the pipeline on a delivery error (the pipeline reports the drops as event 255).

Two kinds, both declared here so the pipeline needs no probing:
* `Sink` takes the rendered XML, a batch at a time: `syslog.SyslogSink` (what Sysmon does:
  syslog(3) to /dev/log, one datagram per event, sendmmsg per batch), `stdout.StdoutSink`
  (foreground runs) and the control socket's tail hub;
* `ValueSink` renders its own format from the values the XML was rendered from:
  `json_lines.JsonSink`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


class Sink(Protocol):
    """Takes each event's XML (one line, no trailing newline)."""

    sent: int  # events delivered
    dropped: int  # events lost: counted, reported in-band by the pipeline

    def send_many(self, xmls: list[str]) -> None:
        """Deliver a batch of events, in order."""
        ...

    def close(self) -> None:
        """Release the underlying resource (idempotent)."""
        ...


@runtime_checkable
class ValueSink(Protocol):
    """Takes each event's values (filterd.pipeline's event tuples) and renders them itself."""

    sent: int
    dropped: int

    def send_events(self, events: Sequence[Any]) -> None: ...

    def close(self) -> None: ...
