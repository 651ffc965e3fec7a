"""Config loading: every real config accepted or rejected where upstream does, encodings, options,
schema versions, onmatch handling, limits and error messages (file:line + offending element)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd import schema
from filterd.config.errors import (
    ConfigError,
    ConfigLimitError,
    ConfigReadError,
    ConfigSyntaxError,
    OptionError,
    RuleError,
    SchemaVersionError,
    UnsupportedOptionError,
)
from filterd.config.loader import (
    default_config,
    describe_load,
    load_config,
    load_config_bytes,
    parse_schema_version,
)
from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, Filter, RuleAggregate
from filterd.rules import rule_set
from tests.filterd.rules.rules_reference import probe_events, reference_decide

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"  # tests/data/SOURCES.md
# Configs whose include rules no probe event (rules_reference.probe_events) can change:
PROBES_CHANGE_NOTHING = {
    "sysmoncommon-unittests/emptyfields.xml",  # `contains ""`: every event is included already
    "sysmoncommon-unittests/include_mimikatz_inmem.xml",  # AND of six `is` on one field: never true
}

# Where upstream SysmonForLinux rejects a real config: (line, error class, text in the message).
REJECTED = {
    "linux/mstic-index-only/attack-based/discovery/T087.001_Metasploit_Hashdump.xml": (
        15,
        ConfigSyntaxError,
        "&amp;",
    ),
    "linux/mstic-index-only/attack-based/discovery/T1592_Metasploit_Local_Exploit_Suggester.xml": (
        33,
        ConfigSyntaxError,
        "CommandLine line 23",
    ),
    "sysmoncommon-unittests/exclude_all.xml": (2, UnsupportedOptionError, "<CaptureClipboard>"),
    "sysmoncommon-unittests/include_windowsupdate_autostart.xml": (
        4,
        UnsupportedOptionError,
        "<CheckRevocation>",
    ),
    "sysmoncommon-unittests/sysmon-modular-config.xml": (4, UnsupportedOptionError, "<CheckRevocation>"),
    "sysmoncommon-unittests/sysmonconfig-export-omega.xml": (18, UnsupportedOptionError, "<CheckRevocation>"),
    "sysmoncommon-unittests/sysmonconfig-export.xml": (66, UnsupportedOptionError, "<CheckRevocation>"),
    "windows/swiftonsecurity-sysmonconfig-export.xml": (66, UnsupportedOptionError, "<CheckRevocation>"),
    "windows/sysmon-modular-sysmonconfig-with-filedelete.xml": (
        23,
        UnsupportedOptionError,
        "<CheckRevocation>",
    ),
    "windows/sysmon-modular-sysmonconfig.xml": (23, UnsupportedOptionError, "<CheckRevocation>"),
}
WARNED = {
    "linux/mstic-index-only/_events/3_NetworkConnect/T1046_NetworkServicesScanning.xml": (
        "Incorrect field CommandLine",
    ),
}


def _corpus() -> list[str]:
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.xml"))


def load(xml: str | bytes, name: str = "t.xml", **kw) -> object:
    data = xml.encode() if isinstance(xml, str) else xml
    return load_config_bytes(data, name, **kw)


def wrap(body: str, version: str = "4.90", top: str = "") -> str:
    return f'<Sysmon schemaversion="{version}">{top}<EventFiltering>{body}</EventFiltering></Sysmon>'


# --- the real corpus ------------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    files = _corpus()
    assert len(files) == 303  # 43 Linux + 3 Windows + 257 SysmonCommon unit-test configs
    assert set(REJECTED) <= set(files) and set(WARNED) <= set(files)


@pytest.mark.parametrize("rel", _corpus())
def test_real_config(rel: str) -> None:
    path = CONFIGS / rel
    if rel in REJECTED:
        line, cls, text = REJECTED[rel]
        with pytest.raises(cls) as exc:
            load_config(path)
        e = exc.value
        assert e.line == line
        assert text in str(e)
        assert str(e).startswith(f"{path}:{line}: ")
        if cls is UnsupportedOptionError:
            # the rules themselves are fine: accepted once Windows-only options are tolerated
            cfg = load_config(path, reject_windows_options=False)
            assert cfg.rules
        return
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.warnings == WARNED.get(rel, ())
    rules = rule_set(cfg)
    fired = 0
    for e in schema.EVENT_TYPES:  # every matcher compiles and decides as the reference does
        m = rules.matcher(e.id)
        for values in probe_events(cfg, e.id):
            got = m.decide(values)
            assert got == reference_decide(cfg, e.id, values), (e.id, values)
            fired += got != m.decide(("-",) * len(e.fields))
    if any(r.onmatch == INCLUDE and r.items for r in cfg.rules) and rel not in PROBES_CHANGE_NOTHING:
        assert fired, "no probe event changed any decision: the probes test nothing"


def test_malformed_mstic_messages_name_file_and_line() -> None:
    p = CONFIGS / "linux/mstic-index-only/attack-based/discovery/T087.001_Metasploit_Hashdump.xml"
    with pytest.raises(ConfigSyntaxError) as exc:
        load_config(p)
    assert str(exc.value) == (
        f"{p}:15: malformed XML: xmlParseEntityRef: no name (column 60); an unescaped '&' (write &amp;)"
    )
    p = CONFIGS / "linux/mstic-index-only/attack-based/discovery/T1592_Metasploit_Local_Exploit_Suggester.xml"
    with pytest.raises(ConfigSyntaxError) as exc:
        load_config(p)
    assert "Opening and ending tag mismatch: CommandLine line 23 and Rule" in str(exc.value)


def test_incorrect_field_drops_the_element_but_accepts() -> None:
    cfg = load_config(
        CONFIGS / "linux/mstic-index-only/_events/3_NetworkConnect/T1046_NetworkServicesScanning.xml"
    )
    assert cfg.rules == ()  # the NetworkConnect element is dropped
    assert 3 not in rule_set(cfg).enabled
    assert describe_load(cfg) == [
        "Loading configuration file with schema version 4.81",
        "Sysmon schema version: 4.90",
        "Incorrect field CommandLine",
        "Configuration file validated.",
    ]


def test_korean_blog_config() -> None:
    cfg = load_config(CONFIGS / "linux/blogs/korean-blog-sysmon-config.xml")
    assert cfg.hash_algorithms == ("SHA256",)
    pc = cfg.rules_for(1)
    assert [(r.onmatch, r.relation, r.group_name) for r in pc] == [
        (EXCLUDE, OR, "ProcessCreate_Security"),
        (INCLUDE, OR, "ProcessCreate_Security"),
    ]
    assert any(f.value == "<unknown process>" for f in pc[0].filters())
    assert all(f.name == "ProcessCreate_Security" for r in pc for f in r.filters())
    assert rule_set(cfg).enabled == frozenset({1, 3, 5})


def test_only_proc_create_perftest_config() -> None:
    cfg = load_config(CONFIGS / "linux/sysmonforlinux/onlyProcCreate.xml")
    assert cfg.schema_version == "4.22"
    assert cfg.hash_algorithms == ("MD5", "SHA256", "IMPHASH")
    assert rule_set(cfg).enabled == frozenset({1})  # empty include ProcessTerminate logs nothing
    assert rule_set(cfg).matcher(1).constant == (True, "-")


def test_collect_all_enables_every_linux_type() -> None:
    cfg = load_config(CONFIGS / "linux/mstic/collect-all.xml")
    assert rule_set(cfg).enabled == frozenset({1, 3, 5, 9, 10, 11, 23})


# --- encodings ----------------------------------------------------------------------------------

ENCODING_FILES = [
    "iso8859-nobom-iso8859enc",
    "iso8859-utf8bom-iso8859enc",
    "utf16-nobom-noenc",
    "utf16-nobom-noenc-ws",
    "utf16-nobom-utf16enc",
    "utf16-utf16bom-noenc",
    "utf16-utf16bom-noenc-ws",
    "utf16-utf16bom-utf16enc",
    "utf8-nobom-noenc",
    "utf8-nobom-noenc-ws",
    "utf8-nobom-utf8enc",
    "utf8-utf8bom-noenc",
    "utf8-utf8bom-utf8enc",
]


@pytest.mark.parametrize("stem", ENCODING_FILES)
def test_encoding_files(stem: str) -> None:
    cfg = load_config(CONFIGS / "sysmoncommon-unittests" / f"{stem}.xml")
    (flt,) = cfg.rules_for(1)[0].filters()
    assert (flt.field, flt.condition, flt.name) == ("CommandLine", "contains", "unicode test")
    # The ISO-8859-1 file without BOM is decoded as declared; with a UTF-8 BOM the BOM wins.
    expected = "\u00cb\u0086" if stem == "iso8859-nobom-iso8859enc" else "\u02c6"
    assert flt.value == expected
    raw = (CONFIGS / "sysmoncommon-unittests" / f"{stem}.xml").read_bytes()
    text = raw.decode("utf-16-le") if stem.startswith("utf16") else raw.decode("latin-1")
    assert flt.line == text[: text.index("<CommandLine")].count("\n") + 1


def test_utf16_big_endian_and_line_numbers() -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?>\n' + wrap(
        '\n<ProcessCreate onmatch="include">\n<Image condition="bogus">x</Image></ProcessCreate>'
    )
    for data in (
        xml.encode("utf-16-be"),
        b"\xfe\xff" + xml.encode("utf-16-be"),
        b"\xff\xfe" + xml.encode("utf-16-le"),
    ):
        with pytest.raises(RuleError) as exc:
            load(data)
        assert exc.value.line == 4


def test_bad_bytes_are_reported_with_line() -> None:
    with pytest.raises(ConfigError) as exc:
        load(b'<Sysmon schemaversion="4.90">\n<EventFiltering>\xff\xfe\xfd</EventFiltering></Sysmon>')
    assert exc.value.line == 2


# --- schema versions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("4.90", (4, 90)),
        ("4.9", (4, 90)),
        ("4.1", (4, 10)),
        ("4.00", (4, 0)),
        ("5.0", (5, 0)),
        (" 4.22", (4, 22)),
        ("4.22abc", (4, 22)),
        ("4.005", (4, 0)),
        ("1.0", (1, 0)),
        (None, None),
        ("", None),
        ("abc", None),
        ("-1.0", None),
        ("0.0", None),
        ("0.5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_schema_version(text: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_schema_version(text) == expected


@pytest.mark.parametrize("attr", ["", 'schemaversion="abc"', 'schemaversion="-1.0"', 'schemaversion="0.0"'])
def test_invalid_schema_version_rejected(attr: str) -> None:
    with pytest.raises(SchemaVersionError) as exc:
        load(f"<Sysmon {attr}><EventFiltering/></Sysmon>", "cfg.xml")
    assert exc.value.line == 1
    assert exc.value.upstream.startswith("Error: Invalid schema version number (")
    assert exc.value.upstream.endswith(")  for configuration: cfg.xml")


@pytest.mark.parametrize("version", ["1.0", "3.40", "3.99"])
def test_old_schema_version_rejected(version: str) -> None:
    with pytest.raises(SchemaVersionError) as exc:
        load(wrap("", version))
    assert exc.value.upstream == (
        f"Error: Incorrect or unsupported schema version {float(version):.2f}. "
        "Current Sysmon schema version 4.90"
    )


@pytest.mark.parametrize(
    "version,relation",
    [("4.00", OR), ("4.1", OR), ("4.10", OR), ("4.21", AND), ("4.90", AND), ("5.0", AND), ("17.3", AND)],
)
def test_default_combine_depends_on_schema_version(version: str, relation: str) -> None:
    cfg = load(wrap('<ProcessCreate onmatch="include"><Image>a</Image></ProcessCreate>', version))
    assert cfg.rules[0].relation == relation
    assert cfg.schema_version == f"{float(version):.2f}"


# --- top-level options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sha256", ("SHA256",)),
        ("SHA1,md5", ("SHA1", "MD5")),
        ("md-5,Sha-256", ("MD5", "SHA256")),
        ("imphash,sha1", ("SHA1", "IMPHASH")),
        ("*", ("SHA1", "MD5", "SHA256", "IMPHASH")),
        ("ALL", ("SHA1", "MD5", "SHA256", "IMPHASH")),
        ("md5, sha256", ("MD5", "SHA256")),
        ("", ("SHA256",)),
    ],
)
def test_hash_algorithms(text: str, expected: tuple[str, ...]) -> None:
    cfg = load(wrap("", top=f"<HashAlgorithms>{text}</HashAlgorithms>"))
    assert cfg.hash_algorithms == expected


def test_default_hash_algorithm() -> None:
    assert load(wrap("")).hash_algorithms == ("SHA256",)


def test_unknown_hash_algorithm_rejected() -> None:
    with pytest.raises(OptionError) as exc:
        load(wrap("", top="\n<HashAlgorithms>md5,crc32</HashAlgorithms>"))
    assert exc.value.line == 2
    assert exc.value.upstream == "Invalid hashing algorithm: crc32"


@pytest.mark.parametrize(
    "text,sizes",
    [
        ("CommandLine:100,Image:20", {"CommandLine": 100, "Image": 20}),
        ("RuleName:10", {"RuleName": 10}),
        ("CommandLine:100,Image", {"CommandLine": 100}),  # items without a size are ignored
        ("Image:5,Image:7", {"Image": 7}),
    ],
)
def test_field_sizes(text: str, sizes: dict[str, int]) -> None:
    cfg = load(wrap("", top=f"<FieldSizes>{text}</FieldSizes>"))
    assert dict(cfg.field_sizes) == sizes
    assert cfg.field_sizes_text == text


@pytest.mark.parametrize(
    "text,upstream",
    [
        ("Image:5.User:6", "FieldSizes option ('Image:5.User:6') has invalid character: '.'."),
        ("Image: 5", "FieldSizes option ('Image: 5') has invalid character: ' '."),
        ("Imagex:5", "FieldSizes field 'Imagex' is invalid."),
        ("image:5", "FieldSizes field 'image' is invalid."),
        ("Image:0", "FieldSizes field 'Image' has max size of 0."),
        ("Image:", "FieldSizes field 'Image' has max size of 0."),
    ],
)
def test_field_sizes_invalid(text: str, upstream: str) -> None:
    with pytest.raises(OptionError) as exc:
        load(wrap("", top=f"<FieldSizes>{text}</FieldSizes>"))
    assert exc.value.upstream == upstream
    assert exc.value.line == 1


@pytest.mark.parametrize("option", ["CheckRevocation", "ArchiveDirectory", "DriverName", "CaptureClipboard"])
def test_windows_only_options_rejected(option: str) -> None:
    xml = wrap("", top=f"\n\n<{option}>false</{option}>")
    with pytest.raises(UnsupportedOptionError) as exc:
        load(xml, "w.xml")
    assert str(exc.value) == f"w.xml:3: <{option}>: Option not implemented on Linux."
    assert exc.value.upstream == "Option not implemented on Linux."
    cfg = load(xml, reject_windows_options=False)
    assert cfg.warnings == (f"Option not implemented on Linux: {option} (ignored)",)


def test_dns_lookup_and_no_effect_options_accepted() -> None:
    cfg = load(wrap("", top="<DnsLookup>true</DnsLookup><ProcessAccessConfig>x</ProcessAccessConfig>"))
    assert cfg.dns_lookup == "true"
    assert cfg.warnings == ()
    assert any("DnsLookup" in n.message for n in cfg.notes)


def test_unknown_option_stops_option_processing() -> None:
    # pugixml era: an unknown top-level element ends option parsing; later options are not seen.
    cfg = load(wrap("", top="<Bogus/><HashAlgorithms>md5</HashAlgorithms><CheckRevocation/>"))
    assert cfg.hash_algorithms == ("SHA256",)
    assert any("unknown option <Bogus>" in n.message for n in cfg.notes)


def test_wrong_root_and_non_xml_rejected() -> None:
    with pytest.raises(ConfigError, match="root element is <sysmon>"):
        load('<sysmon schemaversion="4.90"/>')
    for junk in ('{"Sysmon": {"schemaversion": 4.9}}', "Sysmon:\n  schemaversion: 4.90\n", "   \n", ""):
        with pytest.raises(ConfigSyntaxError):
            load(junk)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigReadError) as exc:
        load_config(tmp_path / "missing.xml")
    assert str(exc.value).startswith(f"{tmp_path / 'missing.xml'}: cannot read configuration file")
    with pytest.raises(ConfigReadError):
        load_config(tmp_path)


# --- limits and hostile XML -------------------------------------------------------------------------


def test_entities_are_not_expanded() -> None:
    xxe = '<?xml version="1.0"?>\n<!DOCTYPE Sysmon [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + wrap(
        '<ProcessCreate onmatch="include"><Image>&xxe;</Image></ProcessCreate>'
    )
    with pytest.raises(ConfigSyntaxError, match="entity"):
        load(xxe)
    laughs = (
        '<!DOCTYPE Sysmon [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + wrap('<ProcessCreate onmatch="include"><Image>&b;</Image></ProcessCreate>')
    )
    with pytest.raises(ConfigSyntaxError):
        load(laughs)
    with pytest.raises(ConfigSyntaxError, match="Entity 'nope' not defined"):
        load(wrap('<ProcessCreate onmatch="include"><Image>&nope;</Image></ProcessCreate>'))


def test_plain_doctype_is_ignored() -> None:
    cfg = load("<!DOCTYPE Sysmon [<!ELEMENT Sysmon ANY>]>" + wrap('<ProcessCreate onmatch="exclude"/>'))
    assert cfg.rules[0].tag == "ProcessCreate"


def test_limits() -> None:
    with pytest.raises(ConfigLimitError, match="larger than"):
        load(b" " * (16 * 1024 * 1024 + 1))
    deep = "<RuleGroup groupRelation='or'>" * 70 + "</RuleGroup>" * 70
    with pytest.raises(ConfigLimitError, match="nested deeper") as exc:
        load(wrap(deep))
    assert exc.value.line == 1
    big = "x" * 70000
    with pytest.raises(ConfigLimitError, match=r"<Image> value is longer") as exc:
        load(wrap(f'\n<ProcessCreate onmatch="include">\n<Image>{big}</Image></ProcessCreate>'))
    assert exc.value.line == 3
    long_tag = "A" * 10000
    cfg = load(wrap(f'<ProcessCreate onmatch="include"><{long_tag}>x</{long_tag}></ProcessCreate>'))
    assert cfg.warnings and cfg.warnings[0].startswith("Incorrect field AAA")


# --- EventFiltering grammar -------------------------------------------------------------------------


def test_event_elements_at_any_depth_and_rulegroup() -> None:
    cfg = load(
        wrap(
            '<RuleGroup name="G" groupRelation="or">'
            '<ProcessCreate onmatch="include"><Image>a</Image></ProcessCreate></RuleGroup>'
            '<Foo><Bar><ProcessCreate onmatch="exclude"><Image>b</Image></ProcessCreate></Bar></Foo>'
            '<rulegroup name="lower" groupRelation="OR"><NetworkConnect onmatch="include"/></rulegroup>'
            '<RuleGroup name="noRel"><ProcessTerminate onmatch="include"/></RuleGroup>'
        )
    )
    pc = cfg.rules_for(1)
    assert [(r.onmatch, r.relation, r.group_name) for r in pc] == [(INCLUDE, OR, "G"), (EXCLUDE, AND, "")]
    assert pc[0].items[0].name == "G"
    (nc,) = cfg.rules_for(3)
    assert (nc.relation, nc.group_name) == (OR, "lower")
    (pt,) = cfg.rules_for(5)
    assert pt.relation == AND  # a RuleGroup without groupRelation: the schema default applies
    assert any("unknown element <Foo>" in n.message for n in cfg.notes)


def test_blob_order_is_manifest_order_then_document_order() -> None:
    cfg = load(
        wrap(
            '<FileCreate onmatch="include"/><ProcessTerminate onmatch="include"/>'
            '<ProcessCreate onmatch="include"/>'
            '<NetworkConnect onmatch="include"/><ProcessCreate onmatch="exclude"/>'
        )
    )
    assert [(r.tag, r.onmatch) for r in cfg.rules] == [
        ("ProcessCreate", INCLUDE),
        ("ProcessCreate", EXCLUDE),
        ("NetworkConnect", INCLUDE),
        ("ProcessTerminate", INCLUDE),
        ("FileCreate", INCLUDE),
    ]
    assert [r.position for r in cfg.rules] == [2, 4, 3, 1, 0]


@pytest.mark.parametrize(
    "attrs,onmatch",
    [
        ('onmatch="include"', INCLUDE),
        ('onmatch="EXCLUDE"', EXCLUDE),
        ('onmatch="Include"', INCLUDE),
        ('default="include"', EXCLUDE),
        ('default="exclude"', INCLUDE),  # legacy spelling is inverted
        ('onmatch="bogus"', EXCLUDE),  # unknown: manifest default (include) -> behaves like onmatch=exclude
    ],
)
def test_onmatch_and_legacy_default(attrs: str, onmatch: str) -> None:
    cfg = load(wrap(f"<ProcessCreate {attrs}/>"))
    assert cfg.rules[0].onmatch == onmatch


def test_unknown_onmatch_on_default_exclude_event() -> None:
    assert load(wrap('<FileCreate onmatch="x"/>')).rules[0].onmatch == INCLUDE


def test_onmatch_errors_skip_element_but_accept() -> None:
    cfg = load(
        wrap(
            '<ProcessCreate onmatch="include" default="exclude"><Image>a</Image></ProcessCreate>'
            '<NetworkConnect><Image>b</Image></NetworkConnect><FileCreate onmatch="include"/>'
        )
    )
    assert [r.tag for r in cfg.rules] == ["FileCreate"]
    assert cfg.warnings == (
        "Error: Can't specify onmatch and default on ProcessCreate (pick only one)",
        "Error: You need to specifiy the onmatch attribute on NetworkConnect.",
    )
    assert describe_load(cfg)[-1] == "Configuration file validated."


def test_incorrect_field_skips_later_elements_of_that_tag() -> None:
    cfg = load(
        wrap(
            '<ProcessCreate onmatch="include"><Image>a</Image></ProcessCreate>'
            '<ProcessCreate onmatch="exclude"><Image>b</Image><SourceIp>1</SourceIp></ProcessCreate>'
            '<ProcessCreate onmatch="exclude"><Image>c</Image></ProcessCreate>'
            '<NetworkConnect onmatch="include"><Rule><Image>x</Image><rule/></Rule></NetworkConnect>'
            '<FileCreate onmatch="include"><TargetFilename>t</TargetFilename></FileCreate>'
        )
    )
    assert [(r.tag, r.onmatch) for r in cfg.rules] == [("ProcessCreate", INCLUDE), ("FileCreate", INCLUDE)]
    assert cfg.warnings == ("Incorrect field SourceIp", "Incorrect field rule")


def test_rule_aggregates() -> None:
    cfg = load(
        wrap(
            '<RuleGroup name="grp" groupRelation="or"><ProcessCreate onmatch="include">'
            '<Rule name="r1" groupRelation="and"><Image>a</Image>'
            '<CommandLine name="own">b</CommandLine></Rule>'
            '<RULE><Image>c</Image></RULE><rule groupRelation="AND"/><Image>d</Image>'
            "</ProcessCreate></RuleGroup>"
        )
    )
    items = cfg.rules[0].items
    assert isinstance(items[0], RuleAggregate) and items[0].relation == AND and items[0].name == "r1"
    assert [f.name for f in items[0].filters] == ["r1", "own"]
    assert (
        isinstance(items[1], RuleAggregate) and items[1].relation == OR and items[1].filters[0].name == "grp"
    )
    assert isinstance(items[2], Filter) and items[2].value == "d"  # the empty <rule/> leaves nothing
    assert len(items) == 3


def test_filter_values_are_untrimmed_and_conditions_case_insensitive() -> None:
    cfg = load(
        wrap(
            '<ProcessCreate onmatch="include"><Image condition="Contains"> a\n</Image>'
            '<CommandLine condition="">x</CommandLine><User/><Image condition="BEGIN WITH">/</Image>'
            "</ProcessCreate>"
        )
    )
    fs = cfg.rules[0].filters()
    assert [(f.condition, f.value) for f in fs] == [
        ("contains", " a\n"),
        ("is", "x"),
        ("is", ""),
        ("begin with", "/"),
    ]


def test_unknown_condition_rejected() -> None:
    with pytest.raises(RuleError) as exc:
        load(
            wrap(
                '\n<ProcessCreate onmatch="include">\n  <Image condition="something">x</Image>'
                "</ProcessCreate>"
            ),
            "c.xml",
        )
    e = exc.value
    assert e.line == 3
    assert str(e).startswith(
        'c.xml:3: <Image condition="something">: Unknown condition: something. '
        "Expected values are is, is not, contains, contains any, is any, contains all, "
    )
    assert e.upstream.startswith("Error: Unknown condition: something\nExpected values are is, is not,")
    assert e.upstream.endswith("less than, more than, image, not begin with, not end with")


def test_rule_name_length_limit() -> None:
    ok = "N" * 255
    cfg = load(
        wrap(
            f'<RuleGroup name="{ok}" groupRelation="or"><ProcessCreate onmatch="include">'
            f"<Image>a</Image></ProcessCreate></RuleGroup>"
        )
    )
    assert cfg.rules[0].items[0].name == ok
    for where in (
        f'<RuleGroup name="{ok}X" groupRelation="or"><ProcessCreate onmatch="include"><Image>a</Image>'
        f"</ProcessCreate></RuleGroup>",
        f'<ProcessCreate onmatch="include"><Rule name="{ok}X"><Image>a</Image></Rule></ProcessCreate>',
        f'<ProcessCreate onmatch="include"><Image name="{ok}X">a</Image></ProcessCreate>',
    ):
        with pytest.raises(RuleError, match="Rule name is larger than 255 characters"):
            load(wrap(where))
    # an over-long RuleGroup name is harmless when every filter has its own name
    cfg = load(
        wrap(
            f'<RuleGroup name="{ok}X" groupRelation="or"><ProcessCreate onmatch="include">'
            f'<Image name="short">a</Image></ProcessCreate></RuleGroup>'
        )
    )
    assert cfg.rules[0].items[0].name == "short"


def test_longnames_unit_test_config() -> None:
    cfg = load_config(CONFIGS / "sysmoncommon-unittests/longnames.xml")
    names = [f.name for f in cfg.rules_for(1)[0].filters()] + [
        f.name for r in cfg.rules_for(1)[1:] for f in r.filters()
    ]
    assert sorted(len(n) for n in names) == [255, 255, 255]


# --- defaults ---------------------------------------------------------------


def test_default_config() -> None:
    cfg = default_config()
    assert cfg.source == "Defaults"
    assert cfg.schema_version == "4.90"
    assert rule_set(cfg).enabled == frozenset({1, 5})
    for e in schema.EVENT_TYPES:
        expected = (True, "-") if e.id in (1, 4, 5, 16, 255) else (False, "-")
        assert rule_set(cfg).matcher(e.id).decide(("x",) * len(e.fields)) == expected


def test_no_event_filtering_uses_manifest_defaults() -> None:
    cfg = load('<Sysmon schemaversion="4.90"/>')
    assert rule_set(cfg).enabled == frozenset({1, 5})
    assert rule_set(cfg).matcher(3).constant == (False, "-")
