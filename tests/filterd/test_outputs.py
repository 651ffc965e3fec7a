"""filterd.outputs: the outputs file is parsed totally: settings or a ConfigError naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.config.errors import ConfigError
from filterd.outputs import MAX_SIZE, Outputs, parse_outputs, read_outputs


def test_json_path_comments_and_blank_lines() -> None:
    text = "# extra outputs\n\n   json   /var/log/sysmon/sysmon events.json  \n"
    assert parse_outputs(text, "f") == Outputs(json="/var/log/sysmon/sysmon events.json")
    assert parse_outputs("json -\n", "f") == Outputs(json="-")
    assert parse_outputs("\tjson\t/x/y\n", "f") == Outputs(json="/x/y")
    assert parse_outputs("", "f") == Outputs()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("jsn /x\n", 1, "unknown output 'jsn'"),
        ("# c\njson relative.json\n", 2, "absolute path"),
        ("json\n", 1, "absolute path"),
        ("json /a\njson /b\n", 2, "twice"),
        ("json /var/log/\n", 1, "file name"),
    ],
)
def test_rejected(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_outputs(text, "/opt/sysmon/outputs")
    assert e.value.line == line and str(e.value).startswith(f"/opt/sysmon/outputs:{line}: ")


@given(st.text())
def test_any_text_gives_settings_or_config_error(text: str) -> None:
    try:
        out = parse_outputs(text, "f")
    except ConfigError:
        return
    assert out.json is None or out.json == "-" or out.json.startswith("/")


def test_read(tmp_path: Path) -> None:
    assert read_outputs(str(tmp_path / "missing")) == Outputs()
    f = tmp_path / "outputs"
    f.write_text("json /var/log/sysmon/sysmon.json\n")
    assert read_outputs(str(f)) == Outputs(json="/var/log/sysmon/sysmon.json")
    f.write_bytes(b"json /caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_outputs(str(f))
    f.write_bytes(b"#" * (MAX_SIZE + 1))
    with pytest.raises(ConfigError, match="larger than"):
        read_outputs(str(f))
    with pytest.raises(ConfigError, match="cannot read"):
        read_outputs(str(tmp_path))  # a directory
