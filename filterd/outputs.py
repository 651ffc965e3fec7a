"""The outputs file (`/opt/sysmon/outputs`): extra sinks, set apart from the Sysmon config.

Why a file of its own: the Sysmon config is upstream's format and says nothing about where events
go, and the `sysmon` command and the systemd unit must pass the same setting without editing a
command line. Both give filterd `--outputs /opt/sysmon/outputs`; a missing file means syslog only.

Format: one `key value` per line, `#` comments and blank lines ignored. Keys:
    json PATH     JSON lines (filterd/sink/json_lines.py) appended to PATH (absolute), or `-`
                  for stdout
Anything else is rejected with its line, like a bad config: an output the admin asked for must
not go missing silently. Read once at start; changing it needs a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterd.config.errors import ConfigError

MAX_SIZE = 64 << 10


@dataclass(frozen=True)
class Outputs:
    json: str | None = None  # a path, "-" for stdout, None for none


def parse_outputs(text: str, name: str) -> Outputs:
    """The settings in `text` (the file's content); ConfigError names the file and line."""
    json_path: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split(None, 1)
        value = rest[0].strip() if rest else ""
        if key != "json":
            raise ConfigError(name, n, f"unknown output {key!r} (known: json)")
        if json_path is not None:
            raise ConfigError(name, n, "json is given twice")
        if value != "-" and not value.startswith("/"):
            raise ConfigError(name, n, f"json needs an absolute path or '-', not {value!r}")
        if "\x00" in value or value.endswith("/"):
            raise ConfigError(name, n, f"json needs a file name, not {value!r}")
        json_path = value
    return Outputs(json=json_path)


def read_outputs(path: str) -> Outputs:
    """The outputs file at `path`; no file, no extra outputs."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        return Outputs()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror}") from None
    if len(data) > MAX_SIZE:
        raise ConfigError(path, None, f"larger than {MAX_SIZE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8") from None
    return parse_outputs(text, path)
