"""The `sysmon` command as a user runs it: banner, help, schema, refusals, config validation.

Real processes (python -m sysmon_cli); nothing here starts the daemons.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator

import pytest

from sysmon_cli.state import DEFAULT_CONFIG
from tests.sysmon_cli.helpers import Sandbox, run_sysmon

BANNER = "Sysmon v0.1.0 - Monitors system events"
GOOD = """<Sysmon schemaversion="4.70">
  <EventFiltering>
    <ProcessCreate onmatch="include">
      <Image condition="end with">/cat</Image>
    </ProcessCreate>
  </EventFiltering>
</Sysmon>
"""
BAD_CONDITION = """<Sysmon schemaversion="4.90">
<EventFiltering>
<ProcessCreate onmatch="include">
<Image condition="bogus">x</Image>
</ProcessCreate>
</EventFiltering>
</Sysmon>
"""


@pytest.fixture
def box() -> Iterator[Sandbox]:
    b = Sandbox()
    yield b
    b.cleanup()


def write(box: Sandbox, name: str, text: str) -> str:
    path = box.dir / name
    path.write_text(text)
    return str(path)


def test_banner_always_first() -> None:
    for args in (["-?"], ["-s"], ["-q"], []):
        assert run_sysmon(*args).out.splitlines()[0] == BANNER


def test_help() -> None:
    r = run_sysmon("-?")
    assert r.code == 0
    assert "Install:                 sysmon -i [<configfile>]" in r.err
    assert "-? config" in r.err


def test_config_help() -> None:
    r = run_sysmon("-?", "config")
    assert r.code == 0
    assert "Configuration usage (current schema is 4.90):" in r.err
    for cond in ("contains any", "excludes all", "not begin with", "more than", "image"):
        assert f"  {cond} " in r.err
    assert "* ProcessCreate" in r.err and "eBPFEvent" in r.err


def test_no_arguments_prints_usage() -> None:
    r = run_sysmon()
    assert r.code == 87 and "Usage:" in r.err


def test_schema() -> None:
    r = run_sysmon("-s")
    assert r.code == 0
    body = r.out.split("\n", 4)[4]
    assert body.lstrip().startswith('<manifest schemaversion="4.90" binaryversion="18">')
    assert 'rulename="eBPFEvent"' in body
    assert body.count("<manifest ") == 1
    assert run_sysmon("-s", "all").out.count("<manifest ") > 15
    r = run_sysmon("-s", "9.9")
    assert r.code == 87 and "Unknown schema version: 9.9" in r.err


def test_help_and_schema_need_no_root() -> None:
    assert run_sysmon("-s", user="nobody").code == 0
    assert run_sysmon("-?", user="nobody").code == 0


@pytest.mark.parametrize("args", [["-i"], ["-c"], ["-u"], ["-c", "/etc/hostname"]])
def test_everything_else_needs_root(args: list[str]) -> None:
    r = run_sysmon(*args, user="nobody")
    assert r.code == 228  # 740 (ERROR_ELEVATION_REQUIRED) as an exit status
    assert "You need to run Sysmon as root." in r.err


@pytest.mark.parametrize("args", [["-a", "x"], ["-d", "drv"], ["-r"], ["-i", "-n"]])
def test_windows_only_switches(args: list[str]) -> None:
    r = run_sysmon(*args)
    assert r.code == 87
    assert r.err.strip() == "Option not implemented on Linux."


def test_bad_switch_values() -> None:
    r = run_sysmon("-t", "loud")
    assert (r.code, r.err.strip()) == (87, "Possible options for DebugMode: verbose")
    r = run_sysmon("-u", "now")
    assert (r.code, r.err.strip()) == (87, "Invalid option for -u.")
    r = run_sysmon("-i", "-c")
    assert r.code == 87 and "cannot be combined" in r.err and "Usage:" in r.err


def test_rejected_config_names_file_and_line(box: Sandbox) -> None:
    path = write(box, "bad.xml", BAD_CONDITION)
    r = box.sysmon("-c", path)
    assert r.code == 87
    assert "Error: Unknown condition: bogus" in r.err  # upstream's text
    assert f"{path}:4: " in r.err  # and where
    assert not (box.home / "config.xml").exists()  # nothing applied


@pytest.mark.parametrize(
    ("text", "line", "upstream"),
    [
        (
            '<Sysmon schemaversion="3.40">\n</Sysmon>\n',
            1,
            "Error: Incorrect or unsupported schema version 3.40. Current Sysmon schema version 4.90",
        ),
        (
            '<Sysmon schemaversion="4.90">\n<CheckRevocation/>\n</Sysmon>\n',
            2,
            "Option not implemented on Linux.",
        ),
        (
            '<Sysmon schemaversion="4.90">\n<EventFiltering>\n<ProcessCreate onmatch="include">\n'
            "</EventFiltering>\n</Sysmon>\n",
            4,
            None,
        ),
    ],
)
def test_more_rejections(box: Sandbox, text: str, line: int, upstream: str | None) -> None:
    path = write(box, "c.xml", text)
    for action in ("-c", "-i"):
        r = box.sysmon(action, path)
        assert r.code == 87, r
        assert f"{path}:{line}: " in r.err
        if upstream:
            assert upstream in r.err
    assert not (box.home / "config.xml").exists()


def test_update_without_running_instance(box: Sandbox) -> None:
    path = write(box, "good.xml", GOOD)
    r = box.sysmon("-accepteula", "-c", path)
    assert r.code == 0, r
    assert r.out.splitlines()[4:7] == [
        "Loading configuration file with schema version 4.70",
        "Sysmon schema version: 4.90",
        "Configuration file validated.",
    ]
    assert "Error: Sysmon is not installed." in r.err  # upstream still succeeds
    cfg = box.home / "config.xml"
    assert cfg.read_text() == GOOD
    st, home = cfg.stat(), box.home.stat()
    sysmon_gid = grp.getgrnam("sysmon").gr_gid
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, sysmon_gid)
    assert (stat.S_IMODE(home.st_mode), home.st_uid, home.st_gid) == (0o750, 0, sysmon_gid)
    argv = (box.home / "argv").read_bytes().split(b"\0")[:-1]
    assert argv == [b"sysmon", b"-accepteula", b"-c", path.encode()]
    assert int.from_bytes((box.home / "argc").read_bytes(), "little") == 4

    r = box.sysmon("-c", "--")
    assert r.code == 0
    assert cfg.read_bytes() == DEFAULT_CONFIG


def test_dump_and_uninstall_when_not_running(box: Sandbox) -> None:
    r = box.sysmon("-c")
    assert (r.code, r.err.strip()) == (87, "Sysmon is not running")
    r = box.sysmon("-u")
    assert r.code == 0 and "Sysmon stopped." in r.out
    assert not os.path.exists(box.home / "config.xml")
