"""Running the real `sysmon` command (python -m sysmon_cli) against a private set of paths.

Every path the command uses is redirected by environment (sysmon_cli/paths.py) into a
directory under /run, so tests never touch /opt/sysmon, /run/sysmon or /var/lib/sysmon and
the unprivileged filterd can still reach its files (pytest's tmp dirs are 0700).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.harness.daemons import TEST_PIN_PREFIX

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


class Sandbox:
    """Private SYSMON_* paths under /run/sysmon-cli-test-XXXX (0755 so `sysmon` can traverse)."""

    def __init__(self, syslog_socket: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sysmon-cli-test-", dir="/run"))
        os.chmod(self.dir, 0o755)
        self.home = self.dir / "opt"
        self.run_dir = self.dir / "run"
        self.state = self.dir / "state"
        self.syslog_socket = syslog_socket or str(self.dir / "no-syslog")

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SYSMON_HOME=str(self.home),
            SYSMON_RUN_DIR=str(self.run_dir),
            SYSMON_STATE_DIR=str(self.state),
            SYSMON_SYSLOG_SOCKET=self.syslog_socket,
            SYSMON_INIT="supervisor",
            SYSMON_PIN_DIR=f"{TEST_PIN_PREFIX}{self.run_dir.name}",
            PYTHONPATH=str(ROOT),
        )
        return env

    def sysmon(self, *args: str, user: str | None = None, timeout: float = 400) -> Result:
        return run_sysmon(*args, env=self.env, user=user, timeout=timeout)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def run_sysmon(
    *args: str, env: dict[str, str] | None = None, user: str | None = None, timeout: float = 60
) -> Result:
    cmd = [sys.executable, "-m", "sysmon_cli", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    env = env or dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)
