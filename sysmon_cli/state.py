"""Files under /opt/sysmon: the active config and the argv of the last -i/-c, as upstream keeps them.

Permissions: /opt/sysmon is 0750 root:sysmon and config.xml 0640 root:sysmon, so the unprivileged
filterd can re-read the config on SIGHUP and nobody else can read it (configs reveal what is
watched). Writes are atomic (temp file + rename): a filterd reloading mid-write sees the old file
or the new one, never half of one.
"""

from __future__ import annotations

import grp
import os
import struct
from pathlib import Path

from sysmon_cli.paths import Paths

# Upstream's createEmptyConfigFile: no rules, so ProcessCreate/Terminate (default include) are logged.
DEFAULT_CONFIG = b'<Sysmon schemaversion="4.22">\n<EventFiltering>\n</EventFiltering>\n</Sysmon>\n'


def group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise SystemExit(f"Error: group '{name}' does not exist (create the service user first).") from None


def prepare_home(paths: Paths) -> None:
    """Create /opt/sysmon (0750 root:<group>) and fix its mode if it exists."""
    paths.home.mkdir(parents=True, exist_ok=True)
    os.chown(paths.home, 0, group_id(paths.user))
    os.chmod(paths.home, 0o750)


def _atomic_write(path: Path, data: bytes, mode: int, gid: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_config(paths: Paths, data: bytes, label: str = "Defaults") -> None:
    """Install `data` as the active config (0640 root:<group>), and `label`, the name event 16
    gives it (the path as typed, as upstream prints it), beside it."""
    prepare_home(paths)
    gid = group_id(paths.user)
    _atomic_write(paths.config, data, 0o640, gid)
    _atomic_write(paths.config_label, os.fsencode(label), 0o640, gid)


def write_argv(paths: Paths, argv: list[str]) -> None:
    """Store argc (native int) and NUL-separated argv like upstream's /opt/sysmon/argc and argv."""
    prepare_home(paths)
    _atomic_write(paths.argc, struct.pack("=i", len(argv)), 0o600, 0)
    _atomic_write(paths.argv, b"".join(os.fsencode(a) + b"\0" for a in argv), 0o600, 0)


def read_argv(paths: Paths) -> list[str]:
    try:
        data = paths.argv.read_bytes()
    except FileNotFoundError:
        return []
    return [os.fsdecode(a) for a in data.split(b"\0")[:-1]]
