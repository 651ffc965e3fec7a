"""`sysmon -c` dump format (reference §3.6): golden outputs written from the upstream layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd import schema
from filterd.config.dump import aggregation_ids, dump_config
from filterd.config.loader import load_config, load_config_bytes
from filterd.config.model import RuleAggregate

GOLDEN = Path(__file__).resolve().parent / "golden"
CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"  # tests/data/SOURCES.md

REAL = {
    "korean-blog-sysmon-config": "linux/blogs/korean-blog-sysmon-config.xml",
    "onlyProcCreate": "linux/sysmonforlinux/onlyProcCreate.xml",
    "collect-all": "linux/mstic/collect-all.xml",
    "T1021.004_SSH_CommonCommands": "linux/mstic/_events/1_ProcessCreate/T1021.004_SSH_CommonCommands.xml",
}


def test_handcrafted_golden() -> None:
    out = dump_config(load_config(GOLDEN / "handcrafted.xml"))
    assert out == (GOLDEN / "handcrafted.rules").read_text()


@pytest.mark.parametrize("stem", sorted(REAL))
def test_real_config_golden(stem: str) -> None:
    path = CONFIGS / REAL[stem]
    assert dump_config(load_config(path)) == (GOLDEN / f"{stem}.rules").read_text()


def test_layout_columns() -> None:
    lines = (GOLDEN / "handcrafted.rules").read_text().splitlines()
    assert lines[0] == " - Field Sizes:                     CommandLine:100,Image:20"
    assert lines[0].index("CommandLine") == 36
    assert lines[1] == ""
    assert lines[2] == "Rule configuration (version 4.90):"
    header = lines[3]
    assert header == " - ProcessCreate                      onmatch: include   combine rules using 'Or'"
    assert (header.index("onmatch"), header.index("combine")) == (38, 57)
    flt = lines[4]
    assert flt == "\tImage                          filter: is           value: '/usr/bin/ls'"
    assert (flt.index("filter"), flt.index("value")) == (32, 53)
    assert lines[5] == "\tCompound Rule DetectSuspiciousProcess   combine using And"
    assert lines[6] == "\t    Image                          filter: begin with   value: '/tmp'"


def test_no_rules_installed() -> None:
    out = dump_config(load_config_bytes(b'<Sysmon schemaversion="4.90"><EventFiltering/></Sysmon>'))
    assert out == "No rules installed\n"
    out = dump_config(load_config_bytes(b'<Sysmon schemaversion="4.90"/>'))
    assert out == "No rules installed\n"


def test_values_keep_their_original_case_and_whitespace() -> None:
    cfg = load_config_bytes(
        b'<Sysmon schemaversion="4.90"><EventFiltering><ProcessCreate onmatch="include">'
        b'<Image condition="END WITH"> /Bin/LS</Image></ProcessCreate></EventFiltering></Sysmon>'
    )
    assert (
        dump_config(cfg).splitlines()[-1]
        == "\tImage                          filter: end with     value: ' /Bin/LS'"
    )


# --- numbering of unnamed compound rules (upstream's AggregationId) ------------------------------

MODULAR = "windows/sysmon-modular-sysmonconfig.xml"


def _numbered(out: str) -> list[tuple[str, int]]:
    """(section header, number) of every `Compound Rule NNNN` line, in order."""
    found: list[tuple[str, int]] = []
    section = ""
    for line in out.splitlines():
        if line.startswith(" - "):
            section = " ".join(line.split()[1:4])  # e.g. "RegistryEvent onmatch: include"
        elif line.startswith("\tCompound Rule "):
            label = line.split()[2]
            if label.isdigit() and len(label) == 4:
                found.append((section, int(label)))
    return found


def test_registry_event_numbering_matches_upstream_on_sysmon_modular() -> None:
    # Upstream's own dump of this config (SysmonForLinux test/rulestest/baseline/21_real_world_olaf.rules)
    # jumps from FileCreate's 0150 to 0159: the RegistryEvent include element is tried as event 12 first,
    # which burns 0151-0157 on its seven TargetObject+Image <Rule>s and 0158 on the first <Rule> using
    # Details (an event 13 field), then it is registered as event 13 with 0159 onwards.
    cfg = load_config(CONFIGS / MODULAR, reject_windows_options=False)
    numbered = _numbered(dump_config(cfg))
    by_section: dict[str, list[int]] = {}
    for section, n in numbered:
        by_section.setdefault(section, []).append(n)
    assert by_section["FileCreate onmatch: exclude"][-1] == 150
    assert by_section["RegistryEvent onmatch: include"][0] == 159
    assert by_section["RegistryEvent onmatch: include"][-1] == 178
    assert by_section["RegistryEvent onmatch: exclude"] == list(range(179, 186))
    # 0186 is FileCreateStreamHash's named rule; the rest follow upstream's baseline too.
    assert by_section["PipeEvent onmatch: include"] == list(range(187, 192))
    assert by_section["PipeEvent onmatch: exclude"] == list(range(192, 209))
    assert by_section["DnsQuery onmatch: exclude"] == [209]
    assert numbered[-1] == ("FileDeleteDetected onmatch: include", 249)
    numbers = [n for _, n in numbered]
    assert numbers == sorted(set(numbers))


def test_reg_subrules_burns_one_id_on_event_12() -> None:
    # SysmonCommon's reg-subrules.xml: three <Rule>s each using Details. As event 12 the first one gets
    # id 1 and fails; as event 13 they get 2, 3, 4.
    cfg = load_config(CONFIGS / "sysmoncommon-unittests/reg-subrules.xml")
    assert aggregation_ids(cfg) == [(2, 3, 4)]
    assert [n for _, n in _numbered(dump_config(cfg))] == [2, 3, 4]


@pytest.mark.parametrize(
    ("tag", "children", "expected"),
    [
        # plain Details filter breaks the try as 12 after the first <Rule> took id 1
        (
            "RegistryEvent",
            "<Rule><TargetObject>a</TargetObject></Rule><Details>x</Details><Rule><Image>b</Image></Rule>",
            (2, 3),
        ),
        # NewName exists only in 14: tries as 12 and 13 burn 1 and 2
        ("RegistryEvent", "<Rule><NewName>n</NewName></Rule>", (3,)),
        # fields of 12: no retry, no gap
        ("RegistryEvent", "<Rule><TargetObject>a</TargetObject></Rule>", (1,)),
        # PipeEvent 17/18 share one field list: never a retry
        ("PipeEvent", "<Rule><PipeName>p</PipeName></Rule><Rule><Image>i</Image></Rule>", (1, 2)),
        # Consumer exists only in 21 (WmiEvent 19/20/21)
        ("WmiEvent", "<Rule><Consumer>c</Consumer></Rule>", (3,)),
    ],
)
def test_shared_tag_retries_burn_ids(tag: str, children: str, expected: tuple[int, ...]) -> None:
    xml = (
        f'<Sysmon schemaversion="4.90"><EventFiltering><{tag} onmatch="include">{children}</{tag}>'
        f"</EventFiltering></Sysmon>"
    ).encode()
    assert aggregation_ids(load_config_bytes(xml)) == [expected]


def test_ids_after_a_registry_retry_keep_the_gap() -> None:
    xml = (
        b'<Sysmon schemaversion="4.90"><EventFiltering>'
        b'<PipeEvent onmatch="include"><Rule><PipeName>p</PipeName></Rule></PipeEvent>'
        b'<RegistryEvent onmatch="include"><Rule><Details>d</Details></Rule></RegistryEvent>'
        b'<ProcessCreate onmatch="include"><Rule><Image>i</Image></Rule></ProcessCreate>'
        b"</EventFiltering></Sysmon>"
    )
    # blob order is manifest order: ProcessCreate (1), RegistryEvent (2 burnt as 12, 3), PipeEvent (4)
    assert aggregation_ids(load_config_bytes(xml)) == [(1,), (3,), (4,)]


_SHARED_TAGS = ("RegistryEvent", "PipeEvent", "WmiEvent")
_PLAIN_TAGS = ("ProcessCreate", "FileCreate", "NetworkConnect")


@st.composite
def _element(draw: st.DrawFn, tags: tuple[str, ...]) -> str:
    tag = draw(st.sampled_from(tags))
    series = schema.BY_RULE_TAG[tag]
    # every field of the element from one event id of the series, so upstream keeps the element
    fields = [f for f in draw(st.sampled_from(series)).fields if f != "RuleName"]
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        names = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3))
        text = "".join(f"<{n}>v</{n}>" for n in names)
        parts.append(f"<Rule>{text}</Rule>" if draw(st.booleans()) else text)
    onmatch = draw(st.sampled_from(("include", "exclude")))
    return f'<{tag} onmatch="{onmatch}">{"".join(parts)}</{tag}>'


@settings(max_examples=200, deadline=None)
@given(st.lists(_element(_SHARED_TAGS + _PLAIN_TAGS), max_size=8))
def test_compound_numbers_strictly_increase(elements: list[str]) -> None:
    xml = f'<Sysmon schemaversion="4.90"><EventFiltering>{"".join(elements)}</EventFiltering></Sysmon>'
    cfg = load_config_bytes(xml.encode())
    ids = [n for rule_ids in aggregation_ids(cfg) for n in rule_ids]
    assert ids == sorted(set(ids)) and all(n >= 1 for n in ids)
    numbers = [n for _, n in _numbered(dump_config(cfg))]
    assert numbers == sorted(set(numbers)) and set(numbers) <= set(ids)
    assert len(ids) == sum(1 for r in cfg.rules for it in r.items if isinstance(it, RuleAggregate))


@settings(max_examples=100, deadline=None)
@given(st.lists(_element(_PLAIN_TAGS), max_size=8))
def test_single_id_tags_number_without_gaps(elements: list[str]) -> None:
    xml = f'<Sysmon schemaversion="4.90"><EventFiltering>{"".join(elements)}</EventFiltering></Sysmon>'
    ids = [n for rule_ids in aggregation_ids(load_config_bytes(xml.encode())) for n in rule_ids]
    assert ids == list(range(1, len(ids) + 1))
