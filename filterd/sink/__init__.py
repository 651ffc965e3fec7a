"""Where rendered events go: one complete Sysmon XML string per `send()`.

Implementations: `syslog.SyslogSink` (what Sysmon does: syslog(3) to /dev/log) and
`stdout.StdoutSink` (foreground runs). `json_lines.JsonSink` renders its own format instead: it
has `send_events()`, which the pipeline calls with the values the XML was rendered from. A sink
never raises into the pipeline on transient delivery errors; it counts them.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    """The output interface filterd's pipeline writes to."""

    def send(self, xml: str) -> None:
        """Deliver one event (one line of XML, no trailing newline)."""
        ...

    def close(self) -> None:
        """Release the underlying resource (idempotent)."""
        ...
