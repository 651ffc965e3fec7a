"""The pinned BPF objects as the long-running collector uses them, without bcc.

Opens the pins collector/loader.py made (running the loader in a child process first when
there are none, or when they come from other sources), attaches exactly the hooks whose record
kinds someone wants through pinned links, switches kinds on and off, reads the per-kind
counters, keeps the monitor's own processes quiet, and keeps the stream position in the
`stream` map so the next collector process continues the same stream.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from shared import records

from . import bpfsys
from .errors import LoadError
from .loader import RINGBUF_PAGES, build_stamp
from .pins import EPOCH, NEXT_RECORD, NEXT_SEQ, PINNED_MAPS, RING_BYTES, STAMP, PinDir, ensure_bpffs
from .probes import HOOKS, Hook

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
LOADER_TIMEOUT_S = 600.0  # bcc compiles for seconds; minutes on a loaded 2-core machine


def _key(i: int) -> bytes:
    return _U32.pack(i)


class Programs:
    """Handles on the pinned maps; attach state lives in bpffs, not in this object."""

    def __init__(
        self,
        pin_dir: str = "/sys/fs/bpf/sysmon",
        btf_path: str | None = None,
        ring_pages: int = RINGBUF_PAGES,
    ) -> None:
        self.pins = PinDir(pin_dir)
        self.loaded_now = False
        self._progs: dict[str, int] = {}  # unpinned mode: program fds we hold
        self._links: dict[str, int] = {}  # unpinned mode: link fds we hold
        try:
            ensure_bpffs(self.pins.path)
            self.pinned = True
        except OSError as e:  # e.g. a container with a read-only /sys and no CAP_SYS_ADMIN
            print(
                f"sysmon-collector: no bpffs ({e}): programs live only as long as this process",
                file=sys.stderr,
            )
            self.pinned = False
        if self.pinned:
            stamp = build_stamp(ring_pages, btf_path)
            if not self._current(stamp):
                self._run_loader(ring_pages, btf_path)
                self.loaded_now = True
                if not self._current(stamp):
                    raise LoadError(f"the loader left no usable pins in {pin_dir}")
            self.fds = {name: bpfsys.obj_get(self.pins.map(name)) for name in PINNED_MAPS}
        else:
            self.fds = self._load_unpinned(ring_pages, btf_path)
            self.loaded_now = True
        self.ring_fd = self.fds["events"]
        self.ring_size = self.stream_get(RING_BYTES)
        self.epoch = self.stream_get(EPOCH)
        self.enabled_kinds = frozenset(
            k for k in range(records.MAX_BPF_KIND) if self._u32(self.fds["enabled"], k)
        )
        linked = self.pins.linked() if self.pinned else set()
        self.attached: set[Hook] = {h for h in HOOKS if h.fn_name in linked}

    # -- pins ------------------------------------------------------------------------------
    def _current(self, stamp: bytes) -> bool:
        if not self.pins.exists():
            return False
        try:
            fd = bpfsys.obj_get(self.pins.map("stream"))
        except OSError:
            return False
        try:
            got = b"".join(bpfsys.lookup(fd, _key(STAMP + i), 8) or b"" for i in range(4))
        finally:
            os.close(fd)
        return got == stamp and all(Path(self.pins.prog(h.fn_name)).exists() for h in HOOKS)

    def _run_loader(self, ring_pages: int, btf_path: str | None, fd_socket: int = -1) -> None:
        argv = [sys.executable, "-m", "collector.loader", "--pin-dir", str(self.pins.path)]
        argv += ["--ring-pages", str(ring_pages)] + (["--btf", btf_path] if btf_path else [])
        argv += ["--fd-socket", str(fd_socket)] if fd_socket >= 0 else []
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        try:
            r = subprocess.run(
                argv,
                env=env,
                timeout=LOADER_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                pass_fds=(fd_socket,) if fd_socket >= 0 else (),
            )
        except subprocess.TimeoutExpired as e:
            raise LoadError(f"loading the BPF programs took over {LOADER_TIMEOUT_S:.0f} s") from e
        if r.returncode != 0:
            raise LoadError(f"loading the BPF programs failed (loader exit status {r.returncode})")

    def _load_unpinned(self, ring_pages: int, btf_path: str | None) -> dict[str, int]:
        """Without bpffs the loader hands us its fds (SCM_RIGHTS) before it exits."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        maps: dict[str, int] = {}
        with ours:
            try:
                self._run_loader(ring_pages, btf_path, theirs.fileno())
            finally:
                theirs.close()
            while True:
                msg, fds, _, _ = socket.recv_fds(ours, 256, 1)
                if not fds:
                    break
                kind, _, name = msg.decode().partition("/")
                (maps if kind == "map" else self._progs)[name] = fds[0]
        if set(maps) != set(PINNED_MAPS) or set(self._progs) != {h.fn_name for h in HOOKS}:
            raise LoadError("the loader handed over an incomplete set of maps and programs")
        return maps

    # -- maps --------------------------------------------------------------------------------
    @staticmethod
    def _u32(fd: int, k: int) -> int:
        raw = bpfsys.lookup(fd, _key(k), 4)
        return _U32.unpack(raw)[0] if raw else 0

    def stream_get(self, slot: int) -> int:
        raw = bpfsys.lookup(self.fds["stream"], _key(slot), 8)
        return _U64.unpack(raw)[0] if raw else 0

    def save_position(self, next_seq: int, next_record: int) -> None:
        """Batch and record numbers at the ring's consumer position, for the next collector."""
        fd = self.fds["stream"]
        bpfsys.update(fd, _key(NEXT_SEQ), _U64.pack(next_seq))
        bpfsys.update(fd, _key(NEXT_RECORD), _U64.pack(next_record))

    def saved_position(self) -> tuple[int, int]:
        return self.stream_get(NEXT_SEQ), self.stream_get(NEXT_RECORD)

    def quiet(self, pids: set[int]) -> None:
        """Make exactly `pids` the monitor's own processes (their events are dropped in the kernel)."""
        fd = self.fds["quiet"]
        have = {_U32.unpack(k)[0] for k in bpfsys.keys(fd, 4)}
        for pid in have - pids:
            bpfsys.delete(fd, _key(pid))
        for pid in pids - have:
            bpfsys.update(fd, _key(pid), _U32.pack(1))

    # -- hooks and kinds ---------------------------------------------------------------------
    def _attach_for(self, kinds: frozenset[int]) -> None:
        """Attach exactly the hooks that feed a wanted kind (attach first, so no gap)."""
        wanted = {h for h in HOOKS if set(h.kinds) & kinds}
        for h in wanted - self.attached:
            prog = bpfsys.obj_get(self.pins.prog(h.fn_name)) if self.pinned else self._progs[h.fn_name]
            try:
                link = self._attach(h, prog)
                if not self.pinned:
                    self._links[h.fn_name] = link
                    continue
                try:
                    bpfsys.obj_pin(link, self.pins.link(h.fn_name))
                finally:
                    os.close(link)
            except OSError as e:
                raise LoadError(f"cannot attach {h.tracepoint}: {e}") from e
            finally:
                if self.pinned:
                    os.close(prog)
        for h in self.attached - wanted:
            if self.pinned:
                Path(self.pins.link(h.fn_name)).unlink(missing_ok=True)  # the last reference: detached
            else:
                os.close(self._links.pop(h.fn_name))
        self.attached = wanted

    @staticmethod
    def _attach(h: Hook, prog: int) -> int:
        """A new link for hook `h`. A link we just removed is released by the kernel a moment
        later (deferred work): until then the same program cannot join that tracepoint again
        (EEXIST), so wait for it, briefly."""
        for _ in range(100):
            try:
                if h.raw:
                    return bpfsys.attach_raw_tracepoint(prog, h.tracepoint)
                category, name = h.tracepoint.split(":")
                return bpfsys.attach_tracepoint(prog, category, name)
            except bpfsys.BpfError as e:
                if e.errno != errno.EEXIST:
                    raise
                time.sleep(0.01)
        raise LoadError(f"cannot attach {h.tracepoint}: the previous link was not released within 1 s")

    def set_enabled(self, kinds: frozenset[int]) -> None:
        """Switch record kinds on: their hooks are attached and their `enabled` flag set. A kind
        nobody wants costs nothing; one whose hook is shared with a wanted kind costs a map lookup."""
        self._attach_for(kinds)
        for k in range(records.MAX_BPF_KIND):
            bpfsys.update(self.fds["enabled"], _key(k), _U32.pack(1 if k in kinds else 0))
        self.enabled_kinds = kinds

    def counters(self) -> dict[str, dict[int, int]]:
        """Per-kind totals over CPUs of records emitted and dropped (ring buffer full)."""
        return {
            name: {k: bpfsys.percpu_sum_u64(self.fds[name], _key(k)) for k in range(records.MAX_BPF_KIND)}
            for name in ("emitted", "drops")
        }

    def close(self) -> None:
        """Close our handles; the pins (and what they attach) stay for the next collector."""
        for fd in [*self.fds.values(), *self._links.values(), *self._progs.values()]:
            os.close(fd)
        self.fds, self._links, self._progs = {}, {}, {}
