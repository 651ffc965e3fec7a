"""`sysmon -c` dump format (reference §3.6): golden outputs written from the upstream layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd.config.dump import dump_config
from filterd.config.loader import load_config, load_config_bytes

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
