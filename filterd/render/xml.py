"""Sysmon event XML, byte for byte as SysmonForLinux writes it to syslog.

Owns the exact text of one event: the `<System>` block (`outputxml.cpp FormatSyslogString`,
pugixml with `format_raw | format_no_declaration`: one line, no declaration, no whitespace,
no namespace) followed by `<EventData>` with one `<Data Name="...">` per schema field in
order. Rendering is on filterd's hot path, so everything that does not change per event is
precomputed: per (header, event type) one generated function whose single f-string holds all
markup, and values are only escaped when one C-speed pass over all of them (bytes.translate)
finds something pugixml would escape.

Text rules (as the real Sysmon for Linux writes them; tests/data/captured holds its output):
* a value that is None or "" is written as `-` (`EventSetFieldS`);
* PCDATA is escaped like pugixml's `text_output_escaped(ctx_special_pcdata)`: `&` `<` `>`
  become entities, TAB/LF/CR stay verbatim, other bytes < 0x20 become `&#NN;` (always two
  decimal digits, as pugixml writes them), and a NUL ends the value (C strings);
* `<TimeCreated SystemTime>` is the formatting time (µs precision, `000Z` suffix).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from filterd.render.timefmt import system_time
from filterd.schema import EventType

PROVIDER = '<Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
CHANNEL = "Linux-Sysmon/Operational"

# Anything pugixml would not copy verbatim into PCDATA (NUL included: it truncates).
_NEEDS_ESCAPE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f&<>]")
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f]")
# Byte table for the fast "anything to escape at all?" test (UTF-8 bytes >= 0x80 are never special).
_SPECIAL_TO_NUL = bytes(0 if (b < 0x20 and b not in (9, 10, 13)) or b in b"&<>" else b for b in range(256))
_CONTROL_TO_NUL = bytes(0 if b < 0x20 and b not in (9, 10, 13) else b for b in range(256))
_NUL = b"\x00"


def _control_ref(m: re.Match[str]) -> str:
    return f"&#{ord(m.group()):02d};"


def escape_text(value: str) -> str:
    """Escape one PCDATA value exactly like pugixml `format_raw` output (no `-` substitution)."""
    nul = value.find("\x00")
    if nul >= 0:
        value = value[:nul]
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return _CONTROL.sub(_control_ref, value)


def _escape_value(value: str) -> str:
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return escape_text(value) or "-"  # a value that was only a NUL prefix is empty in C too


def _escape_values(values: Sequence[str], joined: str) -> Sequence[str]:
    """Slow path of render_event: some value needs escaping. Escapes all values in one go by
    joining them with NUL (which cannot occur in them here and is never produced by escaping)."""
    if "\x00" in joined:  # C-string truncation needed: do it value by value
        return [_escape_value(v) if v else v for v in values]
    s = "\x00".join(values)
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if _NUL in joined.encode("utf-8", "surrogatepass").translate(_CONTROL_TO_NUL):
        s = _CONTROL.sub(_control_ref, s)
    return s.split("\x00")


@dataclass(frozen=True)
class SystemHeader:
    """The per-daemon part of `<System>`: whose host and process the event claims to come from.

    A remote filterd renders the origin host's Computer, so this is data, not gethostname().
    Not slotted on purpose: it caches its compiled format strings in its instance dict.
    """

    computer: str
    process_id: int
    thread_id: int
    user_id: int

    @classmethod
    def local(cls) -> SystemHeader:
        """This process as Sysmon would describe itself: hostname, pid, tid, euid."""
        return cls(socket.gethostname(), os.getpid(), threading.get_native_id(), os.geteuid())

    def __getstate__(self) -> dict[str, object]:
        # pickle/copy only the fields, not the compiled per-event-type fillers
        return {f: getattr(self, f) for f in ("computer", "process_id", "thread_id", "user_id")}

    @cached_property
    def _formats(self) -> dict[int, Callable[[str, int, Sequence[str]], str]]:
        # event id -> compiled filler (args: SystemTime, EventRecordID, values)
        return {}

    @cached_property
    def _tail(self) -> str:
        return (f'</EventRecordID><Correlation/><Execution ProcessID="{self.process_id}"'
                f' ThreadID="{self.thread_id}"/><Channel>{CHANNEL}</Channel>'
                f"<Computer>{_escape_value(self.computer or '')}</Computer>"
                f'<Security UserId="{self.user_id}"/></System>')


def _descriptor(etype: EventType) -> tuple[int, int, int, str]:
    """(Version, Level, Task, Keywords) of the event's EVENT_DESCRIPTOR."""
    if etype.id == 100:  # manifest.tt gives the Linux-only event an all-zero descriptor
        return 0, 0, 0, "0x0"
    return etype.version, (2 if etype.id == 255 else 4), etype.id, "0x8000000000000000"


def _lit(text: str) -> str:
    """`text` as literal content of a single-quoted Python f-string: braces doubled, anything that
    is not plain printable ASCII (quotes and backslash included) written as a \\U escape."""
    out = []
    for ch in text:
        if ch in "{}":
            out.append(ch * 2)
        elif ch in "\\'" or not " " <= ch <= "~":
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _compile(header: SystemHeader, etype: EventType) -> Callable[[str, int, Sequence[str]], str]:
    """Build, once per (header, event type), a function that fills all variable parts with a
    single f-string (one BUILD_STRING: the fastest way CPython has to join ~50 pieces)."""
    version, level, task, keywords = _descriptor(etype)
    head = (f"<Event><System>{PROVIDER}<EventID>{etype.id}</EventID><Version>{version}</Version>"
            f"<Level>{level}</Level><Task>{task}</Task><Opcode>0</Opcode>"
            f'<Keywords>{keywords}</Keywords><TimeCreated SystemTime="')
    names = [f"v{i}" for i in range(len(etype.fields))]
    body = "".join(_lit(f'<Data Name="{field}">') + f'{{{v} or "-"}}</Data>'
                   for v, field in zip(names, etype.fields, strict=True))
    unpack = f"    {', '.join(names)}, = values\n" if names else "    () = values\n"
    mid = '"/><EventRecordID>'
    src = (f"def fill(ts, rid, values):\n{unpack}"
           f"    return f'{_lit(head)}{{ts}}{_lit(mid)}{{rid}}"
           f"{_lit(header._tail)}<EventData>{body}</EventData></Event>'\n")
    namespace: dict[str, object] = {}
    exec(compile(src, f"<sysmon event {etype.id} renderer>", "exec"), namespace)
    fill = namespace["fill"]
    header._formats[etype.id] = fill  # type: ignore[assignment]
    return fill  # type: ignore[return-value]


def render_event(etype: EventType, values: Sequence[str], header: SystemHeader, record_id: int,
                 now_ns: int | None = None) -> str:
    """One Sysmon event as its exact XML text.

    `values` are the EventData values in `etype.fields` order, already formatted as strings;
    None / "" become `-` (prefer "" on the hot path: None costs an extra pass). `now_ns` is the
    formatting time (default: now) for TimeCreated. Raises ValueError on a wrong value count.
    """
    fill = header._formats.get(etype.id) or _compile(header, etype)
    try:
        joined = "".join(values)
    except TypeError:  # None among the values
        values = [v or "-" for v in values]
        joined = "".join(values)
    # One C-speed pass over all text: map every byte pugixml would escape to NUL, look for NUL.
    if _NUL in joined.encode("utf-8", "surrogatepass").translate(_SPECIAL_TO_NUL):
        values = _escape_values(values, joined)
    try:
        return fill(system_time(time.time_ns() if now_ns is None else now_ns), record_id, values)
    except ValueError:
        if len(values) != len(etype.fields):
            raise ValueError(f"event {etype.id} has {len(etype.fields)} fields, "
                             f"got {len(values)} values") from None
        raise
