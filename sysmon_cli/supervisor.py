"""The `sysmon` process where systemd is not PID 1: start, watch and stop the two daemons.

What systemd does with the two units, done by one small root process named `sysmon`:
collector first (it owns the socket), filterd once the socket exists; a daemon that dies is
restarted with exponential backoff (1 s .. 30 s, reset after 60 s of good running) and every
restart is counted in <run>/supervisor.json; SIGHUP is passed to filterd (config reload);
SIGTERM stops filterd (it logs event 4 Stopped) and then the collector.

A hang is not an exit, so the collector also has a watchdog, as under systemd (`Type=notify`,
`WatchdogSec=`): it gets a NOTIFY_SOCKET of its own (<run>/collector.notify, root only, the
sender's pid checked like NotifyAccess=main) and WATCHDOG_USEC; once it has said READY=1, a
collector silent for WATCHDOG_S is killed with SIGKILL and restarted with the same backoff, and
the kill is counted (`watchdog_kills`). A collector that never says READY=1 has no watchdog.

Start-up is all or nothing, like upstream's `-service` parent waiting on its semaphore: if a
daemon dies before filterd is ready, the supervisor stops the other one and exits with that
daemon's exit code, which `sysmon -i` reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sysmon_cli.paths import Paths
from sysmon_cli.procname import python_env, set_process_name

BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # a daemon that ran this long restarts without delay next time
STOP_TIMEOUT = 15.0
START_TIMEOUT = 300.0  # bcc compiles the BPF programs at start: slow on a loaded 2-core machine
WATCHDOG_S = 10.0  # the unit's WatchdogSec=; the collector pings every WATCHDOG_S / 2
NOTIFY_MAX = 4096  # longest datagram read; sd_notify messages are a few bytes
NOTIFY_BURST = 64  # datagrams read per wake-up at most: a flood cannot starve the loop


class NotifySocket:
    """The receiving end of sd_notify for one child: a datagram socket only root can send to.

    Why SO_PASSCRED: the kernel stamps every datagram with the sender's pid, so a message from
    anything but the current collector (a leftover, a grandchild) is counted and ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected = 0  # datagrams from another pid, unreadable, or without credentials
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket from a killed supervisor
        self.sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    def fileno(self) -> int:
        return self.sock.fileno()

    def messages(self) -> Iterator[tuple[int, set[str]]]:
        """(sender pid, its KEY=VALUE lines) for each waiting datagram."""
        creds = socket.CMSG_SPACE(struct.calcsize("3i"))
        for _ in range(NOTIFY_BURST):
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(NOTIFY_MAX, creds)
            except (BlockingIOError, InterruptedError):
                return
            pid = next((struct.unpack_from("i", d)[0] for lvl, typ, d in anc
                        if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS), 0)  # fmt: skip
            if not pid:
                self.rejected += 1
                continue
            yield pid, {line for line in data.decode("utf-8", "replace").split("\n") if "=" in line}

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Child:
    """One supervised daemon and its restart bookkeeping. (A plain class: dataclasses would
    import inspect and ast, a megabyte of this small process.)"""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0
        self.restarts = 0
        self.failures = 0  # consecutive short runs, drives the backoff
        self.next_start = 0.0
        self.last_exit: int | None = None
        self.exits: list[int] = []
        self.env: dict[str, str] = {}  # added to the supervisor's environment
        self.ready = False  # said READY=1: the watchdog applies
        self.last_ping = 0.0
        self.watchdog_kills = 0
        self.killed = False  # by the watchdog, not yet reaped

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, cwd="/", env={**env, **self.env}, stdin=subprocess.DEVNULL)
        self.started_at = self.last_ping = time.monotonic()
        self.starts += 1
        self.ready = self.killed = False

    def heard(self, fields: set[str], now: float) -> None:
        if "READY=1" in fields:
            self.ready = True
        if self.ready and fields & {"READY=1", "WATCHDOG=1"}:
            self.last_ping = now

    def silent_for(self, now: float) -> float:
        """Seconds since the last ping of a ready child (0 when the watchdog does not apply)."""
        return now - self.last_ping if self.ready and not self.killed and self.pid is not None else 0.0

    def reaped(self) -> int | None:
        """The exit code if the process has just died (recorded once), else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        self.proc = None
        self.last_exit = code
        self.exits = (self.exits + [code])[-10:]
        return code

    def schedule_restart(self, now: float) -> float:
        ran = now - self.started_at
        self.failures = 0 if ran >= HEALTHY_AFTER else self.failures + 1
        delay = 0.0 if self.failures == 0 else min(BACKOFF_MAX, 2.0 ** (self.failures - 1))
        self.next_start = now + delay
        self.restarts += 1
        return delay

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)  # a stopped (hung) daemon could not act on it
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reaped()


def daemon_argv(
    paths: Paths, debug: str | None = None, btf: str | None = None, config: str | None = None
) -> dict[str, list[str]]:
    """The command lines of both daemons, with this interpreter (not the `sysmon` symlink).
    `config`: a file instead of the installed one (`sysmonctl run --config`), "" for filterd's
    built-in config."""
    py = [os.path.realpath(sys.executable), "-P", "-m"]
    collector = [*py, "collector", "--endpoint", paths.endpoint, "--group", paths.user, "--user", paths.user]
    collector += ["--quiet-pid", str(os.getpid())]  # our own files (pid, status) are not events
    if btf:
        collector += ["--btf", btf]
    if config is None:  # the installed config, as `sysmon -i` / `-c` wrote it
        config_args = ["--config", str(paths.config), "--config-label-file", str(paths.config_label)]
    else:
        config_args = ["--config", config] if config else []
    filterd = [
        *py, "filterd",
        "--endpoint", paths.endpoint,
        *config_args,
        "--control-socket", str(paths.run / "filterd.ctl"),
        "--state-dir", str(paths.state),
        "--syslog-socket", paths.syslog_socket,
        "--user", paths.user,
        "--stats-file", str(paths.filterd_dir / "stats.json"),
        "--outputs", str(paths.outputs),
    ]  # fmt: skip
    if debug is not None:
        filterd.append("--stdout")
    return {"collector": collector, "filterd": filterd}


class Supervisor:
    def __init__(
        self, paths: Paths, debug: str | None = None, btf: str | None = None, config: str | None = None
    ) -> None:
        self.paths = paths
        argv = daemon_argv(paths, debug, btf, config)
        self.collector = Child("collector", argv["collector"])
        self.filterd = Child("filterd", argv["filterd"])
        self.env = python_env()
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            self.env.pop(name, None)  # only the collector gets these, and ours
        self.notify: NotifySocket | None = None
        self.state = "starting"
        self.stopping = False
        self.hup = False
        self.started = time.time()

    # -- files ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        import pwd

        run = self.paths.run
        run.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam(self.paths.user)
        d = self.paths.filterd_dir
        d.mkdir(exist_ok=True)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o750)
        stats = d / "stats.json"
        if stats.exists():
            stats.unlink()  # readiness is "filterd wrote a fresh one"
        self.notify = NotifySocket(self.notify_path)
        self.collector.env = {
            "NOTIFY_SOCKET": str(self.notify_path),
            "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
        }

    @property
    def notify_path(self) -> Path:
        return self.paths.run / "collector.notify"

    def write_status(self) -> None:
        data = {
            "pid": os.getpid(),
            "state": self.state,
            "started": self.started,
            "watchdog_s": WATCHDOG_S,
            "notify_rejected": self.notify.rejected if self.notify else 0,
            "daemons": {
                c.name: {
                    "pid": c.pid,
                    "starts": c.starts,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "exits": c.exits,
                    "ready": c.ready,
                    "watchdog_kills": c.watchdog_kills,
                }
                for c in (self.collector, self.filterd)
            },
        }
        _write_atomic(self.paths.status, json.dumps(data).encode())
        for c in (self.collector, self.filterd):
            pid_file = self.paths.pid_file(c.name)
            if c.pid is not None:
                _write_atomic(pid_file, f"{c.pid}\n".encode())
            elif pid_file.exists():
                pid_file.unlink()

    def cleanup(self) -> None:
        names = ("collector", "filterd")
        for p in (*(self.paths.pid_file(n) for n in names), self.paths.supervisor_pid):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    # -- signals -------------------------------------------------------------------------------
    def install_signals(self) -> None:
        def stop(signum: int, frame: object) -> None:
            self.stopping = True

        def hup(signum: int, frame: object) -> None:
            self.hup = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    # -- watchdog ------------------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        """Sleep until a notify message or the timeout; True if the collector's state changed."""
        if self.notify is None:
            time.sleep(timeout)
            return False
        with contextlib.suppress(InterruptedError):
            select.select([self.notify], [], [], timeout)
        return self.read_notify()

    def read_notify(self) -> bool:
        """Take in what the collector said; True if it has just become ready."""
        if self.notify is None:
            return False
        was = self.collector.ready
        now = time.monotonic()
        for pid, fields in self.notify.messages():
            if pid != self.collector.pid:
                self.notify.rejected += 1
                continue
            self.collector.heard(fields, now)
        return self.collector.ready != was

    def check_watchdog(self) -> bool:
        """Kill a ready collector that has been silent for WATCHDOG_S; True if it did."""
        self.read_notify()  # pings that arrived while this process itself was not running
        c = self.collector
        silent = c.silent_for(time.monotonic())
        if silent <= WATCHDOG_S or c.proc is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            c.proc.kill()  # SIGKILL: a stopped or stuck process cannot delay it
        c.killed = True
        c.watchdog_kills += 1
        print(f"sysmon: {c.name} silent for {silent:.0f}s (watchdog {WATCHDOG_S:.0f}s): killed",
              file=sys.stderr, flush=True)  # fmt: skip
        return True

    # -- start-up ------------------------------------------------------------------------------
    def filterd_ready(self) -> bool:
        try:
            stats = json.loads((self.paths.filterd_dir / "stats.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(stats.get("hosts"))  # it has heard the collector's host context

    def start_up(self) -> int:
        """0 when both daemons run and filterd is ready, else the failing daemon's exit code."""
        self.collector.start(self.env)
        self.write_status()
        deadline = time.monotonic() + START_TIMEOUT
        filterd_started = False
        while not self.stopping:
            for c in (self.collector, self.filterd):
                code = c.reaped()
                if code is not None:
                    print(f"sysmon: {c.name} exited with {code} during start-up", file=sys.stderr, flush=True)
                    return code or 1
            if not filterd_started and self.paths.socket.exists():
                self.filterd.start(self.env)
                filterd_started = True
                self.write_status()
            if filterd_started and self.filterd_ready():
                return 0
            if time.monotonic() > deadline:
                print(f"sysmon: not ready after {START_TIMEOUT:.0f}s", file=sys.stderr, flush=True)
                return 1
            if self.wait(0.05):
                self.write_status()
        return 0

    # -- steady state ----------------------------------------------------------------------------
    def supervise(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            changed = False
            for c in (self.collector, self.filterd):
                code = c.reaped()
                if code is not None:
                    delay = c.schedule_restart(now)
                    print(
                        f"sysmon: {c.name} exited with {code}; restart #{c.restarts} in {delay:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
                    changed = True
                if c.proc is None and now >= c.next_start:
                    if c is self.filterd and not self.paths.socket.exists():
                        continue  # collector still starting: filterd would only wait
                    c.start(self.env)
                    changed = True
            if self.hup:
                self.hup = False
                if self.filterd.pid is not None:
                    os.kill(self.filterd.pid, signal.SIGHUP)
            changed = self.check_watchdog() or changed
            if changed:
                self.write_status()
            if self.wait(0.1):
                self.write_status()

    def shutdown(self) -> None:
        self.state = "stopping"
        self.write_status()
        self.filterd.stop()
        self.collector.stop()

    def run(self) -> int:
        other = running_pid(self.paths)
        if other is not None and other != os.getpid():
            print(f"sysmon: already running (pid {other})", file=sys.stderr)
            return 1
        set_process_name("sysmon")
        self.install_signals()
        self.prepare()
        _write_atomic(self.paths.supervisor_pid, f"{os.getpid()}\n".encode())
        try:
            code = self.start_up()
            if code == 0 and not self.stopping:
                self.state = "running"
                self.write_status()
                print("sysmon: running", file=sys.stderr, flush=True)
                self.supervise()
            self.shutdown()
            self.state = "stopped" if code == 0 else "failed"
            self.write_status()
            return code
        finally:
            self.cleanup()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def running_pid(paths: Paths) -> int | None:
    """The pid of a live supervisor for these paths (its comm is `sysmon`), else None."""
    try:
        pid = int(paths.supervisor_pid.read_text().strip())
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "sysmon" else None


def daemon_pid(paths: Paths, name: str) -> int | None:
    """The pid recorded for `name` ("collector"/"filterd") if that process is alive and is it."""
    try:
        pid = int(paths.pid_file(name).read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if name.encode() in cmdline else None
