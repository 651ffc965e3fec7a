"""Where the `sysmon` command keeps its state, and the environment overrides tests use.

Upstream keeps everything in /opt/sysmon. We keep the config and argv there too (same paths, so
scripts that read /opt/sysmon/config.xml keep working); the EventRecordID counter lives in
filterd's state directory (/var/lib/sysmon/eventId), which is the unprivileged daemon's only
writable place and systemd's StateDirectory=sysmon. Run-time files (collector socket, pid files,
supervisor status) live in /run/sysmon.

Overrides (undocumented in the usage text, documented in docs/operations.md) let tests run a
private instance without touching the real one:
SYSMON_HOME, SYSMON_RUN_DIR, SYSMON_STATE_DIR, SYSMON_SYSLOG_SOCKET, SYSMON_USER, SYSMON_INIT,
SYSMON_PIN_DIR (read by the collector itself too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # holds collector/, filterd/, shared/, bpf/


class Paths(NamedTuple):
    home: Path  # /opt/sysmon: config.xml, argc, argv
    run: Path  # /run/sysmon: collector socket, pid files, supervisor status
    state: Path  # /var/lib/sysmon: filterd's eventId counter
    syslog_socket: str
    user: str  # the unprivileged user (and group) filterd runs as
    init: str  # "auto", "systemd" or "supervisor"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Paths:
        e = os.environ if env is None else env
        return cls(
            home=Path(e.get("SYSMON_HOME", "/opt/sysmon")),
            run=Path(e.get("SYSMON_RUN_DIR", "/run/sysmon")),
            state=Path(e.get("SYSMON_STATE_DIR", "/var/lib/sysmon")),
            syslog_socket=e.get("SYSMON_SYSLOG_SOCKET", "/dev/log"),
            user=e.get("SYSMON_USER", "sysmon"),
            init=e.get("SYSMON_INIT", "auto"),
        )

    @property
    def pins(self) -> Path:
        """bpffs directory of the pinned programs (collector/pins.py); `sysmon -u` removes it."""
        return Path(os.environ.get("SYSMON_PIN_DIR", "/sys/fs/bpf/sysmon"))

    @property
    def config(self) -> Path:
        return self.home / "config.xml"

    @property
    def config_label(self) -> Path:
        """The config path as the admin typed it: event 16's Configuration (filterd reads it)."""
        return self.home / "config.label"

    @property
    def outputs(self) -> Path:
        """Extra outputs for filterd (`json PATH`, filterd/outputs.py); the units read it too."""
        return self.home / "outputs"

    @property
    def argv(self) -> Path:
        return self.home / "argv"

    @property
    def argc(self) -> Path:
        return self.home / "argc"

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.run}/collector.sock"

    @property
    def socket(self) -> Path:
        return self.run / "collector.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.run / "sysmon.pid"

    @property
    def status(self) -> Path:
        return self.run / "supervisor.json"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    @property
    def filterd_dir(self) -> Path:
        """Run-time directory filterd (unprivileged) may write: its stats file."""
        return self.run / "filterd"

    @property
    def log(self) -> Path:
        return self.run / "sysmon.log"

    def uses_systemd(self) -> bool:
        if self.init == "systemd":
            return True
        if self.init == "supervisor":
            return False
        return os.path.isdir("/run/systemd/system")
