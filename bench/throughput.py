"""Throughput benchmark: the highest event rate the whole pipeline sustains with zero loss.

Several worker processes (a small C program) make file events (open(O_CREAT) + close + unlink:
FileCreate 11 + FileDelete 23) and process events (fork + exec of a private copy of /bin/true:
ProcessCreate 1 + ProcessTerminate 5) at rising target rates, each step held for --hold seconds
(default 30). The real collector, filterd and a private rsyslogd run as tests/harness/daemons.py
starts them, with --config (default bench/configs/log-everything.xml) and the collector's
--ring-pages (default 2048 pages = 8 MiB).

After each step's hold the bench waits until every workload event of the step is logged (or
nothing new arrives for a few seconds, bounded by --drain-timeout) plus --settle seconds, so
the heartbeat carries the kernel counters and loss reports are flushed. Per step it reports:
target and achieved event rate (2 events per operation), workload events logged, the time the
backlog took to drain, kernel drops (the collector's counters, read from filterd's stats file),
records lost between collector and filterd (filterd's gap_records; the collector's buffer
overflow), sink drops, event 255 (loss reports, ID EventsLost; and health reports such as
CollectorSilent), whether both daemons are alive, CPU of
collector, filterd and rsyslog during the hold (100 % = one core), and the resident memory of
the collector and filterd (VmRSS sampled every 0.5 s, median and max). A step is sustained when
all of its events were logged with no drop, no gap, no loss report, and both daemons alive; it
also kept up when its backlog was gone within --lag-limit seconds of the hold's end.

Events are attributed to their step by path (each step has its own directory and image), so a
backlog that spills into the next step is still counted where it belongs. rsyslog's files are
truncated between drained steps to bound disk use.
Prints a table and writes bench/results/throughput.json. Run as root: python bench/throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds, print_table  # noqa: E402
from bench.memory import status_mb  # noqa: E402
from bench.pipeline import source_state  # noqa: E402
from collector.loader import RINGBUF_PAGES  # noqa: E402
from tests.harness.daemons import Monitor  # noqa: E402

DEFAULT_CONFIG = ROOT / "bench" / "configs" / "log-everything.xml"
DEFAULT_RATES = "10000,20000,50000,100000,150000"

# One worker: `tpw f|e OPS_PER_S SECONDS DIR IMAGE`, paced against CLOCK_MONOTONIC (it sleeps
# when ahead of its schedule and runs flat out when behind); prints "ops elapsed_ns".
WORKER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long now_ns(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    double rate = atof(argv[2]);
    long long t0 = now_ns(), end = t0 + (long long)(atof(argv[3]) * 1e9);
    char path[4096];
    long long i = 0, t = t0;
    int pid = getpid();
    for (; (t = now_ns()) < end; i++) {
        if (rate > 0) {
            long long due = t0 + (long long)(i * 1e9 / rate);
            if (due > end) break;
            if (due > t) {
                struct timespec ts = {due / 1000000000LL, due % 1000000000LL};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0);
            }
        }
        if (argv[1][0] == 'e') {
            pid_t p = fork();
            if (p == 0) { execl(argv[5], "tp-true", (char *)0); _exit(127); }
            int st; waitpid(p, &st, 0);
        } else {
            snprintf(path, sizeof path, "%s/%d-%lld", argv[4], pid, i);
            int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
            if (fd < 0) return 1;
            close(fd);
            unlink(path);
        }
    }
    printf("%lld %lld\n", i, now_ns() - t0);
    return 0;
}
"""
EVENT_ID = re.compile(rb"<EventID>(\d+)</EventID>")
DESCRIPTION = re.compile(rb'<Data Name="Description">(.*?)</Data>')
REPORT_ID = re.compile(rb'<Data Name="ID">(.*?)</Data>')


class BenchMonitor(Monitor):
    """Monitor whose collector gets --ring-pages (and --buffer-mb) from the bench."""

    def __init__(self, config: str, ring_pages: int, buffer_mb: int | None) -> None:
        super().__init__(config=config)
        self.collector_args = ["--ring-pages", str(ring_pages)]
        self.collector_args += ["--buffer-mb", str(buffer_mb)] if buffer_mb is not None else []

    def start_collector(self) -> subprocess.Popen[bytes]:
        self.collector = self._spawn(
            "collector",
            "--endpoint",
            self.endpoint,
            "--pin-dir",
            self.pin_dir,
            *self.collector_args,
            log="collector.log",
        )
        return self.collector


@dataclass
class StepLog:
    """Workload events logged for one step, by event ID."""

    ids: dict[int, int] = field(default_factory=lambda: dict.fromkeys((1, 5, 11, 23), 0))

    @property
    def total(self) -> int:
        return sum(self.ids.values())


class LogFollower:
    """Reads rsyslog's message file incrementally and attributes events to steps by path: Image
    <work>/s<k>/tp-true (events 1, 5), TargetFilename under <work>/s<k>/f/ (events 11, 23)."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        w = re.escape(str(work).encode())
        self.image = re.compile(rb'<Data Name="Image">' + w + rb"/s(\d+)/tp-true<")
        self.target = re.compile(rb'<Data Name="TargetFilename">' + w + rb"/s(\d+)/f/")
        self.step_image = b'<Data Name="Image">' + str(work).encode() + b"/s%d/tp-true<"
        self.step_target = b'<Data Name="TargetFilename">' + str(work).encode() + b"/s%d/f/"
        self.steps: dict[int, StepLog] = {}
        self.other = 0
        self.loss_reports: list[str] = []
        self.health_reports: list[str] = []
        self.fast_offset = 0
        self.fast: dict[int, int] = {}

    def count_step(self, k: int) -> int:
        """Step k's workload events written so far, by substring counts over whole chunks: the
        drain wait must not be slowed by the per-line parse of half a million lines."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.fast_offset)
                data = f.read()
        except FileNotFoundError:
            return self.fast.get(k, 0)
        data = data[: data.rfind(b"\n") + 1]  # whole lines only; the rest is read next time
        self.fast_offset += len(data)
        n = data.count(self.step_image % k) + data.count(self.step_target % k)
        self.fast[k] = self.fast.get(k, 0) + n
        return self.fast[k]

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
        m = EVENT_ID.search(line)
        eid = int(m.group(1)) if m else -1
        if eid in (1, 5, 11, 23):
            s = (self.image if eid in (1, 5) else self.target).search(line)
            if s:
                self.steps.setdefault(int(s.group(1)), StepLog()).ids[eid] += 1
                return
        elif eid == 255:  # ID EventsLost: a loss report; others (CollectorSilent...): health
            d, i = DESCRIPTION.search(line), REPORT_ID.search(line)
            text = (d.group(1) if d else line).decode(errors="replace")
            if i and i.group(1) != b"EventsLost":
                self.health_reports.append(f"{i.group(1).decode(errors='replace')}: {text}")
            else:
                self.loss_reports.append(text)
        self.other += 1

    def truncate(self, paths: list[Path]) -> None:
        """Empty rsyslog's files (it writes with O_APPEND, so it carries on at the new end)."""
        self.poll()
        for p in paths:
            os.truncate(p, 0)
        self.offset, self.tail, self.fast_offset = 0, b"", 0

    def take_reports(self) -> tuple[list[str], list[str], int]:
        out = self.loss_reports, self.health_reports, self.other
        self.loss_reports, self.health_reports, self.other = [], [], 0
        return out


def build_worker(work: Path) -> Path:
    src, exe = work / "tpw.c", work / "tpw"
    src.write_text(WORKER_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def counters(stats: dict[str, Any]) -> dict[str, int]:
    """The loss counters of one stats snapshot, summed over hosts."""
    hosts = list(stats.get("hosts", {}).values())
    f = stats.get("stats", {})
    return {
        "kernel_dropped": sum(sum(h.get("kernel_dropped", {}).values()) for h in hosts),
        "kernel_emitted": sum(sum(h.get("kernel_emitted", {}).values()) for h in hosts),
        "buffer_overflow_records": sum(h.get("buffer_overflow_records", 0) for h in hosts),
        "gap_records": f.get("gap_records", 0),
        "gap_batches": f.get("gap_batches", 0),
        "sink_dropped": f.get("sink_dropped", 0),
        "resent_batches": sum(h.get("published", {}).get("resent_batches", 0) for h in hosts),
        "duplicate_batches": f.get("duplicate_batches", 0),
        "duplicate_records": f.get("duplicate_records", 0),
        "written": f.get("written", 0),
        "decoded": f.get("decoded", 0),
    }


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, args: argparse.Namespace, mon: BenchMonitor, worker: Path, work: Path) -> None:
        self.args = args
        self.mon = mon
        self.worker = worker
        self.work = work
        self.log = LogFollower(mon.rsyslog.msg_path, work)
        self.pids = {"collector": mon.collector.pid, "filterd": mon.filterd.pid}  # type: ignore[union-attr]
        self.pids["rsyslog"] = mon.rsyslog.proc.pid  # type: ignore[union-attr]

    def alive(self) -> dict[str, bool]:
        return {
            "collector": self.mon.collector is not None and self.mon.collector.poll() is None,
            "filterd": self.mon.filterd is not None and self.mon.filterd.poll() is None,
        }

    def launch(self, k: int, rate: float) -> list[tuple[str, subprocess.Popen[bytes]]]:
        a = self.args
        d = self.work / f"s{k}"
        (d / "f").mkdir(parents=True)
        image = d / "tp-true"
        shutil.copy2("/bin/true", image)
        exec_ops = rate * a.exec_share / 2 / a.exec_workers if a.exec_workers else 0.0
        file_ops = rate * (1 - a.exec_share) / 2 / a.file_workers if a.file_workers else 0.0
        procs = []
        for kind, n, ops in (("e", a.exec_workers, exec_ops), ("f", a.file_workers, file_ops)):
            for _ in range(n if ops > 0 else 0):
                argv = [str(self.worker), kind, f"{ops:.3f}", str(a.hold), str(d / "f"), str(image)]
                procs.append((kind, subprocess.Popen(argv, stdout=subprocess.PIPE)))
        return procs

    def step(self, k: int, rate: float) -> dict[str, Any]:
        a = self.args
        c0 = counters(self.mon.stats())
        cpu0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        rss: dict[str, list[float]] = {"collector": [], "filterd": []}
        buffered: list[int] = []
        t0 = time.monotonic()
        procs = self.launch(k, rate)
        while any(p.poll() is None for _, p in procs):
            for n in rss:
                v = status_mb(self.pids[n]).get("VmRSS")
                if v is not None:
                    rss[n].append(v)
            hosts = self.mon.stats().get("hosts", {}).values()
            buffered.append(sum(h.get("buffered_bytes", 0) for h in hosts))
            time.sleep(0.5)
        hold_s = time.monotonic() - t0
        cpu1 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        ops = {"e": 0, "f": 0}
        worker_s = []
        for kind, p in procs:
            out = p.communicate()[0].split()
            if p.returncode != 0 or len(out) != 2:
                raise RuntimeError(f"worker {kind} failed (exit {p.returncode})")
            ops[kind] += int(out[0])
            worker_s.append(int(out[1]) / 1e9)
        generated = 2 * (ops["e"] + ops["f"])
        span = max(worker_s) if worker_s else hold_s

        # drain: every event of this step logged, or nothing new for `quiet` seconds
        t_end, last_change, last = time.monotonic(), time.monotonic(), -1
        drained = False
        while time.monotonic() - t_end < a.drain_timeout:
            got = self.log.count_step(k)
            now = got  # only this step's events: other work on the machine is logged too
            if now != last:
                last, last_change = now, time.monotonic()
            if got >= generated:
                drained = True
                break
            if time.monotonic() - last_change >= a.quiet or not all(self.alive().values()):
                break
            for n in rss:
                v = status_mb(self.pids[n]).get("VmRSS")
                if v is not None:
                    rss[n].append(v)
            time.sleep(0.1)
        drain_s = time.monotonic() - t_end
        time.sleep(a.settle)  # heartbeat with the kernel counters, loss summaries flushed
        self.log.poll()
        c1 = counters(self.mon.stats())
        delta = {key: c1[key] - c0[key] for key in c1}
        reports, health, other = self.log.take_reports()
        after = {n: status_mb(self.pids[n]).get("VmRSS") for n in rss}
        logged = self.log.steps.get(k, StepLog())
        alive = self.alive()
        lost = delta["kernel_dropped"] + delta["gap_records"] + delta["buffer_overflow_records"]
        lost += delta["sink_dropped"]
        res = {
            "step": k,
            "target_rate": rate,
            "hold_s": hold_s,
            "ops": {"exec": ops["e"], "file": ops["f"]},
            "events_generated": generated,
            "achieved_rate": generated / span if span else 0.0,
            "achieved_rate_exec": 2 * ops["e"] / span if span else 0.0,
            "achieved_rate_file": 2 * ops["f"] / span if span else 0.0,
            "logged": {str(i): n for i, n in logged.ids.items()},
            "logged_total": logged.total,
            "drained": drained,
            "drain_s": drain_s,
            "counters": delta,
            "loss_reports": reports,
            "health_reports": health,
            "other_events_logged": other,
            "alive": alive,
            "cpu_pct_hold": {n: 100 * (cpu1[n] - cpu0[n]) / hold_s for n in self.pids},
            "rss_mb": {
                n: {"median": median(v), "max": max(v, default=None), "samples": len(v)}
                for n, v in rss.items()
            },
            "rss_after_drain_mb": after,
            "collector_buffered_max_mb": max(buffered, default=0) / 2**20,
            "load_avg_1m": os.getloadavg()[0],
        }
        res["sustained"] = (
            bool(lost == 0 and delta["gap_batches"] == 0 and not reports and all(alive.values()))
            and logged.total >= generated
        )
        res["kept_up"] = res["sustained"] and drained and drain_s <= a.lag_limit and not health
        if drained:  # nothing of this step is still coming: bound disk use
            self.log.truncate([self.mon.rsyslog.msg_path, self.mon.rsyslog.output_path])
        return res


def highest(steps: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The last step of the unbroken run of steps that have `key` true, from the first."""
    best = None
    for s in steps:
        if not s[key]:
            break
        best = s
    return best


def verdict(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest sustained step (every step below it sustained too), the highest that also
    kept up (its backlog gone within --lag-limit), and what went wrong in the first step above."""
    best, live = highest(steps, "sustained"), highest(steps, "kept_up")
    above = next((s for s in steps if not s["sustained"]), None)
    out: dict[str, Any] = {
        "max_sustained_achieved_rate": best["achieved_rate"] if best else None,
        "max_sustained_target_rate": best["target_rate"] if best else None,
        "max_kept_up_achieved_rate": live["achieved_rate"] if live else None,
        "max_kept_up_target_rate": live["target_rate"] if live else None,
    }
    if above is not None:
        c = above["counters"]
        what = []
        if above["logged_total"] < above["events_generated"]:
            what.append(f"{above['events_generated'] - above['logged_total']} events not logged")
        if not above["drained"]:
            what.append(f"backlog not drained after {above['drain_s']:.0f}s")
        for key in ("kernel_dropped", "gap_records", "buffer_overflow_records", "sink_dropped"):
            if c[key]:
                what.append(f"{key} {c[key]}")
        if above["loss_reports"]:
            what.append(f"{len(above['loss_reports'])} loss reports")
        if above["health_reports"]:
            what.append(f"{len(above['health_reports'])} health reports")
        dead = [n for n, ok in above["alive"].items() if not ok]
        if dead:
            what.append("dead: " + ", ".join(dead))
        out["first_failed_target_rate"] = above["target_rate"]
        out["first_failed_achieved_rate"] = above["achieved_rate"]
        out["first_failure"] = what
    return out


def cell(x: float | None, unit: str = "", fmt: str = ".0f") -> str:
    return "-" if x is None else f"{x:{fmt}}{unit}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default=DEFAULT_RATES, help="target events/s per step, comma-separated")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds each step's load runs")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="Sysmon config for filterd")
    ap.add_argument("--ring-pages", type=int, default=RINGBUF_PAGES, help="collector ring, 4 KiB pages")
    ap.add_argument("--buffer-mb", type=int, help="collector --buffer-mb (default: the collector's)")
    ap.add_argument("--file-workers", type=int, default=2)
    ap.add_argument("--exec-workers", type=int, default=1)
    ap.add_argument("--exec-share", type=float, default=0.1, help="target rate share of fork+exec")
    ap.add_argument("--drain-timeout", type=float, default=120.0, help="bound on a step's backlog wait")
    ap.add_argument("--quiet", type=float, default=5.0, help="no new event for this long ends the drain")
    ap.add_argument(
        "--lag-limit", type=float, default=2.0, help="a step kept up if its backlog drained in this many s"
    )
    ap.add_argument("--settle", type=float, default=6.0, help="seconds after the drain before counting")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root (BPF)")
    if not 0 <= args.exec_share <= 1:
        ap.error("--exec-share must be in 0..1")
    rates = [float(r) for r in args.rates.split(",") if r]
    config = str(Path(args.config).resolve())
    work = Path(tempfile.mkdtemp(prefix="sysmon-tp-"))
    worker = build_worker(work)
    mon = BenchMonitor(config, args.ring_pages, args.buffer_mb)
    steps: list[dict[str, Any]] = []
    idle: dict[str, float | None] = {}
    load0 = os.getloadavg()
    try:
        mon.start()
        bench = Bench(args, mon, worker, work)
        time.sleep(1.0)
        bench.log.truncate([mon.rsyslog.msg_path, mon.rsyslog.output_path])  # start-up events
        idle = {n: status_mb(p).get("VmRSS") for n, p in bench.pids.items()}
        for k, rate in enumerate(rates):
            s = bench.step(k, rate)
            steps.append(s)
            print(
                f"step {k}: target {rate:.0f}/s achieved {s['achieved_rate']:.0f}/s, "
                f"logged {s['logged_total']}/{s['events_generated']}, sustained {s['sustained']}",
                file=sys.stderr,
                flush=True,
            )
            if not all(s["alive"].values()):
                print("a daemon died: later steps skipped", file=sys.stderr)
                break
    finally:
        logs = mon.logs()
        mon.stop()
        mon.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for s in steps:
        c = s["counters"]
        rows.append(
            (
                f"{s['target_rate']:.0f}",
                f"{s['achieved_rate']:.0f}",
                f"{s['achieved_rate_file']:.0f}/{s['achieved_rate_exec']:.0f}",
                f"{s['logged_total']}/{s['events_generated']}",
                f"{s['drain_s']:.1f}" + ("" if s["drained"] else "+"),
                str(c["kernel_dropped"]),
                f"{c['gap_records']}/{c['buffer_overflow_records']}",
                f"{len(s['loss_reports'])}/{len(s['health_reports'])}",
                "yes" if all(s["alive"].values()) else "NO",
                f"{s['cpu_pct_hold']['collector']:.0f}/{s['cpu_pct_hold']['filterd']:.0f}"
                f"/{s['cpu_pct_hold']['rsyslog']:.0f}",
                f"{cell(s['rss_mb']['collector']['median'], fmt='.1f')}/"
                f"{cell(s['rss_mb']['collector']['max'], fmt='.1f')}",
                f"{cell(s['rss_mb']['filterd']['max'], fmt='.1f')}/"
                f"{cell(s['rss_after_drain_mb']['filterd'], fmt='.1f')}",
                f"{c['resent_batches']}/{c['duplicate_batches']}",
                f"{s['collector_buffered_max_mb']:.1f}",
                ("yes" if s["sustained"] else "no") + (", kept up" if s["kept_up"] else ""),
            )
        )
    print(
        f"config {config}; ring {args.ring_pages} pages = {args.ring_pages * 4096 / 2**20:g} MiB; "
        f"hold {args.hold:g}s; {args.file_workers} file + {args.exec_workers} exec workers, "
        f"exec share {args.exec_share:g}"
    )
    print_table(
        rows,
        (
            "target/s",
            "achieved/s",
            "file/exec",
            "logged",
            "drain s",
            "kdrops",
            "gap/ovfl",
            "loss/health",
            "alive",
            "CPU% c/f/r",
            "coll RSS med/max",
            "filt RSS max/after",
            "resent/dup",
            "buf MB",
            "sustained",
        ),
    )
    v = verdict(steps)
    if v["max_sustained_achieved_rate"] is not None:
        print(
            f"highest sustained: {v['max_sustained_achieved_rate']:.0f} events/s "
            f"(target {v['max_sustained_target_rate']:.0f}/s)"
        )
    else:
        print("no step was sustained")
    if v["max_kept_up_achieved_rate"] is not None:
        print(
            f"highest kept up (backlog gone within {args.lag_limit:g}s of the hold's end): "
            f"{v['max_kept_up_achieved_rate']:.0f} events/s (target {v['max_kept_up_target_rate']:.0f}/s)"
        )
    if "first_failure" in v:
        print(
            f"above it (target {v['first_failed_target_rate']:.0f}/s, achieved "
            f"{v['first_failed_achieved_rate']:.0f}/s): " + "; ".join(v["first_failure"])
        )
    for s in steps:
        for r in s["loss_reports"][:5]:
            print(f"  step {s['step']} loss report: {r}")
        for r in s["health_reports"][:5]:
            print(f"  step {s['step']} health report: {r}")
    result = {
        "config": config,
        "ring_pages": args.ring_pages,
        "ring_mib": args.ring_pages * 4096 / 2**20,
        "buffer_mb": args.buffer_mb,
        "hold_s": args.hold,
        "file_workers": args.file_workers,
        "exec_workers": args.exec_workers,
        "exec_share": args.exec_share,
        "idle_rss_mb": idle,
        "steps": steps,
        "verdict": v,
        "load_avg_1m_before": load0[0],
        "source": source_state(),
        "daemon_logs_tail": logs[-4000:],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
