"""Whole-product benchmark: a fixed workload with the monitor off, then on: time, CPU, memory.

Workload (a small C driver, so the driver's own cost does not hide ours):
  exec phase: 2000 x fork + exec of a copy of /bin/true + wait   (events 1 and 5 if logged)
  file phase: 20000 x open(O_CREAT) + close + unlink in a temp dir (events 11 and 23 if logged)
The built-in config logs every ProcessCreate and ProcessTerminate; --config FILE gives filterd
a Sysmon config instead (bench/configs/log-everything.xml logs all four kinds,
bench/configs/log-nothing.xml none).

Prints a table and writes bench/results/pipeline.json:
- wall time on/off per phase and in total (median of --repeat rounds each side); then the two
  parts of "on" apart (--no-floor skips them): "logger only", the monitor off while rsyslog
  receives the events it would log (bench/logger_floor.py: the floor no syslog-writing monitor
  goes below), and "monitor only", the monitor on with its datagrams read and discarded;
- CPU of collector, filterd and rsyslog (and the `sysmon` supervisor with --supervisor) per
  1000 workload events (2 per exec, 2 per file) and per 1000 logged events;
- workload events logged per event ID vs what the config enables, kernel drops, batch gaps,
  event 255 reports (loss, ID EventsLost, and health such as CollectorSilent);
- memory of each daemon: VmRSS sampled every --sample-ms from the end of start-up to the end
  of the run (median and max), its VmHWM (peak, start-up included) and PSS at the end; the
  peak of the collector's short-lived BPF loader child, sampled from /proc while it runs and,
  without --supervisor, also the collector's rusage at exit (ru_maxrss: the larger of its own
  peak and its reaped children's, i.e. the loader's when that is larger).

Without --supervisor the daemons are started as tests/harness/daemons.py does (no supervisor);
with it, a private `sysmon -i` install (tests/sysmon_cli/helpers.py paths under /run, as
bench/faults.py) runs the supervisor too. A private rsyslogd receives the events either way.
Run as root: python bench/pipeline.py [--config bench/configs/log-everything.xml]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.logger_floor import Floor, rendered  # noqa: E402
from bench.measure import cpu_seconds  # noqa: E402
from bench.memory import LoaderWatch, Sampler, terminate_with_rusage  # noqa: E402
from bench.replay import drainer  # noqa: E402
from filterd.config.loader import default_config, load_config_bytes  # noqa: E402
from filterd.rules import rule_set  # noqa: E402
from tests.harness.daemons import Monitor  # noqa: E402
from tests.harness.rsyslog import Rsyslog  # noqa: E402

DRIVER_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    if (argv[1][0] == 'e') {
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { execl(argv[4], "true", (char *)0); _exit(127); }
            int st; waitpid(p, &st, 0);
        }
    } else {
        char path[4096];
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%d", argv[3], i);
            int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
            if (fd < 0) return 1;
            close(fd);
            unlink(path);
        }
    }
    return 0;
}
"""
WORKLOAD_IDS = (1, 5, 11, 23)
DAEMONS = ("collector", "filterd", "sysmon")  # memory is sampled for these (sysmon: the supervisor)


def build_driver(workdir: Path) -> tuple[Path, Path]:
    """The driver, and the image it execs: a private copy of /bin/true, so its events 1 and 5
    are ours and not those of other work on a shared machine."""
    src, exe, true = workdir / "driver.c", workdir / "driver", workdir / "true"
    src.write_text(DRIVER_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    shutil.copy2("/bin/true", true)
    return exe, true


def run_phases(
    driver: Path,
    true: Path,
    execs: int,
    files: int,
    filedir: Path,
    before: Callable[[str], None] | None = None,
) -> dict[str, float]:
    out = {}
    for phase, n in (("exec", execs), ("file", files)):
        if before is not None:
            before(phase)
        t = time.perf_counter()
        subprocess.run([str(driver), phase, str(n), str(filedir), str(true)], check=True)
        out[phase] = time.perf_counter() - t
    return out


class LogCounter:
    """Follows rsyslog's message file: workload events per ID, other events, loss reports."""

    def __init__(self, path: Path, true: Path, filedir: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.image = f'<Data Name="Image">{true}<'.encode()
        self.target = f'<Data Name="TargetFilename">{filedir}/f'.encode()
        self.ids = {i: f"<EventID>{i}</EventID>".encode() for i in WORKLOAD_IDS}
        self.workload = dict.fromkeys(WORKLOAD_IDS, 0)
        self.other = 0
        self.loss_reports: list[str] = []

    def skip(self) -> None:
        """Start counting from the end of what is written now (start-up events are not ours)."""
        self.poll()
        self.workload = dict.fromkeys(WORKLOAD_IDS, 0)
        self.other = 0
        self.loss_reports = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.tail = (self.tail + data).split(b"\n")
        for line in lines:
            self.line(line)

    def line(self, line: bytes) -> None:
        for i, tag in self.ids.items():
            if tag in line:
                if (self.image if i in (1, 5) else self.target) in line:
                    self.workload[i] += 1
                    return
                break
        if b"<EventID>255</EventID>" in line:  # loss (ID EventsLost) or health (CollectorSilent...)
            self.loss_reports.append(line.decode(errors="replace"))
        self.other += 1


class Target:
    """The running monitor, however it was started: pids, stats, files, and how to stop it."""

    supervised = False

    def __init__(self, config: str | None) -> None:
        self.config = config
        self.pids: dict[str, int] = {}
        self.startup_s = 0.0
        self.exit_maxrss_mb: float | None = None

    def loader_match(self, argv: list[str]) -> bool:
        return "collector.loader" in argv and self.pin_dir in argv

    @property
    def pin_dir(self) -> str:
        raise NotImplementedError

    @property
    def msg_path(self) -> Path:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def alive(self) -> dict[str, bool]:
        return {k: Path(f"/proc/{p}").exists() for k, p in self.pids.items()}

    def stop(self) -> None:
        raise NotImplementedError


class HarnessTarget(Target):
    """collector + filterd + rsyslog as tests/harness/daemons.Monitor starts them."""

    def __init__(self, config: str | None) -> None:
        super().__init__(config)
        self.mon = Monitor(config=config)

    @property
    def pin_dir(self) -> str:
        return self.mon.pin_dir

    @property
    def msg_path(self) -> Path:
        return self.mon.rsyslog.msg_path

    def start(self) -> None:
        t = time.monotonic()
        self.mon.start()
        self.startup_s = time.monotonic() - t
        assert self.mon.collector and self.mon.filterd and self.mon.rsyslog.proc
        self.pids = {
            "collector": self.mon.collector.pid,
            "filterd": self.mon.filterd.pid,
            "rsyslog": self.mon.rsyslog.proc.pid,
        }

    def stats(self) -> dict[str, Any]:
        return self.mon.stats()

    def stop(self) -> None:
        """filterd first, as Monitor.stop, then the collector reaped with wait4 for its rusage."""
        try:
            if self.mon.filterd and self.mon.filterd.poll() is None:
                self.mon.filterd.send_signal(signal.SIGTERM)
                self.mon.filterd.wait(15)
            if self.mon.collector and self.mon.collector.poll() is None:
                self.exit_maxrss_mb = terminate_with_rusage(self.mon.collector.pid)
        finally:
            self.mon.stop()  # the rest: pins, rsyslog
            self.mon.cleanup()


class SupervisorTarget(Target):
    """A private `sysmon -i` install: supervisor, collector, filterd (as bench/faults.py)."""

    supervised = True

    def __init__(self, config: str | None) -> None:
        super().__init__(config)
        from tests.sysmon_cli.helpers import Sandbox

        self.box = Sandbox()
        self.rsyslog = Rsyslog(self.box.dir / "rsyslog")
        self.box.syslog_socket = self.rsyslog.socket_path

    @property
    def pin_dir(self) -> str:
        return self.box.env["SYSMON_PIN_DIR"]

    @property
    def msg_path(self) -> Path:
        return self.rsyslog.msg_path

    def start(self) -> None:
        self.rsyslog.start()
        for p in (self.rsyslog.dir, Path(self.rsyslog.socket_path).parent):
            os.chmod(p, 0o755)  # filterd runs as `sysmon`
        t = time.monotonic()
        r = self.box.sysmon("-accepteula", "-i", *([self.config] if self.config else []))
        if r.code != 0:
            raise RuntimeError(f"sysmon -i failed ({r.code}): {r.out}{r.err}")
        deadline = time.monotonic() + 60
        while not self.stats().get("hosts"):
            if time.monotonic() > deadline:
                raise TimeoutError("filterd has no host context 60 s after sysmon -i")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - t
        run = self.box.run_dir
        self.pids = {n: int((run / f"{n}.pid").read_text()) for n in ("collector", "filterd", "sysmon")}
        assert self.rsyslog.proc
        self.pids["rsyslog"] = self.rsyslog.proc.pid

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads((self.box.run_dir / "filterd" / "stats.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        try:
            self.box.sysmon("-u", "force", timeout=120)
        finally:
            self.rsyslog.stop()
            self.box.cleanup()


def source_state() -> dict[str, Any]:
    """The commit measured and the product files changed on top of it: several people edit
    this tree at once, so a figure is only worth its source."""

    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False)
        return r.stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--", "collector", "filterd", "shared", "bpf", "sysmon_cli")
    return {"head": git("rev-parse", "--short", "HEAD"), "changed": changed.splitlines()}


def load(config: str | None) -> Any:
    return load_config_bytes(Path(config).read_bytes(), config) if config else default_config()


def floor_rounds(
    args: argparse.Namespace, cfg: Any, driver: Path, true: Path, filedir: Path, off_exec_s: float
) -> tuple[list[dict[str, float]], float]:
    """The workload with the monitor off while a private rsyslogd receives, from a trivial sender,
    the XML the monitor would log for each phase (bench/logger_floor.py); returns the rounds and
    rsyslog's CPU seconds."""
    messages = {"exec": rendered(cfg, "exec", args.execs), "file": rendered(cfg, "file", args.files)}
    with Rsyslog() as rs:
        assert rs.proc is not None
        floor = Floor(rs.socket_path, messages, {"exec": off_exec_s, "file": 0.0}, args.repeat)
        try:
            cpu0 = cpu_seconds(rs.proc.pid)
            rounds = [
                run_phases(driver, true, args.execs, args.files, filedir, floor.before)
                for _ in range(args.repeat)
            ]
            floor.wait()
            time.sleep(1.0)  # rsyslog writes what it has queued
            cpu = cpu_seconds(rs.proc.pid) - cpu0
        finally:
            floor.cleanup()
    return rounds, cpu


def monitor_only_rounds(
    args: argparse.Namespace, config: str | None, driver: Path, true: Path, filedir: Path
) -> list[dict[str, float]]:
    """The workload with the monitor on while filterd's syslog socket is a trivial reader that
    discards every datagram: the monitor's own share, without the system logger's."""
    sock_dir = Path(tempfile.mkdtemp(prefix="sysmon-null-log-", dir="/run"))
    sock_dir.chmod(0o755)
    reader = drainer(str(sock_dir / "log"))
    mon = Monitor(config=config, extra_filterd=("--syslog-socket", str(sock_dir / "log")))
    try:
        mon.start()
        time.sleep(1.0)
        rounds = [run_phases(driver, true, args.execs, args.files, filedir) for _ in range(args.repeat)]
        time.sleep(3.0)  # filterd works off the last file phase
    finally:
        mon.stop()
        mon.cleanup()
        reader.kill()
        reader.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return rounds


def wait_drained(log: LogCounter, expected: int, timeout: float, quiet: float) -> float:
    """Until every expected workload event is logged, or nothing new came for `quiet` seconds
    (a config that logs less), bounded by `timeout`; returns the seconds waited."""
    t0 = last_change = time.monotonic()
    last = -1
    while time.monotonic() - t0 < timeout:
        log.poll()
        now = sum(log.workload.values())  # not filterd's counters: the rest of the machine moves them
        if now != last:
            last, last_change = now, time.monotonic()
        if now >= expected or time.monotonic() - last_change >= quiet:
            break
        time.sleep(0.25)
    return time.monotonic() - t0


def ratios(num: dict[str, float], den: dict[str, float]) -> dict[str, float]:
    """Per phase and for the two phases together (the workload's whole wall time)."""
    out = {p: num[p] / den[p] for p in ("exec", "file")}
    out["total"] = sum(num[p] for p in ("exec", "file")) / sum(den[p] for p in ("exec", "file"))
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execs", type=int, default=2000)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per side; the median wall time is used")
    ap.add_argument("--config", help="Sysmon XML config for filterd (default: the built-in one)")
    ap.add_argument(
        "--supervisor", action="store_true", help="start through a private `sysmon -i` (adds the supervisor)"
    )
    ap.add_argument("--no-floor", action="store_true", help="skip the logger-only and monitor-only rounds")
    ap.add_argument("--sample-ms", type=float, default=100.0, help="VmRSS sampling period")
    ap.add_argument("--drain-timeout", type=float, default=180.0, help="bound on the last events' wait")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipeline.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root (BPF)")
    config = str(Path(args.config).resolve()) if args.config else None
    cfg = load(config)
    enabled = rule_set(cfg).enabled
    work = Path(tempfile.mkdtemp(prefix="sysmon-bench-"))
    filedir = work / "files"
    filedir.mkdir()
    driver, true = build_driver(work)
    run_phases(driver, true, 200, 2000, filedir)  # warm caches
    load0 = os.getloadavg()

    off = [run_phases(driver, true, args.execs, args.files, filedir) for _ in range(args.repeat)]
    floor, floor_rsyslog_cpu = (
        ([], 0.0)
        if args.no_floor
        else floor_rounds(args, cfg, driver, true, filedir, median([r["exec"] for r in off]))
    )
    own = [] if args.no_floor else monitor_only_rounds(args, config, driver, true, filedir)

    target: Target = SupervisorTarget(config) if args.supervisor else HarnessTarget(config)
    loader = LoaderWatch(target.loader_match).start()
    try:
        target.start()
    finally:
        loader.stop()
    try:
        time.sleep(1.0)
        log = LogCounter(target.msg_path, true, filedir)
        log.skip()
        procs = dict(target.pids)
        daemons = {k: p for k, p in procs.items() if k in DAEMONS}
        sampler = Sampler(daemons, args.sample_ms / 1000).start()
        cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
        stats0 = target.stats()
        on = [run_phases(driver, true, args.execs, args.files, filedir) for _ in range(args.repeat)]
        per_id = {1: args.execs, 5: args.execs, 11: args.files, 23: args.files}
        expected = {i: n * args.repeat if i in enabled else 0 for i, n in per_id.items()}
        drain_s = wait_drained(log, sum(expected.values()), args.drain_timeout, quiet=5.0)
        time.sleep(2.5)  # let a heartbeat carry the final kernel counters
        log.poll()
        cpu1 = {k: cpu_seconds(p) for k, p in procs.items()}
        memory = sampler.stop().summary()
        stats = target.stats()
        alive = target.alive()
    finally:
        target.stop()
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()

    def kernel_drops(st: dict[str, Any]) -> int:
        return sum(sum(h.get("kernel_dropped", {}).values()) for h in st.get("hosts", {}).values())

    def resent(st: dict[str, Any]) -> int:
        return sum(h.get("published", {}).get("resent_batches", 0) for h in st.get("hosts", {}).values())

    fstats, fstats0 = stats.get("stats", {}), stats0.get("stats", {})
    workload_events = 2 * (args.execs + args.files) * args.repeat
    logged = sum(log.workload.values())
    cpu = {k: cpu1[k] - cpu0[k] for k in procs}
    result: dict[str, Any] = {
        "config": config or "built-in",
        "enabled_event_ids": sorted(enabled),
        "supervisor": args.supervisor,
        "execs": args.execs,
        "files": args.files,
        "repeat": args.repeat,
        "wall_off_s": {p: median([r[p] for r in off]) for p in ("exec", "file")},
        "wall_on_s": {p: median([r[p] for r in on]) for p in ("exec", "file")},
        "wall_off_rounds_s": off,
        "wall_on_rounds_s": on,
        "workload_events": workload_events,
        "logged_expected": {str(i): n for i, n in expected.items()},
        "logged": {str(i): n for i, n in log.workload.items()},
        "other_events_logged": log.other,
        "loss_reports": log.loss_reports,
        "drain_s": drain_s,
        "kernel_drops": kernel_drops(stats) - kernel_drops(stats0),
        "gap_batches": fstats.get("gap_batches", 0) - fstats0.get("gap_batches", 0),
        "gap_records": fstats.get("gap_records", 0) - fstats0.get("gap_records", 0),
        "sink_dropped": fstats.get("sink_dropped", 0) - fstats0.get("sink_dropped", 0),
        "resent_batches": resent(stats) - resent(stats0),
        "duplicate_batches": fstats.get("duplicate_batches", 0) - fstats0.get("duplicate_batches", 0),
        "cpu_s": cpu,
        "cpu_ms_per_1000_workload_events": {k: 1e6 * v / workload_events for k, v in cpu.items()},
        "cpu_ms_per_1000_logged_events": {k: (1e6 * v / logged if logged else None) for k, v in cpu.items()},
        "startup_s": target.startup_s,
        "memory": memory,
        "loader_peak_sampled_mb": loader.peak_mb,
        "loader_processes_seen": len(loader.peaks),
        "collector_exit_maxrss_mb": target.exit_maxrss_mb,
        "alive_at_end": alive,
        "load_avg_before_after": [load0, load1],
        "source": source_state(),
    }
    result["ratio_on_off"] = ratios(result["wall_on_s"], result["wall_off_s"])
    # the fastest round of each side: less exposed to other work on a shared machine
    result["ratio_on_off_min"] = {p: min(r[p] for r in on) / min(r[p] for r in off) for p in ("exec", "file")}
    result["peak_rss_mb"] = {k: m["hwm_mb"] for k, m in memory.items()}  # the old column's name
    if floor:
        result["wall_floor_s"] = {p: median([r[p] for r in floor]) for p in ("exec", "file")}
        result["wall_floor_rounds_s"] = floor
        result["floor_rsyslog_cpu_s"] = floor_rsyslog_cpu
        result["ratio_floor_off"] = ratios(result["wall_floor_s"], result["wall_off_s"])
        result["ratio_on_floor"] = ratios(result["wall_on_s"], result["wall_floor_s"])
        result["wall_monitor_only_s"] = {p: median([r[p] for r in own]) for p in ("exec", "file")}
        result["wall_monitor_only_rounds_s"] = own
        result["ratio_monitor_only_off"] = ratios(result["wall_monitor_only_s"], result["wall_off_s"])

    rows = []
    for p in ("exec", "file", "total"):
        on_s, off_s = (
            sum(result[k].values()) if p == "total" else result[k][p] for k in ("wall_on_s", "wall_off_s")
        )
        detail = f"{on_s:.3f}s / {off_s:.3f}s"
        if p != "total":
            detail += f"; fastest rounds {result['ratio_on_off_min'][p]:.3f}"
        rows.append((f"{p} wall on/off", f"{result['ratio_on_off'][p]:.3f}", detail))
    if floor:
        for p in ("exec", "file", "total"):
            rows.append(
                (
                    f"{p} wall logger only/off",
                    f"{result['ratio_floor_off'][p]:.3f}",
                    f"monitor off, rsyslog fed its events; on/logger only {result['ratio_on_floor'][p]:.3f}",
                )
            )
        for p in ("exec", "file", "total"):
            rows.append(
                (
                    f"{p} wall monitor only/off",
                    f"{result['ratio_monitor_only_off'][p]:.3f}",
                    "monitor on, its syslog datagrams read and discarded (no rsyslog)",
                )
            )
    rows.append(
        (
            "workload events logged / expected",
            f"{logged} / {sum(expected.values())}",
            ", ".join(f"{i}: {log.workload[i]}/{expected[i]}" for i in WORKLOAD_IDS)
            + f"; other events {log.other}",
        )
    )
    rows.append(
        (
            "kernel drops / gap batches",
            f"{result['kernel_drops']} / {result['gap_batches']}",
            f"event 255 reports {len(log.loss_reports)}, sink drops {result['sink_dropped']}, "
            f"resent/duplicate batches {result['resent_batches']}/{result['duplicate_batches']}, "
            f"drained {drain_s:.1f}s",
        )
    )
    for k in procs:
        per_logged = result["cpu_ms_per_1000_logged_events"][k]
        rows.append(
            (
                f"{k} CPU ms per 1000 events",
                f"{result['cpu_ms_per_1000_workload_events'][k]:.1f}",
                f"{cpu[k]:.2f}s total; per 1000 logged "
                + (f"{per_logged:.1f}" if per_logged is not None else "-"),
            )
        )
    for k, m in memory.items():
        rows.append(
            (
                f"{k} RSS median / max",
                f"{fmt_mb(m['rss_median_mb'])}",
                f"max {fmt_mb(m['rss_max_mb'])}, peak (VmHWM) {fmt_mb(m['hwm_mb'])}, "
                f"PSS {fmt_mb(m['pss_mb'])}, anon {fmt_mb(m['anon_median_mb'])}, "
                f"file {fmt_mb(m['file_median_mb'])}, {m['samples']} samples",
            )
        )
    rows.append(
        (
            "BPF loader peak (sampled)",
            fmt_mb(loader.peak_mb),
            f"collector rusage max at exit {fmt_mb(target.exit_maxrss_mb)}; start-up {target.startup_s:.1f}s",
        )
    )
    rows.append(("load average 1 min", f"{load0[0]:.2f} -> {load1[0]:.2f}", "shared machine: noise"))
    w = max(len(r[0]) for r in rows)
    how = ", supervisor" if args.supervisor else ""
    print(f"config: {result['config']} (logs {sorted(enabled) or 'nothing'}){how}")
    print("CPU per 1000 workload events = 2 per exec + 2 per file operation, logged or not")
    print(f"{'metric':<{w}}  {'value':>16}  detail")
    for name, value, detail in rows:
        print(f"{name:<{w}}  {value:>16}  {detail}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
