"""Scenario table ported from upstream's Rules.ProcessEventRules (SysmonCommon UnitTests/rules.cpp,
scenario names as upstream's tests name them): config + event -> include/exclude + RuleName.

Every scenario is checked three ways: the compiled matcher, the engine's literal evaluator and the
independent reference in rules_reference.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd.config.loader import load_config, load_config_bytes
from filterd.config.model import Config
from filterd.rules import rule_set
from filterd.rules.exact import exact_evaluator
from tests.filterd.rules.rules_reference import reference_decide, values_for

UNITTESTS = Path(__file__).resolve().parents[2] / "data" / "configs" / "sysmoncommon-unittests"
N255 = "N" * 255


def cfg(body: str, version: str = "4.90") -> Config:
    xml = f'<Sysmon schemaversion="{version}"><EventFiltering>{body}</EventFiltering></Sysmon>'
    return load_config_bytes(xml.encode(), "scenario.xml")


def group(inner: str, name: str = "", relation: str = "or") -> str:
    return f'<RuleGroup name="{name}" groupRelation="{relation}">{inner}</RuleGroup>'


def pc(onmatch: str, inner: str) -> str:
    return f'<ProcessCreate onmatch="{onmatch}">{inner}</ProcessCreate>'


def check(config: Config, event_id: int, fields: dict[str, str], expected: tuple[bool, str]) -> None:
    values = values_for(event_id, fields)
    got = rule_set(config).matcher(event_id).decide(values)
    assert got == expected, f"compiled matcher: {got} != {expected}"
    assert exact_evaluator(config, event_id).decide(values) == expected, "engine literal evaluator"
    assert reference_decide(config, event_id, values) == expected, "test reference"


INC, EXC = (True, "-"), (False, "-")


def inc(name: str) -> tuple[bool, str]:
    return (True, name)


# (scenario, config body, schema version, event id, fields, expected)
SCENARIOS = [
    ("Includes all by default", "", "4.90", 1, {"Image": "/usr/bin/ls"}, INC),
    (
        "Includes all by default on a default exclude",
        '<NetworkConnect onmatch="exclude"/>',
        "4.90",
        3,
        {"Image": "/usr/bin/curl"},
        INC,
    ),
    ("No rules means the default is applicable (exclude)", pc("exclude", ""), "4.90", 3, {"Image": "x"}, EXC),
    ("No rules means the default is applicable (include)", pc("include", ""), "4.90", 5, {"Image": "x"}, INC),
    ("Exclude all by default", pc("include", ""), "4.90", 1, {"Image": "/usr/bin/ls"}, EXC),
    (
        "Process command-line contains string",
        group(pc("include", '<CommandLine condition="contains">secret</CommandLine>'), "Group1"),
        "4.90",
        1,
        {"CommandLine": "cat /tmp/SECRET.txt"},
        inc("Group1"),
    ),
    (
        "Process command-line contains string (no match)",
        group(pc("include", '<CommandLine condition="contains">secret</CommandLine>'), "Group1"),
        "4.90",
        1,
        {"CommandLine": "cat /tmp/public.txt"},
        EXC,
    ),
    (
        "Process command-line contains multiple string",
        group(
            pc(
                "include",
                '<CommandLine condition="contains">foo</CommandLine>'
                '<CommandLine condition="contains">bar</CommandLine>',
            ),
            "G",
        ),
        "4.90",
        1,
        {"CommandLine": "xBARx"},
        inc("G"),
    ),
    (
        "Process command-line contains string but exclude",
        group(pc("include", '<CommandLine condition="contains">foo</CommandLine>'), "G")
        + group(pc("exclude", '<CommandLine condition="contains">bar</CommandLine>'), "E"),
        "4.90",
        1,
        {"CommandLine": "foo bar"},
        EXC,
    ),
    (
        "Process command-line contains string but exclude (include only)",
        group(pc("include", '<CommandLine condition="contains">foo</CommandLine>'), "G")
        + group(pc("exclude", '<CommandLine condition="contains">bar</CommandLine>'), "E"),
        "4.90",
        1,
        {"CommandLine": "foo"},
        inc("G"),
    ),
    (
        "Process command-line contains string but exclude (neither)",
        group(pc("include", '<CommandLine condition="contains">foo</CommandLine>'), "G")
        + group(pc("exclude", '<CommandLine condition="contains">bar</CommandLine>'), "E"),
        "4.90",
        1,
        {"CommandLine": "baz"},
        EXC,
    ),
    (
        "Check 4.1 configuration default to OR groups",
        pc("include", "<Image>/bin/a</Image><CommandLine>b</CommandLine>"),
        "4.1",
        1,
        {"Image": "/bin/a"},
        INC,
    ),
    (
        "Check 4.21 configuration default to AND groups",
        pc("include", "<Image>/bin/a</Image><CommandLine>b</CommandLine>"),
        "4.21",
        1,
        {"Image": "/bin/a"},
        EXC,
    ),
    (
        "Check 4.21 configuration default to AND groups (both)",
        pc("include", "<Image>/bin/a</Image><CommandLine>b</CommandLine>"),
        "4.21",
        1,
        {"Image": "/bin/a", "CommandLine": "b"},
        INC,
    ),
]

# one matching and one non-matching event per condition
CONDITION_CASES = [
    ("is", "/usr/bin/LS", "/usr/bin/ls", "/usr/bin/lsx"),
    ("is any", "/bin/sh;/usr/bin/ls", "/USR/BIN/LS", "/usr/bin/l"),
    ("is not", "/usr/bin/ls", "/usr/bin/cat", "/USR/bin/ls"),
    ("contains", "bin/l", "/usr/bin/ls", "/usr/sbin/x"),
    ("contains any", "zzz;bin/L", "/usr/bin/ls", "/usr/sbin/x"),
    ("contains all", "usr;LS", "/usr/bin/ls", "/usr/bin/cat"),
    ("excludes", "cat", "/usr/bin/ls", "/usr/bin/cat"),
    ("excludes any", "cat;dog", "/usr/bin/ls", "/usr/bin/dog"),
    ("excludes all", "usr;dog", "/usr/bin/ls", "/usr/bin/dog"),
    ("begin with", "/USR/", "/usr/bin/ls", "/bin/ls"),
    ("end with", "/LS", "/usr/bin/ls", "/usr/bin/lsx"),
    ("not begin with", "/usr/", "/bin/ls", "/usr/bin/ls"),
    ("not end with", "ls", "/usr/bin/cat", "/usr/bin/ls"),
    ("less than", "/usr/bin/m", "/usr/bin/ls", "/usr/bin/x"),
    ("more than", "/usr/bin/m", "/usr/bin/x", "/usr/bin/ls"),
    ("image", "/usr/bin/ls", "/usr/bin/ls", "ls"),
]
for cond, value, yes, no in CONDITION_CASES:
    body = group(pc("include", f'<Image condition="{cond}">{value}</Image>'), f"cond-{cond}")
    SCENARIOS.append((f"Check '{cond}' condition", body, "4.90", 1, {"Image": yes}, inc(f"cond-{cond}")))
    SCENARIOS.append((f"Check '{cond}' condition (no match)", body, "4.90", 1, {"Image": no}, EXC))

IMAGE_LOAD = '<ImageLoad onmatch="include"><Image condition="image">{}</Image></ImageLoad>'
SCENARIOS += [
    (
        "'image' ImageLoad basename",
        IMAGE_LOAD.format("cmd.exe"),
        "4.90",
        7,
        {"Image": "C:\\Windows\\System32\\CMD.EXE"},
        INC,
    ),
    (
        "'image' ImageLoad basename mismatch",
        IMAGE_LOAD.format("cmd.exe"),
        "4.90",
        7,
        {"Image": "C:\\Windows\\System32\\cmd.exe.bak"},
        EXC,
    ),
    (
        "'image' ImageLoad full path",
        IMAGE_LOAD.format("c:\\windows\\system32\\cmd.exe"),
        "4.90",
        7,
        {"Image": "C:\\Windows\\System32\\cmd.exe"},
        INC,
    ),
    (
        "'image' ImageLoad partial path",
        IMAGE_LOAD.format("system32\\cmd.exe"),
        "4.90",
        7,
        {"Image": "C:\\Windows\\System32\\cmd.exe"},
        EXC,
    ),
    (
        "Check 'image' condition on a Linux path",
        pc("include", '<Image condition="image">bash</Image>'),
        "4.90",
        1,
        {"Image": "/usr/bin/bash"},
        EXC,
    ),
    (
        "Check 'is any' on empty string",
        pc("include", '<CommandLine condition="is any"></CommandLine>'),
        "4.90",
        1,
        {"CommandLine": "ls"},
        EXC,
    ),
    (
        "Check 'is any' on multiple empty strings",
        pc("include", '<CommandLine condition="is any">;;;;</CommandLine>'),
        "4.90",
        1,
        {"CommandLine": "ls"},
        EXC,
    ),
    (
        "Rulegroup AND on same field",
        group(pc("include", "<Image>/bin/a</Image><Image>/bin/b</Image>"), "G", "and"),
        "4.90",
        1,
        {"Image": "/bin/b"},
        inc("G"),
    ),
    (
        "Rulegroup AND on same field and another field",
        group(pc("include", "<Image>/bin/a</Image><User>root</User><Image>/bin/b</Image>"), "G", "and"),
        "4.90",
        1,
        {"Image": "/bin/b", "User": "nobody"},
        EXC,
    ),
    (
        "Rulegroup OR on different fields",
        group(pc("include", "<Image>/bin/a</Image><CommandLine>b</CommandLine>"), "G", "or"),
        "4.90",
        1,
        {"CommandLine": "b"},
        inc("G"),
    ),
    (
        "Rule AND between two fields",
        pc(
            "include",
            '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine></Rule>',
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "CommandLine": "b"},
        inc("R"),
    ),
    (
        "Rule AND between two fields (one missing)",
        pc(
            "include",
            '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine></Rule>',
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "CommandLine": "c"},
        EXC,
    ),
    (
        "Rule AND on the same field is strict",
        pc(
            "include",
            '<Rule name="R" groupRelation="and"><CommandLine condition="contains">x</CommandLine>'
            '<CommandLine condition="contains">y</CommandLine></Rule>',
        ),
        "4.90",
        1,
        {"CommandLine": "x alone"},
        EXC,
    ),
    (
        "Rule AND between two fields in a OR RuleGroup",
        group(
            pc(
                "include",
                '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine>'
                "</Rule><User>root</User>",
            ),
            "G",
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "CommandLine": "b"},
        inc("R"),
    ),
    (
        "Rule AND between two fields in a OR RuleGroup (other alternative)",
        group(
            pc(
                "include",
                '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine>'
                "</Rule><User>root</User>",
            ),
            "G",
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "User": "root"},
        inc("G"),
    ),
    (
        "Rule OR between two fields",
        pc(
            "include",
            '<Rule name="R" groupRelation="or"><Image>/bin/a</Image><CommandLine>b</CommandLine></Rule>',
        ),
        "4.90",
        1,
        {"CommandLine": "b"},
        inc("R"),
    ),
    (
        "Rule AND between three fields",
        pc(
            "include",
            '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine>'
            "<User>root</User></Rule>",
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "CommandLine": "b", "User": "root"},
        inc("R"),
    ),
    (
        "Rule AND between three fields (two of three)",
        pc(
            "include",
            '<Rule name="R" groupRelation="and"><Image>/bin/a</Image><CommandLine>b</CommandLine>'
            "<User>root</User></Rule>",
        ),
        "4.90",
        1,
        {"Image": "/bin/a", "CommandLine": "b"},
        EXC,
    ),
]

REG_RUN = (
    '<RegistryEvent onmatch="include"><TargetObject condition="contains">run</TargetObject></RegistryEvent>'
)
REG = (
    '<RegistryEvent onmatch="include"><TargetObject name="run" condition="contains">\\CurrentVersion\\Run'
    "</TargetObject></RegistryEvent>"
)
for eid, fields in (
    (12, {"EventType": "CreateKey"}),
    (13, {"EventType": "SetValue", "Details": "x"}),
    (14, {"EventType": "RenameKey", "NewName": "y"}),
):
    SCENARIOS.append(
        (
            f"RegistryEvent (multiple sub-events on the id) {eid}",
            REG,
            "4.90",
            eid,
            {**fields, "TargetObject": "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\x"},
            inc("run"),
        )
    )

SCENARIOS += [
    (
        "Registry field specific to reg set value (set value)",
        '<RegistryEvent onmatch="include"><Details condition="contains">evil</Details></RegistryEvent>',
        "4.90",
        13,
        {"Details": "EVIL.exe"},
        INC,
    ),
    (
        "Registry field specific to reg set value (create key never matches)",
        '<RegistryEvent onmatch="include"><Details condition="contains">evil</Details></RegistryEvent>',
        "4.90",
        12,
        {"TargetObject": "evil"},
        EXC,
    ),
    (
        "Exclude rule ignored when field does not exists for type",
        REG_RUN
        + '<RegistryEvent onmatch="exclude"><Details condition="is not">never</Details></RegistryEvent>',
        "4.90",
        12,
        {"TargetObject": "HKLM\\run"},
        INC,
    ),
    (
        "Exclude rule applies when the field exists",
        REG_RUN
        + '<RegistryEvent onmatch="exclude"><Details condition="is not">never</Details></RegistryEvent>',
        "4.90",
        13,
        {"TargetObject": "HKLM\\run", "Details": "x"},
        EXC,
    ),
    (
        "Or conditions work even if one or more fields are not part of the event type",
        group(
            '<RegistryEvent onmatch="include"><Details>x</Details><NewName>y</NewName>'
            '<TargetObject condition="end with">\\run</TargetObject></RegistryEvent>',
            "G",
        ),
        "4.90",
        12,
        {"TargetObject": "HKLM\\Run"},
        inc("G"),
    ),
    (
        "AND group with a field not part of the event type never matches",
        group(
            '<RegistryEvent onmatch="include"><Details>x</Details><TargetObject>t</TargetObject>'
            "</RegistryEvent>",
            "G",
            "and",
        ),
        "4.90",
        12,
        {"TargetObject": "t"},
        EXC,
    ),
]

# Check behaviour on exclude/include on default include (ProcessCreate) and default exclude (NetworkConnect)
for tag, eid in (("ProcessCreate", 1), ("NetworkConnect", 3)):
    both = (
        f'<{tag} onmatch="include"><Image condition="contains">a</Image></{tag}>'
        f'<{tag} onmatch="exclude"><Image condition="contains">b</Image></{tag}>'
    )
    only_exc = f'<{tag} onmatch="exclude"><Image condition="contains">b</Image></{tag}>'
    only_inc = f'<{tag} onmatch="include"><Image condition="contains">a</Image></{tag}>'
    two_exc = (
        f'<RuleGroup groupRelation="or"><{tag} onmatch="exclude"><Image condition="contains">b</Image>'
        f'</{tag}></RuleGroup><RuleGroup groupRelation="or"><{tag} onmatch="exclude">'
        f'<Image condition="contains">c</Image></{tag}></RuleGroup>'
    )
    label = "default include" if eid == 1 else "default exclude"
    SCENARIOS += [
        (
            f"Check behaviour on exclude/include on {label}: matches both",
            both,
            "4.90",
            eid,
            {"Image": "ab"},
            EXC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: include only",
            both,
            "4.90",
            eid,
            {"Image": "a"},
            INC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: exclude only",
            both,
            "4.90",
            eid,
            {"Image": "b"},
            EXC,
        ),
        (f"Check behaviour on exclude/include on {label}: neither", both, "4.90", eid, {"Image": "z"}, EXC),
        (
            f"Check behaviour on exclude/include on {label}: lone exclude, no match",
            only_exc,
            "4.90",
            eid,
            {"Image": "z"},
            INC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: lone exclude, match",
            only_exc,
            "4.90",
            eid,
            {"Image": "b"},
            EXC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: lone include, no match",
            only_inc,
            "4.90",
            eid,
            {"Image": "z"},
            EXC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: two excludes, no match drops",
            two_exc,
            "4.90",
            eid,
            {"Image": "z"},
            EXC,
        ),
        (
            f"Check behaviour on exclude/include on {label}: empty exclude logs all",
            f'<{tag} onmatch="exclude"/>',
            "4.90",
            eid,
            {"Image": "z"},
            INC,
        ),
    ]

# RuleName cases
SCENARIOS += [
    (
        "RuleName: filter name over Rule name over RuleGroup name",
        group(
            pc(
                "include",
                '<Rule name="R"><Image name="F">/bin/a</Image><Image>/bin/b</Image></Rule><User>root</User>',
            ),
            "G",
        ),
        "4.90",
        1,
        {"Image": "/bin/a"},
        inc("F"),
    ),
    (
        "RuleName: Rule name inherited",
        group(
            pc(
                "include",
                '<Rule name="R"><Image name="F">/bin/a</Image><Image>/bin/b</Image></Rule><User>root</User>',
            ),
            "G",
        ),
        "4.90",
        1,
        {"Image": "/bin/b"},
        inc("R"),
    ),
    (
        "RuleName: RuleGroup name inherited",
        group(pc("include", '<Rule name="R"><Image name="F">/bin/a</Image></Rule><User>root</User>'), "G"),
        "4.90",
        1,
        {"User": "root"},
        inc("G"),
    ),
    (
        "RuleName: OR group reports the first matching filter in document order",
        pc(
            "include",
            '<Image name="first" condition="begin with">/usr</Image>'
            '<Image name="second" condition="end with">ls</Image>',
        ),
        "4.1",
        1,
        {"Image": "/usr/bin/ls"},
        inc("first"),
    ),
    (
        "RuleName: AND group reports the last matching named filter",
        pc(
            "include", '<Image name="img">/usr/bin/ls</Image><User name="usr">root</User><LogonId>0</LogonId>'
        ),
        "4.90",
        1,
        {"Image": "/usr/bin/ls", "User": "root", "LogonId": "0"},
        inc("usr"),
    ),
    (
        "RuleName: AND group, same field alternatives, the matching one names",
        pc(
            "include",
            '<Image name="a">/bin/a</Image><Image name="b">/bin/b</Image><User name="u">root</User>',
        ),
        "4.90",
        1,
        {"Image": "/bin/b", "User": "root"},
        inc("u"),
    ),
    (
        "RuleName: AND group, the first matching filter of a field wins the field",
        pc(
            "include",
            '<User name="u">root</User><Image name="a" condition="contains">bin</Image>'
            '<Image name="b" condition="contains">ls</Image>',
        ),
        "4.90",
        1,
        {"Image": "/bin/ls", "User": "root"},
        inc("a"),
    ),
    (
        "RuleName: several include groups match, the later in the document wins",
        group(pc("include", '<Image condition="contains">bin</Image>'), "early")
        + group(pc("include", '<Image condition="contains">ls</Image>'), "late"),
        "4.90",
        1,
        {"Image": "/bin/ls"},
        inc("late"),
    ),
    (
        "RuleName: include by default (lone exclude, no match) has no name",
        group(pc("exclude", "<Image>/bin/x</Image>"), "E"),
        "4.90",
        1,
        {"Image": "/bin/ls"},
        INC,
    ),
    (
        "RuleName: an unnamed deciding filter keeps a name from an earlier partial match",
        pc("exclude", '<Image name="leak">/bin/ls</Image><User>nobody</User>')
        + pc("include", '<Image condition="end with">ls</Image>'),
        "4.90",
        1,
        {"Image": "/bin/ls", "User": "root"},
        inc("leak"),
    ),
    (
        "RuleName: partial match inside a failing AND Rule leaks to an unnamed winner",
        pc(
            "include",
            '<Rule groupRelation="and"><Image name="leak">/bin/ls</Image><User>nobody</User></Rule>'
            '<Image condition="contains">ls</Image>',
        ),
        "4.1",
        1,
        {"Image": "/bin/ls", "User": "root"},
        inc("leak"),
    ),
    (
        "RuleName: a named winner overrides an earlier partial match",
        pc(
            "include",
            '<Rule groupRelation="and"><Image name="leak">/bin/ls</Image><User>nobody</User></Rule>'
            '<Image name="win" condition="contains">ls</Image>',
        ),
        "4.1",
        1,
        {"Image": "/bin/ls", "User": "root"},
        inc("win"),
    ),
    (
        "RuleName: Check rule names of 255 characters",
        group(pc("include", '<Image condition="contains">ls</Image>'), N255),
        "4.90",
        1,
        {"Image": "/bin/ls"},
        inc(N255),
    ),
]


@pytest.mark.parametrize(
    "name,body,version,event_id,fields,expected", SCENARIOS, ids=[s[0] for s in SCENARIOS]
)
def test_scenario(
    name: str, body: str, version: str, event_id: int, fields: dict[str, str], expected: tuple[bool, str]
) -> None:
    check(cfg(body, version), event_id, fields, expected)


# --- scenarios on upstream's own test configs ---------------------------------------------------------


@pytest.fixture(scope="module")
def unittests() -> Path:
    assert UNITTESTS.is_dir(), f"test data missing: {UNITTESTS}"
    return UNITTESTS


def test_expected_behaviour_of_the_sysmon_modular_configuration(unittests: Path) -> None:
    config = load_config(unittests / "sysmon-modular-config.xml", reject_windows_options=False)
    event = {
        "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "OriginalFileName": "PowerShell.EXE",
        "CommandLine": "powershell.exe -nop",
        "ParentImage": "C:\\Windows\\explorer.exe",
        "User": "CORP\\user",
        "IntegrityLevel": "Medium",
    }
    check(config, 1, event, inc("technique_id=T1059.001,technique_name=PowerShell"))


def test_check_rule_names_of_255_characters(unittests: Path) -> None:
    config = load_config(unittests / "longnames.xml")
    check(config, 1, {"Image": "C:\\powershell.exe"}, inc("X" * 255))
    check(config, 1, {"Image": "C:\\cmd.exe"}, inc("Y" * 255))
    check(config, 1, {"Image": "C:\\bash.exe"}, inc("Z" * 255))
    check(config, 1, {"Image": "C:\\bash.exe\\cmd.exe"}, inc("Z" * 255))  # later element wins
    check(config, 1, {"Image": "C:\\other.exe"}, EXC)


def test_check_generic_registry_filtering(unittests: Path) -> None:
    config = load_config(unittests / "reg-subrules.xml")
    run = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\evil"
    check(config, 13, {"TargetObject": run, "Details": "C:\\Users\\x\\Downloads\\e.exe"}, INC)
    check(config, 13, {"TargetObject": run, "Details": "C:\\Program Files\\ok.exe"}, EXC)
    check(config, 12, {"TargetObject": run}, EXC)  # no Details in create/delete: the AND rules cannot match
    check(config, 14, {"TargetObject": run, "NewName": "\\Downloads\\"}, EXC)


def test_emptyfields_configuration(unittests: Path) -> None:
    # schema 4.50: one AND group over 5 fields with empty values. `excludes all` with an empty value
    # can never match (its only token, compared unbounded, is contained in everything), so the
    # include group never matches and nothing is logged, whatever the other fields hold.
    config = load_config(unittests / "emptyfields.xml")
    base = {"CommandLine": "-", "Image": "/x", "Company": "-", "FileVersion": "-", "Description": "-"}
    check(config, 1, base, EXC)
    check(config, 1, {**base, "CommandLine": "", "Company": ""}, EXC)
    check(config, 1, {**base, "CommandLine": "", "Company": "", "Description": ""}, EXC)


def test_check_long_sub_rules_on_omega_configuration(unittests: Path) -> None:
    config = load_config(unittests / "sysmonconfig-export-omega.xml", reject_windows_options=False)
    events = [
        {
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd.exe /c whoami /all",
            "ParentImage": "C:\\Windows\\explorer.exe",
            "User": "CORP\\u",
        },
        {
            "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "CommandLine": "powershell -enc SQBFAFgA",
            "ParentImage": "C:\\Program Files\\Microsoft Office\\WINWORD.EXE",
        },
        {"Image": "/usr/bin/ls", "CommandLine": "ls -la", "ParentImage": "/usr/bin/bash"},
        {
            "Image": "C:\\Windows\\System32\\svchost.exe",
            "CommandLine": "svchost.exe -k netsvcs",
            "ParentImage": "C:\\Windows\\System32\\services.exe",
        },
    ]
    for fields in events:
        values = values_for(1, fields)
        expected = reference_decide(config, 1, values)
        assert rule_set(config).matcher(1).decide(values) == expected
        assert exact_evaluator(config, 1).decide(values) == expected
