"""Whole-product benchmark: a fixed workload with the monitor off, then on.

Workload (a small C driver, so the driver's own cost does not hide ours):
  exec phase: 2000 x fork + exec /bin/true + wait
  file phase: 20000 x open(O_CREAT) + close + unlink in a temp dir
With the built-in config every /bin/true gives one ProcessCreate and one ProcessTerminate.

Prints a table and writes bench/results/pipeline.json: wall-time ratio on/off per phase, CPU
seconds per 1000 events for collector, filterd and rsyslog separately, events expected vs
received, kernel drops, and peak RSS of each daemon. Run as root: python bench/pipeline.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds, peak_rss_mb  # noqa: E402
from tests.harness.daemons import Monitor  # noqa: E402

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
            if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
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


def build_driver(workdir: Path) -> Path:
    src, exe = workdir / "driver.c", workdir / "driver"
    src.write_text(DRIVER_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_phases(driver: Path, execs: int, files: int, workdir: Path) -> dict[str, float]:
    out = {}
    for phase, n in (("exec", execs), ("file", files)):
        t = time.perf_counter()
        subprocess.run([str(driver), phase, str(n), str(workdir)], check=True)
        out[phase] = time.perf_counter() - t
    return out


def count_true(lines: list[str], event_id: int) -> int:
    needle = f"<EventID>{event_id}</EventID>"
    return sum(1 for x in lines if needle in x and '<Data Name="Image">/usr/bin/true<' in x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execs", type=int, default=2000)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the median wall time is used")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipeline.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sysmon-bench-"))
    driver = build_driver(work)
    run_phases(driver, 200, 2000, work)  # warm caches

    off = [run_phases(driver, args.execs, args.files, work) for _ in range(args.repeat)]

    mon = Monitor()
    mon.start()
    procs = {"collector": mon.collector.pid, "filterd": mon.filterd.pid, "rsyslog": mon.rsyslog.proc.pid}
    time.sleep(1.0)
    base_lines = len(mon.events())
    cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
    on = []
    for _ in range(args.repeat):
        on.append(run_phases(driver, args.execs, args.files, work))
    expected = 2 * args.execs * args.repeat
    deadline = time.monotonic() + 120
    received_create = received_term = 0
    while time.monotonic() < deadline:
        lines = mon.events()[base_lines:]
        received_create, received_term = count_true(lines, 1), count_true(lines, 5)
        if received_create + received_term >= expected:
            break
        time.sleep(0.5)
    time.sleep(1.5)  # let a heartbeat carry the final kernel counters
    cpu1 = {k: cpu_seconds(p) for k, p in procs.items()}
    rss = {k: peak_rss_mb(p) for k, p in procs.items()}
    stats = mon.stats()
    mon.stop()
    mon.cleanup()

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    hosts = list(stats.get("hosts", {}).values())
    kernel_drops = sum(sum(h.get("kernel_dropped", {}).values()) for h in hosts)
    events = max(received_create + received_term, 1)
    result = {
        "execs": args.execs,
        "files": args.files,
        "repeat": args.repeat,
        "wall_off_s": {p: median([r[p] for r in off]) for p in ("exec", "file")},
        "wall_on_s": {p: median([r[p] for r in on]) for p in ("exec", "file")},
        "events_expected": expected,
        "events_received": {"ProcessCreate": received_create, "ProcessTerminate": received_term},
        "kernel_drops": kernel_drops,
        "gap_batches": stats.get("stats", {}).get("gap_batches", 0),
        "cpu_s": {k: cpu1[k] - cpu0[k] for k in procs},
        "cpu_s_per_1000_events": {k: 1000 * (cpu1[k] - cpu0[k]) / events for k in procs},
        "peak_rss_mb": rss,
    }
    result["ratio_on_off"] = {p: result["wall_on_s"][p] / result["wall_off_s"][p] for p in ("exec", "file")}
    result["us_per_event_collector_plus_filterd"] = (
        1e6 * (result["cpu_s"]["collector"] + result["cpu_s"]["filterd"]) / events
    )

    rows = [
        (
            "exec phase wall on/off",
            f"{result['ratio_on_off']['exec']:.3f}",
            f"{result['wall_on_s']['exec']:.3f}s / {result['wall_off_s']['exec']:.3f}s",
        ),
        (
            "file phase wall on/off",
            f"{result['ratio_on_off']['file']:.3f}",
            f"{result['wall_on_s']['file']:.3f}s / {result['wall_off_s']['file']:.3f}s",
        ),
        (
            "events expected / received",
            f"{expected} / {received_create + received_term}",
            f"create {received_create}, terminate {received_term}",
        ),
        ("kernel drops / batch gaps", f"{kernel_drops} / {result['gap_batches']}", ""),
    ]
    for k in procs:
        rows.append(
            (
                f"{k} CPU s per 1000 events",
                f"{result['cpu_s_per_1000_events'][k]:.4f}",
                f"{result['cpu_s'][k]:.2f}s total",
            )
        )
    rows.append(
        ("collector+filterd CPU per event", f"{result['us_per_event_collector_plus_filterd']:.1f} us", "")
    )
    for k in procs:
        rows.append((f"{k} peak RSS", f"{rss[k]:.1f} MB", ""))
    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}}  {'value':>16}  detail")
    for name, value, detail in rows:
        print(f"{name:<{w}}  {value:>16}  {detail}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
