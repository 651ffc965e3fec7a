"""Resident memory of the daemons as the benchmarks see it from outside, through /proc.

Why sampling: VmHWM alone is the start-up peak (imports, the first snapshot), not what a host
pays while the monitor runs; VmRSS sampled during the workload gives the steady figure, its max
the worst moment. The collector's short-lived BPF loader child (`python -m collector.loader`)
is caught by polling for it while the collector starts (its last VmHWM before it exits) and,
when the collector is our child, by its rusage at exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

RECHECK_S = 2.0  # how long a new pid's command line is re-read (it may not have exec'd yet)
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def status_mb(pid: int) -> dict[str, float]:
    """The FIELDS of /proc/<pid>/status in MiB; empty if the process is gone."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            out[key] = int(rest.split()[0]) / 1024
    return out


def pss_mb(pid: int) -> float | None:
    """Proportional set size (shared pages divided among their users): fairer than RSS for
    the libraries every Python process maps."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


class Sampler:
    """Samples VmRSS (and the anon/file split) of named processes on a thread until stop()."""

    def __init__(self, pids: dict[str, int], period_s: float = 0.1) -> None:
        self.pids = pids
        self.period_s = period_s
        self.samples: dict[str, list[dict[str, float]]] = {k: [] for k in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period_s)

    def sample(self) -> None:
        for name, pid in self.pids.items():
            s = status_mb(pid)
            if s:
                self.samples[name].append(s)

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join()
        self.sample()  # at least one sample even for a very short run
        return self

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per process: VmRSS median and max over the samples, the last VmHWM, PSS now, and the
        median anon/file split (the file part holds the mmap'ed BPF ring pages and libraries)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name, ss in self.samples.items():
            rss = [s["VmRSS"] for s in ss if "VmRSS" in s]
            out[name] = {
                "samples": len(rss),
                "rss_median_mb": statistics.median(rss) if rss else None,
                "rss_max_mb": max(rss) if rss else None,
                "hwm_mb": max((s.get("VmHWM", 0.0) for s in ss), default=None),
                "anon_median_mb": statistics.median([s.get("RssAnon", 0.0) for s in ss]) if ss else None,
                "file_median_mb": statistics.median([s.get("RssFile", 0.0) for s in ss]) if ss else None,
                "pss_mb": pss_mb(self.pids[name]),
            }
        return out


class LoaderWatch:
    """Polls /proc for processes whose command line `match`es (the collector's BPF loader) and
    keeps the highest VmHWM read from each before it exited.

    Why a lower bound: the last read can miss the final milliseconds of the child's life; the
    loader's peak is the clang/LLVM compile, well before it exits, so the miss is small. Only
    pids younger than RECHECK_S have their command line read, so a 5 ms poll stays cheap.
    """

    def __init__(self, match: Callable[[list[str]], bool], period_s: float = 0.005) -> None:
        self.match = match
        self.period_s = period_s
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LoaderWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        first_seen = {int(d): -RECHECK_S for d in os.listdir("/proc") if d.isdigit()}  # before us: not it
        while not self._stop.is_set():
            now = time.monotonic()
            for d in os.listdir("/proc"):
                if not d.isdigit() or int(d) in self.peaks:
                    continue
                pid = int(d)
                # a fresh child shows its parent's command line until it execs: look again for a while
                if now - first_seen.setdefault(pid, now) < RECHECK_S and self.match(cmdline(pid)):
                    self.peaks[pid] = 0.0
            for pid in self.peaks:
                hwm = status_mb(pid).get("VmHWM")
                if hwm is not None:
                    self.peaks[pid] = max(self.peaks[pid], hwm)
            self._stop.wait(self.period_s)

    def stop(self) -> LoaderWatch:
        self._stop.set()
        self._thread.join()
        return self

    @property
    def peak_mb(self) -> float | None:
        """The largest loader peak seen (None: no loader ran, or it came and went unseen)."""
        return max(self.peaks.values()) or None if self.peaks else None


def terminate_with_rusage(pid: int, timeout: float = 15.0) -> float | None:
    """SIGTERM our child pid and reap it with wait4: ru_maxrss (MiB) is the largest of its own
    peak and that of every child it reaped (the loader), which /proc cannot show after the fact.
    None if it had to be killed or was not ours to reap."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, _status, ru = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return ru.ru_maxrss / 1024
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.wait4(pid, 0)
    return None
