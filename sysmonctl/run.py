"""`sysmonctl run`: the monitor in the foreground, every event's XML on the terminal and in syslog.

Not a launcher of its own: it is the `sysmon` supervisor (sysmon_cli/supervisor.py) in the
foreground mode `sysmon -t` uses, so the start sequence, time-outs, interpreter flags, the
collector's user and group and its watchdog are the service's. Only the config differs: the
file given with --config, else filterd's built-in one (ProcessCreate and ProcessTerminate),
never the installed /opt/sysmon/config.xml. Ctrl-C stops filterd first (it logs event 4
Stopped), then the collector; a daemon that fails to start ends the run with its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sysmon_cli.paths import Paths


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    paths = Paths.from_env()
    r = sub.add_parser("run", help="run collector and filterd in the foreground, printing events")
    r.add_argument("--config", help="Sysmon XML config (default: built-in: log ProcessCreate/Terminate)")
    r.add_argument("--syslog-socket", default=paths.syslog_socket)
    r.add_argument("--state-dir", default=str(paths.state), help="EventRecordID and stream position")
    r.add_argument("--run-dir", default=str(paths.run), help="collector socket, pid and status files")
    r.add_argument("--btf", help="BTF file for kernels without /sys/kernel/btf/vmlinux")
    r.set_defaults(func=lambda a: run(a.config, a.syslog_socket, a.state_dir, a.run_dir, a.btf))


def run(
    config: str | None,
    syslog_socket: str | None = None,
    state_dir: str | None = None,
    run_dir: str | None = None,
    btf: str | None = None,
) -> int:
    if os.geteuid() != 0:
        print("sysmonctl run: the collector needs root", file=sys.stderr)
        return 1
    from sysmon_cli.service import backend
    from sysmon_cli.supervisor import Supervisor

    paths = Paths.from_env()
    paths = paths._replace(
        syslog_socket=syslog_socket or paths.syslog_socket,
        state=Path(state_dir) if state_dir else paths.state,
        run=Path(run_dir) if run_dir else paths.run,
    )
    if backend(paths).running():
        print("sysmonctl run: Sysmon is already running; stop it first with 'sysmon -u'.", file=sys.stderr)
        return 1
    if config is not None and not os.path.isfile(config):
        print(f"sysmonctl run: {config}: no such file", file=sys.stderr)
        return 1
    try:
        return Supervisor(paths, debug="", btf=btf, config=os.path.abspath(config) if config else "").run()
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
