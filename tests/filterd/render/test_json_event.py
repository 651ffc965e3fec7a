"""filterd.render.json_event: the JSON line of every event type against the XML of the same values.

Both renderers get the same values, header, record id and time; the XML is parsed with lxml and
tests/harness/sysmon_json.py says, from the XML and the manifest alone, what the JSON must hold
(numbers as numbers, booleans as booleans, `-` of those as null, everything else the XML's text).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.render.json_event import (
    BOOLEAN_FIELDS,
    INTEGER_FIELDS,
    encode_line,
    render_json,
    xml_value,
)
from filterd.render.xml import SystemHeader, render_event
from filterd.schema import BY_ID, EVENT_TYPES, EventType
from tests.harness.sysmon_json import INTEGER_TYPES, differences, expected, manifest_types

TESTS = Path(__file__).resolve().parents[2]
CASES = json.loads((TESTS / "golden" / "xml" / "cases.json").read_text())
HDR = SystemHeader("vm", 9322, 9322, 0)
NOW = 1795340944003231000

# Text XML 1.0 can carry and lxml reads back unchanged: no surrogates, no U+FFFE/FFFF, no CR
# (parsers turn it into LF), no C0 controls but TAB and LF (pugixml writes those as &#NN;,
# which XML 1.0 forbids). NUL is allowed: both renderers cut the value there.
XML_SAFE = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters="".join(chr(c) for c in range(1, 32) if c not in (9, 10)) + "\r\ufffe\uffff",
)
TEXT = st.one_of(st.none(), st.just(""), st.just("-"), st.text(XML_SAFE, max_size=40))
UINT_MAX = {"win:UInt8": 0xFF, "win:UInt16": 0xFFFF, "win:UInt32": 0xFFFFFFFF, "win:UInt64": 2**64 - 1}


def value_strategy(in_type: str) -> st.SearchStrategy[str | None]:
    if in_type in INTEGER_TYPES:
        return st.one_of(st.integers(0, UINT_MAX[in_type]).map(str), st.sampled_from(["-", ""]))
    if in_type == "win:Boolean":
        return st.sampled_from(["true", "false", "-", ""])
    if in_type == "win:GUID":
        return st.one_of(st.uuids().map(lambda u: "{" + str(u) + "}"), st.just("-"))
    return TEXT


def values_for(etype: EventType) -> st.SearchStrategy[list[str | None]]:
    types = manifest_types()[etype.id]
    return st.tuples(*(value_strategy(types[f]) for f in etype.fields)).map(list)


HEADERS = st.builds(
    SystemHeader,
    st.one_of(st.just("vm"), st.just(""), st.text(XML_SAFE, max_size=20)),
    st.integers(0, 2**22),
    st.integers(0, 2**22),
    st.integers(0, 2**32 - 1),
)


def both(etype: EventType, values: list, header: SystemHeader, rid: int, now: int) -> tuple[dict, str]:
    xml = render_event(etype, values, header, rid, now)
    line = encode_line(render_json(etype, values, header, rid, now))
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the values hold
    return json.loads(line), xml


@pytest.mark.parametrize("etype", EVENT_TYPES, ids=[f"event{e.id}" for e in EVENT_TYPES])
@settings(max_examples=60, deadline=None)
@given(data=st.data(), header=HEADERS, rid=st.integers(1, 2**63), now=st.integers(0, 2**62))
def test_every_event_type_matches_the_xml(
    etype: EventType, data: st.DataObject, header: SystemHeader, rid: int, now: int
) -> None:
    values = data.draw(values_for(etype))
    obj, xml = both(etype, values, header, rid, now)
    assert differences(obj, expected(xml)) == []


@pytest.mark.parametrize("etype", EVENT_TYPES, ids=[f"event{e.id}" for e in EVENT_TYPES])
def test_numbers_are_numbers(etype: EventType) -> None:
    types = manifest_types()[etype.id]
    values = ["12345" if types[f] in INTEGER_TYPES else "true" if types[f] == "win:Boolean" else f"v-{f}"
              for f in etype.fields]  # fmt: skip
    obj, xml = both(etype, values, HDR, 77, NOW)
    assert differences(obj, expected(xml)) == []
    sysd = obj["System"]
    assert sysd["EventID"] == etype.id and type(sysd["EventRecordID"]) is int and sysd["EventRecordID"] == 77
    assert sysd["Execution"] == {"ProcessID": 9322, "ThreadID": 9322}
    assert sysd["Security"] == {"UserId": "0"}  # a SID on Windows: a string
    for f in etype.fields:
        want = 12345 if f in INTEGER_FIELDS else True if f in BOOLEAN_FIELDS else f"v-{f}"
        assert obj["EventData"][f] == want and type(obj["EventData"][f]) is type(want), f


def test_type_tables_follow_the_manifest() -> None:
    for eid, types in manifest_types().items():
        for name, in_type in types.items():
            assert (name in INTEGER_FIELDS) == (in_type in INTEGER_TYPES), (eid, name, in_type)
            assert (name in BOOLEAN_FIELDS) == (in_type == "win:Boolean"), (eid, name, in_type)
    assert {e.id for e in EVENT_TYPES} == set(manifest_types())


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_captured_events(case: dict) -> None:
    """Values of events captured from the real Sysmon (tests/golden/xml): JSON against that XML."""
    header = SystemHeader(**case["header"])
    etype = BY_ID[case["event_id"]]
    obj, xml = both(etype, case["values"], header, case["record_id"], case["now_ns"])
    golden = (TESTS / "golden" / "xml" / case["file"]).read_text().rstrip("\n")
    assert xml == golden
    assert differences(obj, expected(golden)) == []


def test_process_create_layout() -> None:
    case = next(c for c in CASES if c["event_id"] == 1)
    obj, _ = both(BY_ID[1], case["values"], SystemHeader(**case["header"]), case["record_id"], case["now_ns"])
    assert obj["System"] == {
        "Provider": {"Name": "Linux-Sysmon", "Guid": "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"},
        "EventID": 1, "Version": 5, "Level": 4, "Task": 1, "Opcode": 0, "Keywords": "0x8000000000000000",
        "TimeCreated": {"SystemTime": "2026-11-22T09:49:04.003231000Z"}, "EventRecordID": 451,
        "Correlation": {}, "Execution": {"ProcessID": 9322, "ThreadID": 9322},
        "Channel": "Linux-Sysmon/Operational", "Computer": "vm", "Security": {"UserId": "0"},
    }  # fmt: skip
    d = obj["EventData"]
    assert d["ProcessId"] == 9558 and d["ParentProcessId"] > 0 and d["TerminalSessionId"] == 4294967295
    assert d["LogonId"] == "0" and d["ProcessGuid"].startswith("{") and d["UtcTime"] == case["values"][1]


RAW_TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(
    [chr(0xDC00 + b) for b in range(0x80, 0x100)])), max_size=30)  # surrogateescape'd bytes  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(RAW_TEXT, min_size=6, max_size=6), RAW_TEXT)
def test_any_text_is_one_valid_utf8_line(values: list[str], computer: str) -> None:
    """Control characters, NULs, raw bytes from the kernel (surrogateescape): always one line of
    valid UTF-8 JSON; each value is the XML's value (cut at NUL, `-` when empty) with bytes that
    are not UTF-8 as U+FFFD."""
    values[3] = "42"  # ProcessId
    line = encode_line(render_json(BY_ID[5], values, SystemHeader(computer, 1, 2, 3), 5, NOW))
    assert line.count(b"\n") == 1
    obj = json.loads(line.decode("utf-8"))  # strict UTF-8
    for f, v in zip(BY_ID[5].fields, values, strict=True):
        want = (
            42
            if f == "ProcessId"
            else xml_value(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        )
        assert obj["EventData"][f] == want


@given(st.lists(st.text(max_size=10), min_size=6, max_size=6))
def test_any_surrogate_still_gives_valid_utf8(values: list[str]) -> None:
    line = encode_line(render_json(BY_ID[5], values, HDR, 5, NOW))
    assert line.count(b"\n") == 1
    assert json.loads(line.decode("utf-8"))["System"]["EventRecordID"] == 5


def test_raw_bytes_become_replacement_characters() -> None:
    image = b"/tmp/caf\xe9 \xff".decode("utf-8", "surrogateescape")  # Latin-1 file name
    values = ["-", "t", "{g}", "7", image, "root"]
    obj = json.loads(encode_line(render_json(BY_ID[5], values, HDR, 1, NOW)).decode("utf-8"))
    assert obj["EventData"]["Image"] == "/tmp/caf\ufffd \ufffd"
    xml = render_event(BY_ID[5], values, HDR, 1, NOW).encode("utf-8", "surrogateescape")
    assert b"/tmp/caf\xe9 \xff" in xml  # the XML keeps the bytes as they came


def test_control_characters_and_nul() -> None:
    values = ["-", "a\tb\nc\rd\x01e\x1f", "{g}", "7", "cut\x00here", "\x00"]
    obj = json.loads(render_json(BY_ID[5], values, HDR, 1, NOW))
    assert obj["EventData"]["UtcTime"] == "a\tb\nc\rd\x01e\x1f"
    quoted = ["-", 'say "hi"', "C:\\dir\\", "7", "x", "y"]  # no control character: only these
    assert json.loads(render_json(BY_ID[5], quoted, HDR, 1, NOW))["EventData"]["UtcTime"] == 'say "hi"'
    assert json.loads(render_json(BY_ID[5], quoted, HDR, 1, NOW))["EventData"]["ProcessGuid"] == "C:\\dir\\"
    assert obj["EventData"]["Image"] == "cut" and obj["EventData"]["User"] == "-"
    xml = render_event(BY_ID[5], values, HDR, 1, NOW)
    assert "cut</Data>" in xml and '"User">-</Data>' in xml


def test_none_and_empty_are_dash_or_null() -> None:
    values = [None, "", None, "", None, ""]
    obj = json.loads(render_json(BY_ID[5], values, HDR, 1, NOW))
    assert obj["EventData"] == {"RuleName": "-", "UtcTime": "-", "ProcessGuid": "-", "ProcessId": None,
                                "Image": "-", "User": "-"}  # fmt: skip
    bools = json.loads(render_json(BY_ID[23], ["-"] * 10, HDR, 1, NOW))["EventData"]
    assert bools["IsExecutable"] is None and bools["ProcessId"] is None


def test_number_fields_keep_text_that_is_no_number() -> None:
    """Never made by filterd (its numbers are str(int)), but no value may be lost: kept as text."""
    obj = json.loads(render_json(BY_ID[3], ["x"] * 18, HDR, 1, NOW))["EventData"]
    assert obj["SourcePort"] == "x" and obj["Initiated"] == "x"
    obj = json.loads(render_json(BY_ID[3], ["007"] * 18, HDR, 1, NOW))["EventData"]
    assert obj["SourcePort"] == 7


def test_wrong_value_count() -> None:
    with pytest.raises(ValueError, match="event 5 has 6 fields, got 2"):
        render_json(BY_ID[5], ["a", "b"], HDR, 1, NOW)


def test_header_copies_render_the_same() -> None:
    values = ["-", "t", "{g}", "7", "/bin/x", "root"]
    first = render_json(BY_ID[5], values, HDR, 1, NOW)
    copy = pickle.loads(pickle.dumps(HDR))
    assert "_json_formats" not in copy.__dict__
    assert render_json(BY_ID[5], values, copy, 1, NOW) == first
    assert render_json(BY_ID[5], values, SystemHeader("other", 1, 1, 0), 1, NOW) != first
