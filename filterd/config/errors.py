"""Errors raised when a Sysmon configuration file is rejected.

Owns the ConfigError hierarchy. Every rejection carries the file name, the line (when known) and one
message naming the offending element or value, so `sysmon -i/-c`, filterd and `sysmonctl lint` can
print the same single line. `upstream` keeps the text real Sysmon prints for the same case, for the
`sysmon` CLI that wants to mimic it.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Rejected config. str(e) == f"{file}:{line}: {message}" (line omitted if unknown)."""

    file: str
    line: int | None
    message: str
    upstream: str | None

    def __init__(self, file: str, line: int | None, message: str, upstream: str | None = None) -> None:
        self.file = file
        self.line = line
        self.message = message
        self.upstream = upstream
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"

    def __reduce__(self):  # keep pickling working with the custom __init__
        return (type(self), (self.file, self.line, self.message, self.upstream))


class ConfigReadError(ConfigError):
    """The file could not be read (missing, permission, too large)."""


class ConfigEncodingError(ConfigError):
    """Bytes that cannot be decoded with the detected or declared encoding."""


class ConfigSyntaxError(ConfigError):
    """Not well-formed XML, forbidden XML constructs (entities), or parser limits exceeded."""


class ConfigLimitError(ConfigError):
    """A configured safety limit (size, depth, value length) was exceeded."""


class ConfigStructureError(ConfigError):
    """Well-formed XML that is not a Sysmon configuration (wrong root element)."""


class SchemaVersionError(ConfigError):
    """Missing, malformed or unsupported `schemaversion`."""


class OptionError(ConfigError):
    """Invalid value of a top-level option (HashAlgorithms, FieldSizes)."""


class UnsupportedOptionError(OptionError):
    """A Windows-only option upstream Sysmon for Linux refuses ("Option not implemented on Linux.")."""


class RuleError(ConfigError):
    """Invalid rule inside <EventFiltering> (unknown condition, rule name too long)."""
