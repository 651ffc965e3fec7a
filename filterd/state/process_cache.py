"""What filterd knows about each process of one host: identity, image, command line, user.

Some facts that shape it:
  * pids are reused, so an entry is (pid, start time); a lookup gives the entry only if the
    start time matches (within one clock tick: /proc snapshot times have 10 ms resolution);
  * a process that exits stays 60 s (upstream's PROCESS_CACHE_FREE_DELAY_SEC) so late events
    and children still resolve it, then goes;
  * a fork without exec runs the parent's image: the child entry copies the parent's;
  * the cache is bounded; evictions of live processes are counted, never silent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from filterd.guid import process_guid

TICK_NS = 10_000_000
EXITED_KEEP_NS = 60 * 1_000_000_000
MAX_ENTRIES = 65536


@dataclass(slots=True)
class Process:
    pid: int
    start_ns: int  # CLOCK_BOOTTIME
    start_s: int  # wall-clock seconds of the start: the ProcessGuid's time part
    machine_id: int
    image: str
    command_line: str
    cwd: str
    uid: int
    end_code: int
    exited_ns: int = 0
    _guid: str = ""

    @property
    def guid(self) -> str:
        """Computed on first use: most forked children exec before anyone asks for theirs."""
        if not self._guid:
            self._guid = process_guid(self.machine_id, self.start_s, self.end_code)
        return self._guid


class ProcessCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._by_pid: dict[int, Process] = {}
        self._exited: deque[tuple[int, int, int]] = deque()  # (exit time, pid, start)
        self.max_entries = max_entries
        self.evicted_live = 0

    def __len__(self) -> int:
        return len(self._by_pid)

    def get(self, pid: int, start_ns: int | None = None) -> Process | None:
        p = self._by_pid.get(pid)
        if p is None or (start_ns is not None and abs(p.start_ns - start_ns) > TICK_NS):
            return None
        return p

    def put(self, proc: Process) -> None:
        if proc.pid not in self._by_pid and len(self._by_pid) >= self.max_entries:
            self._evict_one()
        self._by_pid[proc.pid] = proc

    def exited(self, pid: int, start_ns: int, now_ns: int) -> Process | None:
        p = self.get(pid, start_ns)
        if p is not None:
            p.exited_ns = now_ns
            self._exited.append((now_ns, pid, p.start_ns))
        self.expire(now_ns)
        return p

    def expire(self, now_ns: int) -> None:
        ex = self._exited
        while ex and now_ns - ex[0][0] > EXITED_KEEP_NS:
            _, pid, start = ex.popleft()
            p = self._by_pid.get(pid)
            if p is not None and p.start_ns == start and p.exited_ns:
                del self._by_pid[pid]

    def _evict_one(self) -> None:
        if self._exited:
            _, pid, start = self._exited.popleft()
            p = self._by_pid.get(pid)
            if p is not None and p.start_ns == start:
                del self._by_pid[pid]
                return
        oldest = min(self._by_pid.values(), key=lambda p: p.start_ns)
        del self._by_pid[oldest.pid]
        self.evicted_live += 1
