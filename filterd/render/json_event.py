"""One Sysmon event as one JSON object: the XML tree of filterd/render/xml.py, element for element.

Why a second format: SIEM shippers that cannot parse XML out of syslog read JSON lines from a
file. The layout mirrors the XML so nothing needs a new name (docs/operations.md, "JSON output"):

    {"System": {"Provider": {"Name": ..., "Guid": ...}, "EventID": 1, "Version": 5, "Level": 4,
                "Task": 1, "Opcode": 0, "Keywords": "0x8000000000000000",
                "TimeCreated": {"SystemTime": ...}, "EventRecordID": 7, "Correlation": {},
                "Execution": {"ProcessID": 9322, "ThreadID": 9322}, "Channel": ..., "Computer": ...,
                "Security": {"UserId": "0"}},
     "EventData": {"RuleName": "-", "UtcTime": ..., "ProcessGuid": ..., "ProcessId": 1234, ...}}

Values are the XML's values: the same strings (`-` for empty, cut at a NUL, FieldSizes already
applied by the pipeline), rendered from the very values, record id and time the XML renderer gets,
never by parsing XML. Types follow the manifest's inType: UInt16/UInt32/UInt64 fields are JSON
numbers (null when the XML says `-`), Boolean fields are true/false (null for `-`); GUIDs, times,
HexInt fields (GrantedAccess `0x1fffff`: JSON has no hex) and strings stay strings. A number field
whose text is not a number (never made by filterd) keeps its text, so no value is lost.
Security UserId stays a string as in Windows' Sysmon JSON (a SID there).

Hot path like the XML: per (header, event type) one generated function with a single f-string;
strings are quoted by the json module's C encoder.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Sequence

from filterd.render.timefmt import system_time
from filterd.render.xml import CHANNEL, SystemHeader, _descriptor
from filterd.schema import EventType

PROVIDER_NAME = "Linux-Sysmon"
PROVIDER_GUID = "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"

# Fields by manifest inType (schema 4.90; the same name has the same type in every event, and
# tests/filterd/render/test_json_event.py checks this table against sysmon_cli/manifest.xml).
INTEGER_FIELDS = frozenset({
    "ProcessId", "ParentProcessId", "SourceProcessId", "TargetProcessId", "SourceThreadId", "NewThreadId",
    "TerminalSessionId", "Session", "BpfProgramId", "SourcePort", "DestinationPort",
})  # fmt: skip
BOOLEAN_FIELDS = frozenset({"Initiated", "SourceIsIpv6", "DestinationIsIpv6", "IsExecutable"})

_quote: Callable[[str], str] = json.encoder.encode_basestring  # C: quotes, escapes " \ and < 0x20
_DIGITS = frozenset("0123456789")
_SPECIAL_TO_NUL = bytes(0 if b < 0x20 or b in b'"\\' else b for b in range(256))
_NUL = b"\x00"


def _number(text: str) -> str:
    """An integer field's XML text as JSON: the number, `null` for `-`, else the text as a string."""
    if text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
        return text  # what filterd makes: str(int)
    if not text or text == "-":
        return "null"
    digits = text[1:] if text[0] == "-" else text
    if digits and digits.isascii() and _DIGITS.issuperset(digits):
        return str(int(text))  # no leading zeros in JSON
    return _quote(text)


def _boolean(text: str) -> str:
    if text == "true" or text == "false":
        return text
    return "null" if not text or text == "-" else _quote(text)


def xml_value(value: str | None) -> str:
    """The value the XML shows for `value` (before escaping): cut at a NUL (C strings), `-` if empty."""
    if not value:
        return "-"
    nul = value.find("\x00")
    if nul >= 0:
        value = value[:nul]
    return value or "-"


def _computer(name: str) -> str:
    # xml.SystemHeader._tail: empty stays empty there, only a value cut to nothing by a NUL is `-`
    nul = name.find("\x00")
    return name if nul < 0 else (name[:nul] or "-")


def _lit(text: str) -> str:
    """`text` as literal content of a single-quoted Python f-string (braces doubled, anything not
    plain printable ASCII as a \\U escape)."""
    out = []
    for ch in text:
        if ch in "{}":
            out.append(ch * 2)
        elif ch in "\\'" or not " " <= ch <= "~":
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


Filler = Callable[[str, int, Sequence[str]], str]


def _compile(header: SystemHeader, etype: EventType) -> tuple[Filler, Filler]:
    """(fast, careful) fillers: the fast one puts string values between quotes as they are (for
    values without `"`, `\\` or control characters), the careful one through the JSON encoder."""
    version, level, task, keywords = _descriptor(etype)
    head = (
        f'{{"System":{{"Provider":{{"Name":{_quote(PROVIDER_NAME)},"Guid":{_quote(PROVIDER_GUID)}}},'
        f'"EventID":{etype.id},"Version":{version},"Level":{level},"Task":{task},"Opcode":0,'
        f'"Keywords":{_quote(keywords)},"TimeCreated":{{"SystemTime":"'
    )
    mid = '"},"EventRecordID":'
    tail = (
        f',"Correlation":{{}},"Execution":{{"ProcessID":{header.process_id},"ThreadID":{header.thread_id}}},'
        f'"Channel":{_quote(CHANNEL)},"Computer":{_quote(_computer(header.computer or ""))},'
        f'"Security":{{"UserId":{_quote(str(header.user_id))}}}}},"EventData":{{'
    )
    names = [f"v{i}" for i in range(len(etype.fields))]
    unpack = f"    {', '.join(names)}, = values\n" if names else "    () = values\n"
    fillers = []
    for careful in (False, True):
        pieces = []
        for v, field in zip(names, etype.fields, strict=True):
            if field in INTEGER_FIELDS:
                expr = "{n(" + v + ")}"
            elif field in BOOLEAN_FIELDS:
                expr = "{b(" + v + ")}"
            elif careful:
                expr = "{q(" + v + ' or "-")}'
            else:
                expr = '"{' + v + ' or "-"}"'
            pieces.append(_lit(_quote(field) + ":") + expr)
        text = _lit(head) + "{ts}" + _lit(mid) + "{rid}" + _lit(tail) + _lit(",").join(pieces) + "}}}}"
        src = f"def fill(ts, rid, values):\n{unpack}    return f'{text}'\n"
        namespace: dict[str, object] = {"q": _quote, "n": _number, "b": _boolean}
        exec(compile(src, f"<sysmon event {etype.id} json renderer>", "exec"), namespace)
        fillers.append(namespace["fill"])
    pair = (fillers[0], fillers[1])
    _fillers(header)[etype.id] = pair  # type: ignore[assignment]
    return pair  # type: ignore[return-value]


def _fillers(header: SystemHeader) -> dict[int, tuple[Filler, Filler]]:
    """The header's compiled fillers, kept in its instance dict beside the XML ones (the
    frozen dataclass forbids setattr, not its __dict__; __getstate__ leaves them out)."""
    d = header.__dict__.get("_json_formats")
    if d is None:
        d = header.__dict__["_json_formats"] = {}
    return d


def render_json(
    etype: EventType, values: Sequence[str | None], header: SystemHeader, record_id: int, now_ns: int
) -> str:
    """One event as one line of JSON (no newline), from what `xml.render_event` is given.

    `values` are the EventData values in `etype.fields` order; `now_ns` must be the time given to
    the XML renderer so both say the same TimeCreated. Raises ValueError on a wrong value count.
    The result may hold lone surrogates (raw non-UTF-8 bytes decoded with surrogateescape):
    `encode_line` turns it into valid UTF-8.
    """
    fast, careful = header.__dict__.get("_json_formats", {}).get(etype.id) or _compile(header, etype)
    try:
        joined = "".join(values)  # type: ignore[arg-type]
    except TypeError:  # None among the values
        values = [v or "" for v in values]
        joined = "".join(values)
    fill = fast
    # one C-speed pass: anything JSON must escape (NUL included) maps to NUL
    if _NUL in joined.encode("utf-8", "surrogatepass").translate(_SPECIAL_TO_NUL):
        fill = careful
        if "\x00" in joined:
            values = [xml_value(v) for v in values]
    try:
        return fill(system_time(now_ns), record_id, values)
    except ValueError:
        if len(values) != len(etype.fields):
            raise ValueError(
                f"event {etype.id} has {len(etype.fields)} fields, got {len(values)} values"
            ) from None
        raise


def encode_line(text: str) -> bytes:
    """`text` + newline as UTF-8. Raw bytes that are not UTF-8 (lone surrogates from
    surrogateescape) become U+FFFD: a JSON line must be valid UTF-8 for every reader."""
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte
        return (text + "\n").encode("utf-8", "replace")
    return raw.decode("utf-8", "replace").encode("utf-8") + b"\n"
