"""Event sink for foreground runs: each event as one line on stdout.

Writes bytes (UTF-8, with surrogate-escaped raw bytes restored) so that values decoded from
non-UTF-8 kernel strings come out exactly as the kernel had them, like Sysmon's syslog bytes.
"""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO


class StdoutSink:
    """Write each event + "\\n" to a binary stream (default: stdout), flushing per event."""

    def __init__(self, stream: BinaryIO | None = None, flush: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._flush = flush
        self.sent = 0
        self.dropped = 0

    def send(self, xml: str) -> None:
        try:
            data = xml.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = xml.encode("utf-8", "replace")
        try:
            self._stream.write(data + b"\n")
            if self._flush:
                self._stream.flush()
        except (OSError, ValueError):  # broken pipe, closed stream: count, never raise
            self.dropped += 1
            return
        self.sent += 1

    def send_many(self, xmls: list[str]) -> None:
        for x in xmls:
            self.send(x)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
