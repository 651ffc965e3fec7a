"""filterd.render.xml / timefmt: byte-exact Sysmon XML against real captured events."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from filterd.render.timefmt import system_time, utc_time
from filterd.render.xml import SystemHeader, escape_text, render_event
from filterd.schema import BY_ID, EVENT_TYPES

TESTS = Path(__file__).resolve().parents[2]
GOLDEN = TESTS / "golden" / "xml"
CAPTURED = TESTS / "data" / "captured"  # tests/data/SOURCES.md
CASES = json.loads((GOLDEN / "cases.json").read_text())
HDR = SystemHeader("vm", 9322, 9322, 0)
NOW = 1795340944003231000  # 2026-11-22T09:49:04.003231Z


def _ns_from_system_time(text: str) -> int:
    t = dt.datetime.strptime(text[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return (calendar.timegm(t.timetuple()) * 1_000_000 + t.microsecond) * 1000


def _inputs_from_xml(xml: str) -> tuple[int, SystemHeader, int, int, list[str]]:
    root = etree.fromstring(xml.encode())
    sysel = root.find("System")
    ex = sysel.find("Execution")
    header = SystemHeader(sysel.findtext("Computer"), int(ex.get("ProcessID")), int(ex.get("ThreadID")),
                          int(sysel.find("Security").get("UserId")))
    return (int(sysel.findtext("EventID")), header, int(sysel.findtext("EventRecordID")),
            _ns_from_system_time(sysel.find("TimeCreated").get("SystemTime")),
            [d.text for d in root.find("EventData")])


def _event_data(xml: str) -> list[tuple[str, str]]:
    root = etree.fromstring(xml.encode())
    return [(d.get("Name"), d.text) for d in root.find("EventData")]


# -- golden: the captured events, byte for byte -------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_golden_event(case: dict) -> None:
    expected = (GOLDEN / case["file"]).read_text().rstrip("\n")
    out = render_event(BY_ID[case["event_id"]], case["values"], SystemHeader(**case["header"]),
                       case["record_id"], case["now_ns"])
    assert out == expected


def test_golden_covers_required_event_ids() -> None:
    assert {c["event_id"] for c in CASES} >= {1, 3, 4, 5, 10, 11, 16, 23}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_golden_files_match_the_capture(case: dict) -> None:
    assert (GOLDEN / case["file"]).read_bytes() == (CAPTURED / case["file"]).read_bytes()


def _captured_syslog_events() -> list[tuple[str, str]]:
    out = []
    for log in sorted(CAPTURED.glob("*-syslog.log")):
        for n, line in enumerate(log.read_text().splitlines(), 1):
            if " sysmon: <Event>" in line:
                out.append((f"{log.name}:{n}", line.split(" sysmon: ", 1)[1]))
    return out


SYSLOG_EVENTS = _captured_syslog_events()


def test_captured_syslog_events_are_all_there() -> None:
    assert len(SYSLOG_EVENTS) == 198, f"test data missing under {CAPTURED}"  # 3 + 106 + 89 lines


@pytest.mark.parametrize("xml", [x for _, x in SYSLOG_EVENTS], ids=[i for i, _ in SYSLOG_EVENTS])
def test_every_captured_syslog_event_rerenders_identically(xml: str) -> None:
    eid, header, rid, ns, values = _inputs_from_xml(xml)
    assert render_event(BY_ID[eid], values, header, rid, ns) == xml


# -- System section rules -------------------------------------------------------------------------

def test_system_section_exact() -> None:
    out = render_event(BY_ID[1], [""] * 23, SystemHeader("myhost", 3948, 3949, 0), 935,
                       1685991035246709123)
    assert out.startswith(
        '<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
        "<EventID>1</EventID><Version>5</Version><Level>4</Level><Task>1</Task><Opcode>0</Opcode>"
        '<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2023-06-05T18:50:35.246709000Z"/>'
        '<EventRecordID>935</EventRecordID><Correlation/><Execution ProcessID="3948" ThreadID="3949"/>'
        "<Channel>Linux-Sysmon/Operational</Channel><Computer>myhost</Computer>"
        '<Security UserId="0"/></System><EventData><Data Name="RuleName">-</Data>')
    assert out.endswith('<Data Name="ParentUser">-</Data></EventData></Event>')


def test_event_100_descriptor_is_all_zero() -> None:
    out = render_event(BY_ID[100], ["x"] * len(BY_ID[100].fields), HDR, 1, NOW)
    assert ("<EventID>100</EventID><Version>0</Version><Level>0</Level><Task>0</Task><Opcode>0</Opcode>"
            "<Keywords>0x0</Keywords>") in out


@pytest.mark.parametrize("etype", EVENT_TYPES, ids=[str(e.id) for e in EVENT_TYPES])
def test_every_schema_event_renders_well_formed(etype) -> None:
    values = [f"v{i}" for i in range(len(etype.fields))]
    out = render_event(etype, values, HDR, 7, NOW)
    root = etree.fromstring(out.encode())
    assert [d.get("Name") for d in root.find("EventData")] == list(etype.fields)
    assert [d.text for d in root.find("EventData")] == values
    assert root.findtext("System/EventID") == str(etype.id)
    if etype.id != 100:
        assert root.findtext("System/Version") == str(etype.version)
        assert root.findtext("System/Task") == str(etype.id)
        assert root.findtext("System/Keywords") == "0x8000000000000000"
    assert "\n" not in out and "> <" not in out and not out.startswith("<?xml")


def test_no_whitespace_between_elements() -> None:
    out = render_event(BY_ID[5], ["a"] * 6, HDR, 1, NOW)
    assert re.search(r">\s+<", out) is None


def test_several_headers_and_types_do_not_mix() -> None:
    h2 = SystemHeader("other-host", 1, 2, 3)
    a = render_event(BY_ID[5], ["a"] * 6, HDR, 1, NOW)
    b = render_event(BY_ID[5], ["a"] * 6, h2, 1, NOW)
    c = render_event(BY_ID[11], ["a"] * 8, HDR, 1, NOW)
    assert "<Computer>vm</Computer>" in a and "<Computer>other-host</Computer>" in b
    assert 'ProcessID="1" ThreadID="2"' in b and 'UserId="3"' in b
    assert "<EventID>11</EventID>" in c and "<Computer>vm</Computer>" in c
    # equal headers built separately render identically
    assert render_event(BY_ID[5], ["a"] * 6, SystemHeader("vm", 9322, 9322, 0), 1, NOW) == a


def test_header_pickles_and_copies_after_use() -> None:
    import copy
    import pickle
    h = SystemHeader("h", 1, 2, 3)
    render_event(BY_ID[5], ["a"] * 6, h, 1, NOW)
    for h2 in (pickle.loads(pickle.dumps(h)), copy.deepcopy(h), copy.copy(h)):
        assert h2 == h
        assert render_event(BY_ID[5], ["a"] * 6, h2, 1, NOW) == render_event(BY_ID[5], ["a"] * 6, h, 1, NOW)


def test_computer_is_escaped() -> None:
    out = render_event(BY_ID[5], ["a"] * 6, SystemHeader("a&b<c>'{x}\"\\", 1, 1, 0), 1, NOW)
    assert "<Computer>a&amp;b&lt;c&gt;'{x}\"\\</Computer>" in out


def test_record_id_large_and_default_time() -> None:
    out = render_event(BY_ID[5], ["a"] * 6, HDR, 2**64 - 1)
    assert "<EventRecordID>18446744073709551615</EventRecordID>" in out
    assert re.search(r'SystemTime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}000Z"', out)


def test_wrong_value_count_raises() -> None:
    with pytest.raises(ValueError, match="6 fields, got 5"):
        render_event(BY_ID[5], ["a"] * 5, HDR, 1, NOW)
    with pytest.raises(ValueError, match="6 fields, got 7"):
        render_event(BY_ID[5], ["a"] * 7, HDR, 1, NOW)


# -- value rules: '-' substitution and pugixml escaping -------------------------------------------

def _data(out: str) -> str:
    return out[out.index("<EventData>"):]


def test_empty_and_none_become_dash() -> None:
    out = render_event(BY_ID[4], ["", None, "x", ""], HDR, 1, NOW)
    assert _data(out) == ('<EventData><Data Name="UtcTime">-</Data><Data Name="State">-</Data>'
                          '<Data Name="Version">x</Data><Data Name="SchemaVersion">-</Data>'
                          "</EventData></Event>")


def test_tuple_values_accepted() -> None:
    assert render_event(BY_ID[4], ("a", "b", "c", "d"), HDR, 1, NOW) == \
        render_event(BY_ID[4], ["a", "b", "c", "d"], HDR, 1, NOW)


@pytest.mark.parametrize(("raw", "escaped"), [
    ("a & b", "a &amp; b"),
    ("<unknown process>", "&lt;unknown process&gt;"),
    ("sh -c 'a && b > /tmp/x'", "sh -c 'a &amp;&amp; b &gt; /tmp/x'"),
    ('say "hi"', 'say "hi"'),  # quotes are not escaped in PCDATA
    ("tab\there", "tab\there"),
    ("multi\nline\r\n", "multi\nline\r\n"),  # TAB/LF/CR verbatim (Sysmon keeps them)
    ("file \x07", "file &#07;"),  # pugixml: '&#' + two decimal digits + ';'
    ("\x01\x1b\x1f\x0b\x0c", "&#01;&#27;&#31;&#11;&#12;"),
    ("\x7f", "\x7f"),
    ("ünïcødé €", "ünïcødé €"),
    ("cut\x00here", "cut"),  # C string: NUL ends the value
    ("&amp;", "&amp;amp;"),
])
def test_escaping(raw: str, escaped: str) -> None:
    assert escape_text(raw) == escaped
    out = render_event(BY_ID[5], ["r", "t", "g", "1", raw, "u"], HDR, 1, NOW)
    assert f'<Data Name="Image">{escaped}</Data><Data Name="User">u</Data>' in out


def test_nul_only_value_becomes_dash() -> None:
    out = render_event(BY_ID[5], ["r", "t", "g", "1", "\x00tail", "u&"], HDR, 1, NOW)
    assert '<Data Name="Image">-</Data><Data Name="User">u&amp;</Data>' in out


def test_surrogate_escaped_bytes_pass_through() -> None:
    raw = b"/tmp/\xff\xfe-file".decode("utf-8", "surrogateescape")
    out = render_event(BY_ID[5], ["r", "t", "g", "1", raw, "a<b"], HDR, 1, NOW)
    assert f'<Data Name="Image">{raw}</Data><Data Name="User">a&lt;b</Data>' in out


def _reference_pcdata(value: str | None) -> str:
    """Char-by-char model of pugixml text_output_escaped(ctx_special_pcdata) + EventSetFieldS."""
    out = []
    for ch in value or "":
        o = ord(ch)
        if o == 0:
            break
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif o < 32 and ch not in "\t\n\r":
            out.append(f"&#{o // 10}{o % 10};")
        else:
            out.append(ch)
    return "".join(out) or "-"


any_text = st.text(st.characters(codec="utf-8") | st.sampled_from("&<>\x00\x01\x07\t\n\r\x1f\"'"),
                   max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), any_text), min_size=6, max_size=6))
def test_escaping_matches_pugixml_model(values: list[str | None]) -> None:
    out = render_event(BY_ID[5], values, HDR, 1, NOW)
    expected = "".join(f'<Data Name="{n}">{_reference_pcdata(v)}</Data>'
                       for n, v in zip(BY_ID[5].fields, values, strict=True))
    assert _data(out) == f"<EventData>{expected}</EventData></Event>"


printable = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n&<>"), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(printable, min_size=23, max_size=23))
def test_roundtrip_through_lxml(values: list[str]) -> None:
    out = render_event(BY_ID[1], values, HDR, 1, NOW)
    parsed = _event_data(out)
    assert [n for n, _ in parsed] == list(BY_ID[1].fields)
    assert [v for _, v in parsed] == [v or "-" for v in values]


# -- timefmt --------------------------------------------------------------------------------------

def test_utc_time_examples() -> None:
    assert utc_time(1795340944009999999) == "2026-11-22 09:49:04.009"  # truncated, not rounded
    assert utc_time(0) == "1970-01-01 00:00:00.000"
    assert utc_time(1685991035241000000) == "2023-06-05 18:50:35.241"
    assert utc_time(-1) == "1969-12-31 23:59:59.999"


def test_system_time_examples() -> None:
    assert system_time(1795340944003231999) == "2026-11-22T09:49:04.003231000Z"
    assert system_time(1795340919365251000) == "2026-11-22T09:48:39.365251000Z"
    assert system_time(0) == "1970-01-01T00:00:00.000000000Z"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(10**18), max_value=4102444800 * 10**9))
def test_time_formats_match_datetime(ns: int) -> None:
    sec, frac = divmod(ns, 10**9)
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=sec)
    assert utc_time(ns) == t.strftime("%Y-%m-%d %H:%M:%S.") + f"{frac // 10**6:03d}"
    assert system_time(ns) == t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac // 1000:06d}000Z"


def test_time_cache_eviction_keeps_results_right() -> None:
    base = 1795340944 * 10**9
    for i in range(1000):
        assert utc_time(base + i * 10**9 + 5 * 10**6).endswith(f"{(4 + i) % 60:02d}.005")
