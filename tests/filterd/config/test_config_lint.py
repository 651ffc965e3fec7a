"""`sysmonctl lint` checks: each finding with its line; exit codes 0 clean, 1 findings, 2 rejected."""

from __future__ import annotations

from pathlib import Path

from filterd.config.lint import lint_config, lint_file
from filterd.config.loader import load_config_bytes

LINTY = """<Sysmon schemaversion="4.90">
  <DnsLookup>true</DnsLookup>
  <EventFiltering>
    <RuleGroup groupRelation="or">
      <ProcessCreate onmatch="include">
        <Image condition="end with">sh</Image>
        <Image condition="end with">/bash</Image>
        <Image condition="end with">sh</Image>
        <OriginalFileName condition="is">bash.exe</OriginalFileName>
        <IntegrityLevel condition="is not">High</IntegrityLevel>
        <Image condition="image">bash</Image>
        <CommandLine condition="contains">/tmp/evil</CommandLine>
      </ProcessCreate>
    </RuleGroup>
    <RuleGroup groupRelation="or">
      <ProcessCreate onmatch="exclude">
        <CommandLine condition="contains">/tmp</CommandLine>
      </ProcessCreate>
    </RuleGroup>
    <ImageLoad onmatch="include"><ImageLoaded condition="end with">.dll</ImageLoaded></ImageLoad>
    <NetworkConnect onmatch="include"><DestinationHostname condition="end with">.com</DestinationHostname>
      </NetworkConnect>
    <FileCreate onmatch="exclude"><Image>/a</Image></FileCreate>
    <FileCreate onmatch="exclude"><Image>/b</Image></FileCreate>
    <FileDelete onmatch="include"><Hashes condition="contains">SHA256</Hashes><Bogus/></FileDelete>
    <ProcessTerminate onmatch="include"/>
    <FileExecutableDetected onmatch="include"/>
    <RawAccessRead><Device>/dev/sda</Device></RawAccessRead>
  </EventFiltering>
</Sysmon>
"""


def findings() -> list[tuple[int | None, str]]:
    return [(f.line, f.code) for f in lint_config(load_config_bytes(LINTY.encode(), "linty.xml"))]


def test_each_check_reports_its_line() -> None:
    got = findings()
    expected = [
        (2, "ignored"),  # DnsLookup has no effect
        (7, "shadowed-filter"),  # end with /bash after end with sh
        (8, "duplicate-filter"),
        (9, "constant-field"),  # OriginalFileName always '-': never matches
        (10, "constant-field"),  # IntegrityLevel always 'no level': always matches
        (11, "image-on-linux"),
        (12, "include-excluded"),  # contains /tmp/evil is covered by the exclude contains /tmp
        (20, "windows-only-event"),
        (21, "constant-field"),
        (24, "several-exclude-groups"),
        (25, "ignored"),  # FileDelete dropped because of <Bogus>
        (25, "unknown-field"),
        (26, "logs-nothing"),
        (27, "unknown-element"),
        (28, "missing-onmatch"),
    ]
    assert got == expected


def test_messages_say_why() -> None:
    all_findings = lint_config(load_config_bytes(LINTY.encode(), "linty.xml"))
    msgs = {f.code: f.message for f in all_findings}
    by_line = {f.line: f.message for f in all_findings if f.code == "constant-field"}
    assert by_line[9] == "OriginalFileName is always '-' on Linux: this filter never matches"
    assert by_line[10] == "IntegrityLevel is always 'no level' on Linux: this filter always matches"
    assert by_line[21] == "DestinationHostname is always '-' on Linux: this filter never matches"
    assert "shadowed by the filter at line 6" in msgs["shadowed-filter"]
    assert msgs["duplicate-filter"] == "duplicate of the filter at line 6"
    assert "excluded by the filter at line 17" in msgs["include-excluded"]
    assert msgs["unknown-field"] == "upstream prints 'Incorrect field Bogus' and accepts the file"


def test_lint_file_exit_codes(tmp_path: Path) -> None:
    clean = tmp_path / "clean.xml"
    clean.write_text(
        '<Sysmon schemaversion="4.90"><EventFiltering><RuleGroup groupRelation="or">'
        '<ProcessCreate onmatch="include"><Image condition="end with">/curl</Image></ProcessCreate>'
        "</RuleGroup></EventFiltering></Sysmon>"
    )
    assert lint_file(clean) == ([], 0)
    linty = tmp_path / "linty.xml"
    linty.write_text(LINTY)
    lines, status = lint_file(linty)
    assert status == 1
    assert (
        lines[0]
        == f"{linty}:2: ignored: <DnsLookup> has no effect on Linux (host and port names are always '-')"
    )
    bad = tmp_path / "bad.xml"
    bad.write_text('<Sysmon schemaversion="4.90"><CheckRevocation/></Sysmon>')
    assert lint_file(bad) == ([f"{bad}:1: <CheckRevocation>: Option not implemented on Linux. [rejected]"], 2)
