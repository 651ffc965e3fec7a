"""`sysmonctl run`: both daemons in the foreground, each event's XML on the terminal and in syslog.

The collector (root) starts first; filterd starts once the collector's socket exists, drops to
the sysmon user and prints events. Ctrl-C stops filterd first (it logs event 4 Stopped), then
the collector. Either daemon dying ends the run with its exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_ENDPOINT = "ipc:///run/sysmon/collector.sock"


def daemon_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_for_socket(endpoint: str, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    if not endpoint.startswith("ipc://"):
        time.sleep(1.0)
        return proc.poll() is None
    path = Path(endpoint[len("ipc://") :])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def run(
    config: str | None,
    endpoint: str = DEFAULT_ENDPOINT,
    syslog_socket: str = "/dev/log",
    state_dir: str = "/var/lib/sysmon",
) -> int:
    if os.geteuid() != 0:
        print("sysmonctl run: the collector needs root", file=sys.stderr)
        return 1
    collector = subprocess.Popen(daemon_cmd("collector", "--endpoint", endpoint))
    if not wait_for_socket(endpoint, collector):
        collector.terminate()
        return collector.wait() or 1
    args = ["--endpoint", endpoint, "--stdout", "--syslog-socket", syslog_socket, "--state-dir", state_dir]
    if config:
        args += ["--config", os.path.abspath(config)]
    filterd = subprocess.Popen(daemon_cmd("filterd", *args))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    rc = 0
    while not stopping:
        if filterd.poll() is not None:
            rc = filterd.returncode
            break
        if collector.poll() is not None:
            rc = collector.returncode
            break
        time.sleep(0.2)
    for proc in (filterd, collector):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return rc
