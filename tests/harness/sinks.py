"""A sink for pipeline tests: keeps every event's XML in a list (filterd.sink.Sink protocol)."""

from __future__ import annotations


class ListSink:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sent = 0
        self.dropped = 0

    def send_many(self, xmls: list[str]) -> None:
        self.lines.extend(xmls)
        self.sent += len(xmls)

    def close(self) -> None:
        pass
