"""sysmon-filterd: load the config, drop privileges, subscribe, turn records into Sysmon XML.

Order matters: everything that needs root (state directory, EventRecordID file) happens before
the drop; ZeroMQ starts after it, so no thread of this process ever runs as root while data
arrives. SIGHUP reloads the config (a bad one is reported and the running one kept); SIGTERM
logs event 4 Stopped and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from filterd import __version__
from filterd.config.errors import ConfigError
from filterd.config.loader import default_config, load_config_bytes
from filterd.config.model import Config
from filterd.control import ControlServer, uptime
from filterd.events.service_state import config_state, data_hashes, service_state
from filterd.metrics import MetricsServer, exposition, parse_listen
from filterd.outputs import read_outputs
from filterd.pipeline import REGISTRY, Pipeline
from filterd.privileges import drop_to, no_new_privs, user_ids
from filterd.receiver import Receiver, resolve_endpoints
from filterd.recording import RecordHub, state_entries
from filterd.rules import rule_set
from filterd.sandbox import Confinement, confine, selftest
from filterd.sink.json_lines import STDOUT, JsonSink
from filterd.sink.stdout import StdoutSink
from filterd.sink.syslog import SyslogSink
from filterd.state.record_id import RecordIdCounter
from filterd.state.streams import local_origin
from shared.curve import CurveError
from shared.malloc import tune_malloc
from shared.transport import DEFAULT_ENDPOINT

DEFAULT_CONTROL = "/run/sysmon-filterd/control.sock"
METRICS_SOCKET = "metrics.sock"  # beside the control socket unless --metrics-socket says otherwise


def listen_spec(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def metrics_socket(args: argparse.Namespace) -> str:
    if args.metrics_socket is not None:
        return args.metrics_socket
    return os.path.join(os.path.dirname(args.control_socket or DEFAULT_CONTROL), METRICS_SOCKET)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sysmon-filterd", description=__doc__.splitlines()[0])
    p.add_argument(
        "--endpoint",
        action="append",
        help=f"collector, repeatable: ipc://PATH or tcp://HOST:PORT=KEYFILE (default {DEFAULT_ENDPOINT})",
    )
    p.add_argument("--curve-secret", help="filterd's CURVE secret key file (required for tcp://)")
    p.add_argument("--curve-server-key", help="collector public key file for tcp endpoints without =KEYFILE")
    p.add_argument("--config", help="Sysmon XML config (default: the built-in one)")
    p.add_argument(
        "--config-label-file",
        help="file holding the config's name for event 16 (the path as "
        "the admin typed it; `sysmon -i/-c` writes it), re-read on every load",
    )
    p.add_argument("--state-dir", default="/var/lib/sysmon", help="EventRecordID counter lives here")
    p.add_argument(
        "--control-socket",
        default=DEFAULT_CONTROL,
        help="socket for sysmonctl reload/status/stats/tail ('' for none)",
    )
    p.add_argument(
        "--metrics-socket",
        help=f"Prometheus metrics over HTTP on this unix socket (default: {METRICS_SOCKET} beside the "
        "control socket; '' for none)",
    )
    p.add_argument(
        "--metrics-listen",
        type=listen_spec,
        help="also serve the metrics on TCP, IP:PORT (e.g. 127.0.0.1:9701; off by default)",
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="skip the self-sandbox (Landlock, seccomp): for debugging; units and supervisor keep it",
    )
    p.add_argument("--syslog-socket", default="/dev/log")
    p.add_argument("--no-syslog", action="store_true", help="do not write to syslog")
    p.add_argument("--stdout", action="store_true", help="also print each event's XML on stdout")
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also append each event as one JSON line to FILE ('-': stdout, '': none; overrides --outputs)",
    )
    p.add_argument("--outputs", metavar="FILE", help="outputs file (`json PATH`); missing: syslog only")
    p.add_argument("--user", default="sysmon", help="user to run as when started as root")
    p.add_argument("--stats-file", help="write counters as JSON here every second")
    return p.parse_args(argv)


def json_target(args: argparse.Namespace) -> str | None:
    """Where JSON lines go: --json, else the outputs file's `json`, else nowhere."""
    path = args.json if args.json is not None else read_outputs(args.outputs).json if args.outputs else None
    if path == STDOUT and args.stdout:
        raise ConfigError("--json", None, "'-' and --stdout would both write to stdout")
    return path or None


def config_label(path: str, label_file: str | None) -> str:
    if label_file:
        try:
            with open(label_file, encoding="utf-8", errors="replace") as f:
                return f.read().strip() or path
        except OSError:
            pass
    return path


def load(path: str | None, label_file: str | None = None) -> tuple[Config, tuple[str, ...]]:
    """The config and its event 16, hashed from the very bytes that were parsed."""
    if not path:
        return default_config(), config_state("Defaults", "")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror}") from None
    config = load_config_bytes(data, path)
    return config, config_state(config_label(path, label_file), data_hashes(data, config.hash_algorithms))


class Daemon:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config, self.config_event = load(args.config, args.config_label_file)
        self.started = time.monotonic()
        self.endpoints = list(args.endpoint or [DEFAULT_ENDPOINT])
        state = Path(args.state_dir)
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0:
            uid, gid = user_ids(args.user)
            state.mkdir(parents=True, exist_ok=True)
            os.chown(state, uid, gid)
            os.chmod(state, 0o750)
        self.record_ids = RecordIdCounter(state / "eventId")
        self.json_path = json_target(args)
        json_dir = os.path.dirname(self.json_path) if self.json_path not in (None, STDOUT) else None
        if json_dir and os.geteuid() == 0 and not os.path.isdir(json_dir):
            os.makedirs(json_dir, 0o750)  # reopen after a rotation makes the new file in it, as the user
            os.chown(json_dir, uid, gid)
        sinks: list = []
        if not args.no_syslog:
            sinks.append(SyslogSink(args.syslog_socket))
        if args.stdout:
            sinks.append(StdoutSink())
        endpoints, curve = resolve_endpoints(  # key files are read while still root
            args.endpoint or [DEFAULT_ENDPOINT], args.curve_secret, args.curve_server_key
        )
        self.control = None
        self.recorder = RecordHub(self.record_head, self.record_state, self.record_changed)
        if args.control_socket:  # made while root: root:sysmon 0660
            self.control = ControlServer(
                args.control_socket, gid, self.control_handlers(), self.tail_on, self.recorder
            )
        # made while root too; TCP is bound and listening before the sandbox closes TCP bind
        self.metrics = MetricsServer.open(metrics_socket(args), args.metrics_listen, gid, self.metrics_text)
        if os.geteuid() == 0:
            drop_to(args.user)
        no_new_privs()
        self.json_sink = JsonSink(self.json_path) if self.json_path else None  # opened as the user
        if self.json_sink is not None:
            sinks.append(self.json_sink)
            if json_dir and not os.access(json_dir, os.W_OK):
                print(f"sysmon-filterd: {json_dir} is not writable: `sysmonctl reopen` after a rename will "
                      "fail (logrotate: use copytruncate)", file=sys.stderr)  # fmt: skip
        origin = local_origin()  # the sandbox closes /etc/machine-id and /proc/sys
        self.sandbox = Confinement()
        if not args.no_sandbox:  # before ZeroMQ starts its threads: Landlock binds one thread
            configs = [p for p in (args.config, args.config_label_file) if p]
            self.sandbox = confine(
                # the config's directory, not the file: `sysmon -c` replaces it with a new inode
                readable=[os.path.dirname(os.path.abspath(p)) for p in configs],
                # the JSON file's directory too: reopen after a rotation creates the file anew
                writable=[str(state)] + [p for p in (args.stats_file, json_dir and self.json_path) if p],
                tcp_ports=[int(e.address.rsplit(":", 1)[1]) for e in endpoints if e.server_key],
            )
        self.pipeline = Pipeline(self.config, sinks, self.record_ids, state_dir=state)
        self.receiver = Receiver(endpoints, self.pipeline, curve=curve, local_origin=origin)
        self.subscribe()
        self.running = True
        self.reload_requested = False

    def subscribe(self) -> None:
        events = rule_set(self.config).enabled | self.recorder.extra_events()  # `record --events`
        hashes = self.config.hash_algorithms if events & {1, 26} else ()  # images, running deleted files
        kinds = REGISTRY.kinds_for(events)
        self.receiver.set_wants(kinds, hashes, deleted=26 in events)
        self.recorder.wants(kinds, hashes)

    def reload(self) -> dict[str, Any]:
        try:
            config, event = load(self.args.config, self.args.config_label_file)
        except ConfigError as e:
            print(f"sysmon-filterd: reload rejected, keeping the running config: {e}", file=sys.stderr)
            return {"ok": False, "error": str(e)}
        self.config = config
        self.pipeline.set_config(config)
        self.subscribe()
        self.config_event = event
        self.pipeline.service_event(16, event)
        return {"ok": True, "config": event[1], "hash": event[2]}

    # -- control requests (served by the main loop, see filterd/control.py) --------------------
    def control_handlers(self) -> dict[str, Any]:
        return {
            "status": lambda req: self.status(),
            "stats": lambda req: self.stats(),
            "reload": lambda req: self.reload(),
            "reopen": lambda req: self.reopen(),
            "mark": lambda req: self.mark(),
            "selftest": lambda req: {"ok": True, "sandbox": self.sandbox.describe(),
                                     **selftest(self.args.state_dir)},  # hidden: proves the sandbox
        }  # fmt: skip

    def mark(self) -> dict[str, Any]:
        """Ask the collectors for a drain marker; once `stats` shows its token under `markers`
        for an origin, every event that origin's kernel made before the request is written.
        Tests and benchmarks wait on this instead of sleeping."""
        token = time.time_ns()
        self.receiver.request_marker(token)
        return {"ok": True, "token": token}

    def reopen(self) -> dict[str, Any]:
        """Open the JSON file again (logrotate's postrotate: `sysmonctl reopen`; SIGHUP is reload).
        If it cannot be opened, the current file is kept and the reply says why."""
        sink = self.json_sink
        if sink is None or sink.path == STDOUT:
            return {"ok": True, "reopened": []}
        try:
            sink.reopen()
        except OSError as e:
            return {"ok": False, "error": f"cannot reopen {sink.path}: {e.strerror}"}
        return {"ok": True, "reopened": [sink.path]}

    # -- `sysmonctl record` (filterd/recording.py) ---------------------------------------------
    def record_head(self) -> dict[str, Any]:
        return {"filterd": __version__, "hostname": socket.gethostname(), "config": self.config_event[1],
                "config_hash": self.config_event[2], "started_ns": time.time_ns()}  # fmt: skip

    def record_state(self) -> list[bytes]:
        return state_entries(self.pipeline, self.receiver.last_host)[0]

    def record_changed(self) -> None:
        self.receiver.tap = self.recorder.tap if self.recorder.active else None
        self.subscribe()

    def tail_on(self, on: bool) -> None:
        hub = self.control.hub if self.control else None
        others = [s for s in self.pipeline.sinks if s is not hub]
        self.pipeline.sinks = [*others, hub] if on else others

    def status(self) -> dict[str, Any]:
        collectors = {
            o: {"hostname": h.hostname, "version": h.collector_version, "pid": h.collector_pid,
                "uptime_s": h.collector_uptime_s}
            for o, h in list(self.pipeline.hosts.items())
        }  # fmt: skip
        return {
            "ok": True,
            "filterd": {"version": __version__, "pid": os.getpid(), "uid": os.getuid(),
                        "uptime_s": uptime(self.started), "config": self.config_event[1],
                        "config_file": self.args.config or "(built-in)", "config_hash": self.config_event[2],
                        "json": self.json_path,
                        "endpoints": self.endpoints, "control_socket": self.args.control_socket,
                        "metrics": self.metrics.describe() if self.metrics else [],
                        "sandbox": self.sandbox.describe()},
            "collectors": collectors,
        }  # fmt: skip

    def stats(self) -> dict[str, Any]:
        hub = self.control.hub if self.control else None
        return {
            "ok": True,
            "filterd": dict(self.pipeline.stats),
            "rule_hits": dict(self.pipeline.rule_hits),
            "sinks": {type(s).__name__: {"sent": s.sent, "dropped": s.dropped}
                      for s in self.pipeline.sinks if s is not hub},
            "tail": {"clients": len(hub.clients), "sent": hub.sent, "dropped": hub.dropped} if hub else {},
            "record": self.recorder.describe(),
            "markers": self.pipeline.markers,
            "collectors": {o: {"hostname": h.hostname, **h.counters} for o, h in self.pipeline.hosts.items()},
        }  # fmt: skip

    def metrics_text(self) -> bytes:
        hub = self.control.hub if self.control else None
        sinks = [s for s in self.pipeline.sinks if s is not hub]
        return exposition(self.pipeline, sinks, hub, self.metrics)

    def quiet_or_late(self) -> bool:
        """Our own file writes are not logged once the local collector lists our pid as quiet
        (it drops our events in the kernel); wait for that before the first stats write, a few
        seconds at most (a filterd fed only by remote collectors is never quiet anywhere)."""
        if time.monotonic() - self.started > 5.0:
            return True
        me = os.getpid()
        return any(me in h.counters.get("quiet_pids", ()) for h in self.pipeline.hosts.values())

    def write_stats(self) -> None:
        if not self.args.stats_file:
            return
        data = {
            "pid": os.getpid(),
            "stats": dict(self.pipeline.stats),
            "markers": self.pipeline.markers,
            "hosts": {o: h.counters for o, h in self.pipeline.hosts.items()},
            "sinks": {type(s).__name__: {"sent": s.sent, "dropped": s.dropped} for s in self.pipeline.sinks},
        }
        tmp = self.args.stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.args.stats_file)

    def run(self) -> None:
        self.pipeline.service_event(16, self.config_event)
        self.pipeline.service_event(4, service_state("Started"))
        next_stats = 0.0
        while self.running:
            self.receiver.poll(100)
            if self.control:
                self.control.poll()
            if self.json_sink is not None:
                self.json_sink.pump()  # lines a slow stdout reader could not take yet
            if self.metrics:
                self.metrics.poll()
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            now = time.monotonic()
            if now >= next_stats and self.quiet_or_late():
                self.write_stats()
                next_stats = now + 1.0
        self.receiver.poll(0)
        self.pipeline.service_event(4, service_state("Stopped"))
        self.write_stats()

    def close(self) -> None:
        if self.control:
            self.control.close()
        if self.metrics:
            self.metrics.close()
        self.receiver.close()
        self.pipeline.streams.close()
        for s in self.pipeline.sinks:
            s.close()
        self.record_ids.close()


def main(argv: list[str] | None = None) -> int:
    tune_malloc()
    args = parse_args(argv)
    try:
        daemon = Daemon(args)
    except (ConfigError, CurveError) as e:
        print(f"sysmon-filterd: {e}", file=sys.stderr)
        return 1
    except (KeyError, OSError) as e:
        print(f"sysmon-filterd: cannot start: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        daemon.running = False

    def hup(signum: int, frame: object) -> None:
        daemon.reload_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)
    line = f"running as uid {os.getuid()}, sandbox: {daemon.sandbox.describe()}"
    print(f"sysmon-filterd {__version__}: {line}", file=sys.stderr, flush=True)
    try:
        daemon.run()
    finally:
        daemon.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
