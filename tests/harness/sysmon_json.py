"""What a JSON line must hold, worked out from the XML of the same event and the manifest alone.

Independent of filterd/render/json_event.py on purpose: types come from sysmon_cli/manifest.xml
(the newest <manifest>), values from the XML as lxml reads it. `differences()` lists every field
where a JSON object and an XML event disagree, in value or in JSON type (1 and True, or 1 and "1",
are different here).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "sysmon_cli" / "manifest.xml"
INTEGER_TYPES = frozenset({"win:UInt8", "win:UInt16", "win:UInt32", "win:UInt64"})
_RSYSLOG_ESCAPED = re.compile(r"[\x00-\x08\x0a-\x1f]")


@functools.cache
def manifest_types() -> dict[int, dict[str, str]]:
    """event id -> {Data Name: inType} of the newest schema in the manifest."""
    newest = etree.parse(str(MANIFEST)).getroot().find("manifest")
    return {
        int(e.get("value")): {d.get("name"): d.get("inType") for d in e.iter("data")}
        for e in newest.iter("event")
    }


def typed(in_type: str, text: str) -> Any:
    """An EventData value as the JSON must carry it: numbers and booleans typed, `-` as null."""
    if in_type in INTEGER_TYPES:
        return None if text == "-" else int(text)
    if in_type == "win:Boolean":
        return {"true": True, "false": False, "-": None}[text]
    return text


def expected(xml: str | bytes) -> dict[str, Any]:
    """The JSON object for one XML event."""
    root = etree.fromstring(xml.encode("utf-8", "surrogateescape") if isinstance(xml, str) else xml)
    s = root.find("System")
    eid = int(s.findtext("EventID"))
    types = manifest_types()[eid]
    execution = s.find("Execution")
    system = {
        "Provider": {"Name": s.find("Provider").get("Name"), "Guid": s.find("Provider").get("Guid")},
        "EventID": eid,
        "Version": int(s.findtext("Version")),
        "Level": int(s.findtext("Level")),
        "Task": int(s.findtext("Task")),
        "Opcode": int(s.findtext("Opcode")),
        "Keywords": s.findtext("Keywords"),
        "TimeCreated": {"SystemTime": s.find("TimeCreated").get("SystemTime")},
        "EventRecordID": int(s.findtext("EventRecordID")),
        "Correlation": {},
        "Execution": {
            "ProcessID": int(execution.get("ProcessID")),
            "ThreadID": int(execution.get("ThreadID")),
        },
        "Channel": s.findtext("Channel"),
        "Computer": s.findtext("Computer") or "",
        "Security": {"UserId": s.find("Security").get("UserId")},
    }
    data = {d.get("Name"): typed(types[d.get("Name")], d.text or "") for d in root.find("EventData")}
    return {"System": system, "EventData": data}


def rsyslog_escaped(text: str) -> str:
    """`text` as rsyslog stores it with escapeControlCharactersOnReceive (TAB too: `#011`)."""
    return _RSYSLOG_ESCAPED.sub(lambda m: f"#{ord(m.group()):03o}", text).replace("\t", "#011")


def differences(obj: Any, want: Any, path: str = "", rsyslog: bool = False) -> list[str]:
    """Where `obj` (a parsed JSON line) and `want` (expected()) differ, with JSON types compared
    exactly and key order checked. With `rsyslog`, a JSON string may hold control characters
    that the XML read back from rsyslog shows escaped."""
    if isinstance(want, dict):
        if not isinstance(obj, dict):
            return [f"{path}: {obj!r} is not an object"]
        out = []
        if list(obj) != list(want):
            out.append(f"{path}: keys {list(obj)} != {list(want)}")
        for k in want:
            if k in obj:
                out += differences(obj[k], want[k], f"{path}/{k}", rsyslog)
        return out
    if type(obj) is not type(want):
        return [f"{path}: {obj!r} ({type(obj).__name__}) != {want!r} ({type(want).__name__})"]
    if obj != want and not (rsyslog and isinstance(obj, str) and rsyslog_escaped(obj) == want):
        return [f"{path}: {obj!r} != {want!r}"]
    return []
