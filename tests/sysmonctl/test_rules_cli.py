"""`sysmonctl rules test`, `sysmonctl rules dump` and `sysmonctl lint`."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from sysmonctl import rules_cli

CONFIG = """<Sysmon schemaversion="4.90">
  <EventFiltering>
    <RuleGroup name="shells" groupRelation="or">
      <ProcessCreate onmatch="include">
        <Image condition="end with">/bash</Image>
        <Image name="downloader" condition="end with">/curl</Image>
      </ProcessCreate>
    </RuleGroup>
    <NetworkConnect onmatch="exclude"/>
  </EventFiltering>
</Sysmon>
"""
EVENTS = [
    {"EventID": 1, "Image": "/usr/bin/bash", "CommandLine": "bash"},
    {"EventID": 1, "Image": "/usr/bin/curl", "RuleName": "ignored"},
    {"EventID": 1, "Image": "/usr/bin/ls"},
    {"EventID": "5", "Image": "/usr/bin/ls"},
    {"EventID": 3, "EventData": {"Image": "/usr/bin/curl", "Initiated": True, "DestinationPort": 443}},
    {"EventID": 16, "Configuration": "x"},
]


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "config.xml"
    cfg.write_text(CONFIG)
    ev = tmp_path / "events.jsonl"
    ev.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return cfg, ev


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = rules_cli.main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_rules_test_text(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, ev = files
    status, out, err = run(["rules", "test", str(cfg), str(ev)], capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "1\tEventID=1\tinclude\tRuleName=shells",
        "2\tEventID=1\tinclude\tRuleName=downloader",
        "3\tEventID=1\texclude\tRuleName=-",
        "4\tEventID=5\tinclude\tRuleName=-",
        "5\tEventID=3\tinclude\tRuleName=-",
        "6\tEventID=16\tinclude\tRuleName=-",
    ]


def test_rules_test_json_and_bad_lines(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, ev = files
    ev.write_text(ev.read_text() + 'not json\n\n[1]\n{"Image": "x"}\n{"EventID": 99}\n')
    status, out, err = run(["rules", "test", "--json", str(cfg), str(ev)], capsys)
    assert status == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[1] == {"line": 2, "EventID": 1, "include": True, "RuleName": "downloader"}
    assert len(rows) == 6
    assert err.splitlines() == [
        "error: events line 7: Expecting value: line 1 column 1 (char 0)",
        "error: events line 9: not a JSON object",
        "error: events line 10: no EventID",
        "error: events line 11: unknown EventID 99",
    ]


def test_rules_test_stdin(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _ = files
    monkeypatch.setattr("sys.stdin", io.StringIO('{"EventID": 1, "Image": "/bin/bash"}\n'))
    status, out, _ = run(["rules", "test", str(cfg), "-"], capsys)
    assert (status, out) == (0, "1\tEventID=1\tinclude\tRuleName=shells\n")


def test_rules_test_rejected_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<Sysmon schemaversion="4.90">\n<EventFiltering><ProcessCreate onmatch="include">'
        '<Image condition="starts">x</Image></ProcessCreate></EventFiltering></Sysmon>'
    )
    status, out, err = run(["rules", "test", str(bad), str(tmp_path / "none.jsonl")], capsys)
    assert status == 2 and out == ""
    assert err.startswith(f'error: {bad}:2: <Image condition="starts">: Unknown condition: starts.')
    status, _, err = run(["rules", "dump", str(bad)], capsys)
    assert status == 2


def test_rules_test_missing_events_file(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, ev = files
    status, _, err = run(["rules", "test", str(cfg), str(ev) + ".missing"], capsys)
    assert status == 2 and "No such file" in err


def test_rules_dump(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = files
    status, out, _ = run(["rules", "dump", str(cfg)], capsys)
    assert status == 0
    assert out == (
        "Rule configuration (version 4.90):\n"
        " - ProcessCreate                      onmatch: include   combine rules using 'Or'\n"
        "\tImage                          filter: end with     value: '/bash'\n"
        "\tImage                          filter: end with     value: '/curl'\n"
        " - NetworkConnect                     onmatch: exclude   combine rules using 'And'\n"
    )


def test_rules_dump_prints_upstream_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "w.xml"
    cfg.write_text(
        '<Sysmon schemaversion="4.90"><EventFiltering><ProcessCreate onmatch="include">'
        "<Nope/></ProcessCreate></EventFiltering></Sysmon>"
    )
    status, out, err = run(["rules", "dump", str(cfg)], capsys)
    assert (status, out) == (0, "No rules installed\n")
    assert err == f"warning: {cfg}: Incorrect field Nope\n"


def test_lint(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = files
    assert run(["lint", str(cfg)], capsys) == (0, "", "")
    cfg.write_text(
        CONFIG.replace(
            '<NetworkConnect onmatch="exclude"/>',
            '<NetworkConnect onmatch="exclude"/><NetworkConnect onmatch="exclude"/>',
        )
    )
    status, out, _ = run(["lint", str(cfg)], capsys)
    assert status == 1
    assert out == (
        f'{cfg}:9: several-exclude-groups: 2 onmatch="exclude" <NetworkConnect> elements (lines 9, 9) '
        "and no include: upstream then drops every NetworkConnect event that matches none of them, "
        "i.e. logs nothing; merge them\n"
    )
    bad = tmp_path / "bad.xml"
    bad.write_text("<Sysmon>")
    status, out, _ = run(["lint", str(bad)], capsys)
    assert status == 2 and out.startswith(f"{bad}:1: malformed XML:")


def test_add_subcommands_on_a_foreign_parser(files: tuple[Path, Path]) -> None:
    cfg, _ = files
    parser = argparse.ArgumentParser(prog="sysmonctl")
    sub = parser.add_subparsers(dest="command", required=True)
    rules_cli.add_subcommands(sub)
    args = parser.parse_args(["rules", "dump", str(cfg)])
    out = io.StringIO()
    assert rules_cli.cmd_rules_dump(args, out=out) == 0
    assert out.getvalue().startswith("Rule configuration (version 4.90):")
    with pytest.raises(SystemExit):
        parser.parse_args(["rules"])  # a rules subcommand is required


def test_sysmonctl_entry_point_has_the_commands(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cli = pytest.importorskip("sysmonctl.cli")
    cfg, ev = files
    assert cli.main(["rules", "test", str(cfg), str(ev)]) == 0
    assert capsys.readouterr().out.startswith("1\tEventID=1\tinclude\tRuleName=shells")
    assert cli.main(["lint", str(cfg)]) == 0
