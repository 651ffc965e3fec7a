"""Running the real `sysmon` command (python -m sysmon_cli) against a private set of paths.

Every path the command uses is redirected by environment (sysmon_cli/paths.py) into a
directory under /run, so tests never touch /opt/sysmon, /run/sysmon or /var/lib/sysmon and
the unprivileged filterd can still reach its files (pytest's tmp dirs are 0700).
"""

from __future__ import annotations

import atexit
import functools
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


@functools.cache
def code_for_others() -> Path:
    """Where another user can run our code: the checkout itself, or (a clone under a 0700
    directory such as mktemp -d gives) a world-readable copy of the packages."""
    if all(os.stat(p).st_mode & 0o001 for p in (ROOT, *ROOT.parents)):
        return ROOT
    copy = Path(tempfile.mkdtemp(prefix="sysmon-cli-code-", dir="/run"))
    atexit.register(shutil.rmtree, copy, True)  # /run is memory: a copy per test run would pile up
    os.chmod(copy, 0o755)
    for pkg in ("sysmon_cli", "filterd", "shared", "collector"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
    return copy


def run_sysmon(
    *args: str, env: dict[str, str] | None = None, user: str | None = None, timeout: float = 60
) -> Result:
    cmd = [sys.executable, "-m", "sysmon_cli", *args]
    root = ROOT
    if user is not None:  # the system interpreter: a venv under the checkout may be out of reach
        root = code_for_others()
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups",
               os.path.realpath(sys.executable), "-m", "sysmon_cli", *args]  # fmt: skip
    env = env or dict(os.environ, PYTHONPATH=str(root))
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)
