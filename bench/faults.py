"""Fault benchmark: how many events survive a daemon crash or a reload in the middle of a burst.

Each round installs a fresh monitor with the real `sysmon -i <config>` (supervisor, collector,
filterd; no systemd) on private paths (tests/sysmon_cli/helpers.py: SYSMON_* under /run, pins) with
a private rsyslogd (tests/harness/rsyslog.py), so a real installation is never touched. A small
C driver then runs N x fork + exec `/bin/true faults-<run>-<i>` in a tight loop; when process
number AT has run, the round's fault is injected while the loop goes on:

  filterd    kill -9 of filterd (the supervisor restarts it)
  collector  kill -9 of the collector (the supervisor restarts it)
  reload     `sysmon -c <same config>` (filterd re-reads its config)

After the driver ends and the fault is over (killed daemon restarted and ready, or event 16
logged), the round waits until no new marker or loss report arrives for --quiet seconds (loss
summaries come every 5 s; bounded by --max-wait), then counts the distinct markers logged as
ProcessCreate, the duplicates, and the loss reports (event 255) with their Description.
Target: N/N in every round, and any loss reported in-band with its exact count.

Prints a table and writes bench/results/faults.json. Run as root: python bench/faults.py
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import print_table  # noqa: E402
from sysmonctl.client import ControlError, request  # noqa: E402
from tests.harness.rsyslog import Rsyslog  # noqa: E402
from tests.sysmon_cli.helpers import Sandbox  # noqa: E402

FAULTS = ("filterd", "collector", "reload")
DEFAULT_CONFIG = ROOT / "filterd" / "default-config.xml"  # every ProcessCreate and ProcessTerminate
DESCRIPTION = re.compile(r'<Data Name="Description">(.*?)</Data>')

# The driver reports on stdout once process number `at` has run, then carries on: the fault
# hits a running burst, as a crash would.
DRIVER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[2]), at = atoi(argv[3]);
    char arg[256];
    for (int i = 0; i < n; i++) {
        snprintf(arg, sizeof arg, "%s%d", argv[1], i);
        pid_t p = fork();
        if (p == 0) { execl("/bin/true", "true", arg, (char *)0); _exit(127); }
        int st; waitpid(p, &st, 0);
        if (i + 1 == at && write(1, "F\n", 2) != 2) return 1;
    }
    return 0;
}
"""


def build_driver(workdir: Path) -> Path:
    src, exe = workdir / "driver.c", workdir / "driver"
    src.write_text(DRIVER_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


class LogFollower:
    """Reads rsyslog's message file incrementally: polling the whole file every few ms while
    thousands of events arrive would itself load the shared machine."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.marker = re.compile(rf'<Data Name="CommandLine">[^<]* {re.escape(prefix)}(\d+)</Data>')
        self.markers: Counter[int] = Counter()
        self.loss_reports: list[str] = []
        self.config_events = 0  # event 16
        self.last_news = time.monotonic()  # a new marker or loss report

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.tail = (self.tail + data).split(b"\n")
        for raw in lines:
            self.line(raw.decode("utf-8", "surrogateescape"))

    def line(self, line: str) -> None:
        if "<EventID>1</EventID>" in line:
            m = self.marker.search(line)
            if m:
                self.markers[int(m.group(1))] += 1
                self.last_news = time.monotonic()
        elif "<EventID>255</EventID>" in line:
            m = DESCRIPTION.search(line)
            self.loss_reports.append(html.unescape(m.group(1)) if m else line)
            self.last_news = time.monotonic()
        elif "<EventID>16</EventID>" in line:
            self.config_events += 1


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def ranges(xs: list[int]) -> list[list[int]]:
    """[[first, last], ...] runs of consecutive integers: a lost window reads at a glance."""
    out: list[list[int]] = []
    for x in sorted(xs):
        if out and x == out[-1][1] + 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return out


@dataclass
class Round:
    """One fault on a fresh installation; `result` is what goes to the JSON."""

    fault: str
    n: int
    at: int
    config: Path
    driver: Path
    quiet: float
    max_wait: float
    settle: float = 0.0
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    result: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.box = Sandbox()
        self.rsyslog = Rsyslog(self.box.dir / "rsyslog")
        self.box.syslog_socket = self.rsyslog.socket_path
        self.prefix = f"faults-{self.run}-"
        self.log = LogFollower(self.rsyslog.msg_path, self.prefix)

    def pid(self, name: str) -> int | None:
        try:
            return int((self.box.run_dir / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def supervisor(self) -> dict[str, Any]:
        return read_json(self.box.run_dir / "supervisor.json")

    def install(self) -> None:
        self.rsyslog.start()
        for p in (self.rsyslog.dir, Path(self.rsyslog.socket_path).parent):
            os.chmod(p, 0o755)  # filterd runs as `sysmon`
        t = time.monotonic()
        r = self.box.sysmon("-accepteula", "-i", str(self.config))
        if r.code != 0:
            log = (self.box.run_dir / "sysmon.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"sysmon -i failed ({r.code}): {r.out}{r.err}\n{log}")
        self.result["install_s"] = time.monotonic() - t
        self.probe()
        # the supervisor restarts a daemon that ran < 60 s after a 1 s backoff, one that ran longer at once
        time.sleep(self.settle)

    def probe(self, timeout: float = 60.0) -> None:
        """Until one probe exec is logged: the whole path works before the burst starts."""
        probe = re.compile(rf'<Data Name="CommandLine">[^<]* {re.escape(self.prefix)}probe</Data>')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            subprocess.run(["/bin/true", f"{self.prefix}probe"], check=False)
            time.sleep(0.3)
            if any(probe.search(x) for x in self.rsyslog.lines("msg")):
                return
        raise TimeoutError(f"no probe ProcessCreate logged in {timeout:.0f}s")

    def inject(self) -> dict[str, Any]:
        """The fault itself; returns what `fault_over` needs."""
        if self.fault == "reload":
            proc = subprocess.Popen(
                [sys.executable, "-m", "sysmon_cli", "-c", str(self.config)],
                cwd=ROOT,
                env=self.box.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            return {"proc": proc, "config_events": self.log.config_events}
        pid = self.pid(self.fault)
        if pid is None:
            raise RuntimeError(f"no {self.fault} pid before the fault")
        os.kill(pid, signal.SIGKILL)
        return {"old_pid": pid}

    def fault_over(self, st: dict[str, Any], t0: float) -> bool:
        """True once the killed daemon is back and serving (or the reload logged event 16);
        records in self.result when each step was seen (after the check: an upper bound)."""
        res = self.result
        if self.fault == "reload":
            proc: subprocess.Popen[bytes] = st["proc"]
            if "command_s" not in res and proc.poll() is not None:
                res["command_s"] = time.monotonic() - t0
                res["command_rc"] = proc.returncode
                res["command_output"] = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if "event16_s" not in res and self.log.config_events > st["config_events"]:
                res["event16_s"] = time.monotonic() - t0
            return "command_s" in res and ("event16_s" in res or res["command_rc"] != 0)
        new = self.supervisor().get("daemons", {}).get(self.fault, {}).get("pid")
        if "spawned_s" not in res and new not in (None, st["old_pid"]):
            res["spawned_s"] = time.monotonic() - t0
            st["new_pid"] = new
        if "spawned_s" in res and "ready_s" not in res and self.ready(st["new_pid"]):
            res["ready_s"] = time.monotonic() - t0
        return "ready_s" in res

    def ready(self, new_pid: int) -> bool:
        """filterd: its stats file is its own and it has heard a collector (the supervisor's
        test); collector: filterd has its host context, sent once its programs are loaded."""
        if self.fault == "filterd":
            stats = read_json(self.box.run_dir / "filterd" / "stats.json")
            return stats.get("pid") == new_pid and bool(stats.get("hosts"))
        try:
            status = request(str(self.box.run_dir / "filterd.ctl"), "status", timeout=2.0)
        except (ControlError, OSError, ValueError):
            return False
        return any(c.get("pid") == new_pid for c in status.get("collectors", {}).values())

    def burst(self) -> None:
        res = self.result
        self.log.poll()  # start-up events (16, 4) are not the fault's
        load0 = os.getloadavg()[0]
        t_start = time.monotonic()
        drv = subprocess.Popen(
            [str(self.driver), self.prefix, str(self.n), str(self.at)], stdout=subprocess.PIPE
        )
        assert drv.stdout is not None
        if drv.stdout.readline() != b"F\n":
            drv.wait()
            raise RuntimeError(f"driver ended before process {self.at} (exit {drv.returncode})")
        t0 = time.monotonic()
        st = self.inject()
        res["fault_at_s"] = t0 - t_start
        t_over: float | None = None
        deadline = t0 + self.max_wait
        while True:
            now = time.monotonic()
            self.log.poll()
            if "workload_s" not in res and drv.poll() is not None:
                res["workload_s"] = now - t_start
                res["driver_rc"] = drv.returncode
            if t_over is None and self.fault_over(st, t0):
                t_over = now
            # quiet counts from the end of the fault too: a restarted daemon may still deliver
            if (
                "workload_s" in res
                and t_over is not None
                and now - max(self.log.last_news, t_over) >= self.quiet
            ):
                res["timed_out"] = False
                break
            if now > deadline:
                res["timed_out"] = True
                break
            time.sleep(0.05)
        if drv.poll() is None:
            drv.kill()
            drv.wait()
        res["wait_after_fault_s"] = time.monotonic() - t0
        res["load_avg_1m"] = [load0, os.getloadavg()[0]]

    def count(self) -> None:
        res, markers = self.result, self.log.markers
        logged = [i for i in markers if 0 <= i < self.n]
        missing = sorted(set(range(self.n)) - set(logged))
        res.update(
            markers_logged=len(logged),
            markers_logged_before_fault=sum(1 for i in logged if i < self.at),
            duplicates=sum(c - 1 for c in markers.values()),
            missing=len(missing),
            missing_ranges=ranges(missing),
            loss_reports=list(self.log.loss_reports),
        )
        sup = self.supervisor().get("daemons", {})
        res["supervisor"] = {k: {f: v.get(f) for f in ("restarts", "exits")} for k, v in sup.items()}
        stats = read_json(self.box.run_dir / "filterd" / "stats.json")
        res["filterd_stats"] = stats.get("stats", {})
        res["collector_counters"] = {
            o: {k: h.get(k) for k in ("kernel_dropped", "published")}
            for o, h in stats.get("hosts", {}).items()
        }

    def close(self) -> None:
        try:
            self.box.sysmon("-u", "force", timeout=120)
        finally:
            self.rsyslog.stop()
            self.box.cleanup()
            pins = self.box.env.get("SYSMON_PIN_DIR")
            if pins and os.path.isdir(pins):  # `-u` unpins; pinned programs would stay attached
                from collector.pins import remove_tree

                remove_tree(Path(pins))

    def go(self) -> dict[str, Any]:
        self.result.update(fault=self.fault, run=self.run, n=self.n, at=self.at)
        try:
            self.install()
            self.burst()
            self.log.poll()
            self.count()
        finally:
            self.close()
        return self.result


def restart_cell(r: dict[str, Any]) -> str:
    if r.get("error"):
        return "error"
    if r["fault"] == "reload":
        e16 = f"{r['event16_s']:.2f}s" if "event16_s" in r else "never"
        cmd = f"{r['command_s']:.2f}s" if "command_s" in r else "never"
        return f"event 16 after {e16} (sysmon -c {cmd})"
    if "ready_s" not in r:
        return "not ready" + (f" (spawned {r['spawned_s']:.2f}s)" if "spawned_s" in r else "")
    return f"ready {r['ready_s']:.2f}s (spawned {r['spawned_s']:.2f}s)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="marker processes per round")
    ap.add_argument("--at", type=int, default=1000, help="inject the fault after this many processes")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="Sysmon config (must log ProcessCreate)")
    ap.add_argument(
        "--faults", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}"
    )
    ap.add_argument("--quiet", type=float, default=8.0, help="seconds without news that end a round")
    ap.add_argument("--max-wait", type=float, default=300.0, help="bound on a round's wait after the fault")
    ap.add_argument(
        "--settle", type=float, default=0.0, help="seconds between install and burst (60: no restart backoff)"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults.json"))
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    if bad := [f for f in faults if f not in FAULTS]:
        ap.error(f"unknown fault(s): {', '.join(bad)}")
    if not 0 < args.at <= args.n:
        ap.error("--at must be in 1..--n")
    if os.geteuid() != 0:
        ap.error("run as root (BPF, the supervisor, kill -9 of the daemons)")
    config = Path(args.config).resolve()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="sysmon-bench-faults-") as work:
        driver = build_driver(Path(work))
        for fault in faults:
            rnd = Round(fault, args.n, args.at, config, driver, args.quiet, args.max_wait, args.settle)
            try:
                rounds.append(rnd.go())
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
                print(f"{fault}: round failed: {e}", file=sys.stderr)
                rounds.append({**rnd.result, "fault": fault, "error": str(e)})

    rows = []
    for r in rounds:
        if r.get("error"):
            rows.append((r["fault"], "error", "-", "-", "-"))
            continue
        reports = r["loss_reports"]
        rows.append(
            (
                r["fault"],
                f"{r['markers_logged']}/{r['n']}" + (" (timed out)" if r["timed_out"] else ""),
                str(r["duplicates"]),
                f"{len(reports)}" + (": " + " | ".join(reports) if reports else ""),
                restart_cell(r),
            )
        )
    print_table(rows, ("fault", "markers logged", "duplicates", "loss reports", "restart time"))
    for r in rounds:
        if not r.get("error") and r["missing_ranges"]:
            shown = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in r["missing_ranges"][:8])
            more = " ..." if len(r["missing_ranges"]) > 8 else ""
            print(f"{r['fault']}: missing markers {shown}{more}")
    result = {
        "n": args.n,
        "at": args.at,
        "config": str(config),
        "quiet_s": args.quiet,
        "settle_s": args.settle,
        "target": "n/n markers in every round; any loss reported in-band (event 255) with its exact count",
        "rounds": rounds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
