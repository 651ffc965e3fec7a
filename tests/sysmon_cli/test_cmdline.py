"""The upstream command-line grammar: what is accepted, what is refused and with which message."""

from __future__ import annotations

import pytest

from sysmon_cli.cmdline import UsageError, parse


@pytest.mark.parametrize(
    ("argv", "action", "value"),
    [
        (["-i"], "i", None),
        (["-i", "cfg.xml"], "i", "cfg.xml"),
        (["-I", "cfg.xml"], "i", "cfg.xml"),  # switch names are case-insensitive
        (["-accepteula", "-i", "cfg.xml"], "i", "cfg.xml"),
        (["-i", "-accepteula"], "i", None),  # an optional value never starts with '-'
        (["-c"], "c", None),
        (["-c", "new.xml"], "c", "new.xml"),
        (["-u"], "u", None),
        (["-u", "force"], "u", "force"),
        (["-s"], "s", None),
        (["-s", "all"], "s", "all"),
        (["-s", "4.81"], "s", "4.81"),
        (["-ti", "x.xml"], "i", "x.xml"),  # single letters concatenate; the last takes the value
    ],
)
def test_actions(argv: list[str], action: str, value: str | None) -> None:
    opts = parse(argv)
    assert (opts.action, opts.value) == (action, value)


def test_c_dash_dash_restores_defaults() -> None:
    opts = parse(["-c", "--"])
    assert opts.action == "c" and opts.value is None and "-" in opts.switches


@pytest.mark.parametrize("argv", [["-?"], ["-h"], ["-help"], ["-H"], ["-?", "foo"]])
def test_help(argv: list[str]) -> None:
    assert parse(argv).help == "usage"


@pytest.mark.parametrize("word", ["config", "configuration", "CONFIG"])
def test_config_help(word: str) -> None:
    assert parse(["-?", word]).help == "config"


def test_debug_values() -> None:
    assert parse(["-t"]).debug == ""
    assert parse(["-t", "verbose"]).debug == "verbose"
    assert parse(["-i", "-t"]).debug == ""


def test_btf_and_service() -> None:
    opts = parse(["-i", "/opt/sysmon/config.xml", "-service", "-btf", "/x.btf"])
    assert opts.service and opts.switches["btf"] == "/x.btf" and opts.value == "/opt/sysmon/config.xml"


@pytest.mark.parametrize(
    ("argv", "message", "usage"),
    [
        ([], "", True),
        (["-i", "-c"], "Options -i and -c cannot be combined", True),
        (["-u", "-s"], "Options -u and -s cannot be combined", True),
        (["-q"], "Unknown option: -q", True),
        (["config.xml"], "Unexpected argument: config.xml", True),
        (["-a", "dir"], "Option not implemented on Linux.", False),
        (["-d", "drv"], "Option not implemented on Linux.", False),
        (["-r"], "Option not implemented on Linux.", False),
        (["-z", "1"], "Option not implemented on Linux.", False),
        (["-i", "-n"], "Option not implemented on Linux.", False),
        (["-t", "loud"], "Possible options for DebugMode: verbose", False),
        (["-u", "now"], "Invalid option for -u.", False),
        (["--"], "The '--' switch must be used with -c switch (config update) to set defaults.", False),
        (["-i", "--"], "The '--' switch must be used with -c switch (config update) to set defaults.", False),
        (["-a"], "Missing argument for -a", True),
        (["-i", "-i"], "Duplicate option: -i", True),
    ],
)
def test_refused(argv: list[str], message: str, usage: bool) -> None:
    with pytest.raises(UsageError) as e:
        parse(argv)
    assert e.value.message == message
    assert e.value.show_usage is usage
