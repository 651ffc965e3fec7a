"""Starting, stopping and signalling the running monitor: under systemd or under our supervisor.

Two backends with one interface, chosen by `backend()`: systemd when it is PID 1 (or
SYSMON_INIT=systemd), else the `sysmon` supervisor process (sysmon_cli/supervisor.py).
Under systemd the two units do the supervising; `sysmon -c` reloads with `systemctl reload`
(ExecReload sends SIGHUP to filterd). Without systemd, `sysmon -c` sends SIGHUP to the pid in
<run>/filterd.pid, checking first that the pid still is a filterd.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from sysmon_cli.paths import PACKAGE_ROOT, Paths
from sysmon_cli.procname import named_interpreter, python_env
from sysmon_cli.supervisor import START_TIMEOUT, daemon_pid, running_pid

UNITS = ("sysmon-collector.service", "sysmon-filterd.service")
UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))


class Backend(Protocol):
    def start(self, debug: str | None, btf: str | None) -> int: ...
    def stop(self, force: bool) -> bool: ...
    def running(self) -> bool: ...
    def reload(self) -> bool: ...


def backend(paths: Paths) -> Backend:
    return SystemdBackend(paths) if paths.uses_systemd() else SupervisorBackend(paths)


# -- without systemd ----------------------------------------------------------------------------


class SupervisorBackend:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def running(self) -> bool:
        return running_pid(self.paths) is not None

    def start(self, debug: str | None, btf: str | None) -> int:
        """Spawn `<home>/sysmon -m sysmon_cli -i <config> -service`, detached; wait until ready."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        exe = named_interpreter(self.paths.home)
        argv = [str(exe), "-P", "-m", "sysmon_cli", "-i", str(self.paths.config), "-service"]
        if debug is not None:
            argv += ["-t"] + (["verbose"] if debug else [])
        if btf:
            argv += ["-btf", btf]
        with contextlib.suppress(FileNotFoundError):
            self.paths.status.unlink()
        with open(self.paths.log, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd="/",
                env=python_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT + 30
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                print(
                    f"Failed to start Sysmon (exit code {code}). Last lines of {self.paths.log}:",
                    file=sys.stderr,
                )
                print(_tail(self.paths.log), file=sys.stderr)
                return code or 1
            status = _read_json(self.paths.status)
            if status.get("pid") == proc.pid and status.get("state") == "running":
                return 0
            time.sleep(0.1)
        print(f"Sysmon did not become ready in time; see {self.paths.log}", file=sys.stderr)
        return 1

    def stop(self, force: bool) -> bool:
        pid = running_pid(self.paths)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 45.0) and force:
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5.0)
        if force:  # daemons left behind by a supervisor that was killed
            for name in ("filterd", "collector"):
                dpid = daemon_pid(self.paths, name)
                if dpid is not None:
                    os.kill(dpid, signal.SIGKILL)
                    _wait_gone(dpid, 5.0)
        return pid is not None

    def reload(self) -> bool:
        pid = daemon_pid(self.paths, "filterd")
        if pid is None:
            return False
        os.kill(pid, signal.SIGHUP)
        return True


# -- with systemd ---------------------------------------------------------------------------------


class SystemdBackend:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @staticmethod
    def systemctl(*args: str, check: bool = False) -> int:
        return subprocess.run(["systemctl", *args], check=check).returncode

    def running(self) -> bool:
        return self.systemctl("is-active", "--quiet", UNITS[1]) == 0

    def ensure_units(self) -> None:
        """Units from the .deb are in /lib/systemd/system; from a source tree, write them to /etc."""
        for unit in UNITS:
            if any((d / unit).exists() for d in UNIT_DIRS):
                continue
            text = render_unit((PACKAGE_ROOT / "packaging" / "systemd" / unit).read_text(), self.paths)
            (UNIT_DIRS[0] / unit).write_text(text)
            os.chmod(UNIT_DIRS[0] / unit, 0o644)

    def start(self, debug: str | None, btf: str | None) -> int:
        if debug is not None or btf:
            print(
                "Warning: -t and -btf are not applied to the systemd units "
                "(see 'journalctl -u sysmon-filterd').",
                file=sys.stderr,
            )
        self.ensure_units()
        self.systemctl("daemon-reload")
        self.systemctl("enable", "--quiet", *UNITS)
        rc = self.systemctl("restart", *UNITS)
        if rc != 0:
            print(
                "Failed to start Sysmon: see 'systemctl status sysmon-collector sysmon-filterd'.",
                file=sys.stderr,
            )
        return rc

    def stop(self, force: bool) -> bool:
        was = self.running() or self.systemctl("is-active", "--quiet", UNITS[0]) == 0
        if force:
            self.systemctl("kill", "--signal=SIGKILL", *UNITS)
        self.systemctl("stop", *reversed(UNITS))
        self.systemctl("disable", "--quiet", *UNITS)
        return was

    def reload(self) -> bool:
        if not self.running():
            return False
        return self.systemctl("reload", UNITS[1]) == 0


def render_unit(text: str, paths: Paths) -> str:
    """A packaged unit adapted to a source tree: run the modules with this interpreter."""
    py = os.path.realpath(sys.executable)
    text = re.sub(
        r"^ExecStart=/usr/bin/(?:sysmon-|python3 -P -m )(collector|filterd)",
        lambda m: f"ExecStart={py} -P -m {m.group(1)}",
        text,
        flags=re.M,
    )
    # the tree and its venv lie outside the packaged ExecPaths=; filterd's seccomp still forbids exec
    text = re.sub(r"^(?:NoExecPaths|ExecPaths|Environment=PYTHONPATH)=.*\n", "", text, flags=re.M)
    pythonpath = python_env()["PYTHONPATH"]
    return text.replace("[Service]\n", f"[Service]\nEnvironment=PYTHONPATH={pythonpath}\n", 1)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_gone(pid: int, timeout: float, zombie_grace: float = 3.0) -> bool:
    """Wait until `pid` is gone. A zombie (dead, not yet reaped by its new parent) counts as
    gone after `zombie_grace` seconds: pgrep would still list it until then."""
    deadline = time.monotonic() + timeout
    zombie_since: float | None = None
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            zombie_since = zombie_since or time.monotonic()
            if time.monotonic() - zombie_since > zombie_grace:
                return True
        time.sleep(0.05)
    return False
