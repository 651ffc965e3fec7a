"""Compile and load the BPF programs with bcc, fill the offsets map, switch kinds on and off.

Sources are bpf/include/common.h followed by every file in probes.PROBES, compiled as one
module so they share the ring buffer and maps. common.h is prepended as text, not #included:
bcc only rewrites map calls (`events.ringbuf_output(...)`) in the main file, and a helper in a
header that touches a map would compile into an invalid indirect call.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from shared import records

from .btf import pack_offsets, resolve_offsets
from .errors import LoadError
from .probes import HOOKS, PROBES, Hook

BPF_DIR = Path(os.environ.get("SYSMON_BPF_DIR", Path(__file__).resolve().parents[1] / "bpf"))
RINGBUF_PAGES = 2048  # 8 MiB


def build_source() -> str:
    parts = [(BPF_DIR / "include" / "common.h").read_text()]
    parts += [(BPF_DIR / p.source).read_text() for p in PROBES]
    return "\n".join(parts)


class Programs:
    """The loaded BPF module and the handles the collector needs from it."""

    def __init__(self, btf_path: str | None = None) -> None:
        offsets = resolve_offsets(btf_path)
        try:
            from bcc import BPF  # Debian's python3-bpfcc, through --system-site-packages
        except ImportError as e:
            raise LoadError("bcc is missing: install Debian's python3-bpfcc") from e
        cflags = [
            f"-I{BPF_DIR / 'include'}",
            f"-DRINGBUF_PAGES={RINGBUF_PAGES}",
            "-Wno-unused-value",
            "-Wno-ignored-attributes",
        ]
        try:
            self.bpf = BPF(text=build_source(), cflags=cflags)
        except Exception as e:
            raise LoadError(f"BPF programs failed to load: {e}") from e
        table = self.bpf["offsets_map"]
        table[ctypes.c_int(0)] = table.Leaf.from_buffer_copy(pack_offsets(offsets))
        self.ring_fd: int = self.bpf["events"].map_fd
        self.ring_size = RINGBUF_PAGES * 4096
        self._enabled = self.bpf["enabled"]
        self.enabled_kinds: frozenset[int] = frozenset()
        self.attached: set[Hook] = set(HOOKS)  # bcc attached every program on load
        self._attach_for(frozenset())
        # Compiling left ~20 MB of freed LLVM heap; give it back before the long run.
        ctypes.CDLL(None).malloc_trim(0)

    def _attach_for(self, kinds: frozenset[int]) -> None:
        """Attach exactly the hooks that feed a wanted kind (attach first, so no gap)."""
        wanted = {h for h in HOOKS if set(h.kinds) & kinds}
        for h in wanted - self.attached:
            if h.raw:
                self.bpf.attach_raw_tracepoint(tp=h.tracepoint.encode(), fn_name=h.fn_name.encode())
            else:
                self.bpf.attach_tracepoint(tp=h.tracepoint.encode(), fn_name=h.fn_name.encode())
        for h in self.attached - wanted:
            if h.raw:
                self.bpf.detach_raw_tracepoint(tp=h.tracepoint.encode())
            else:
                self.bpf.detach_tracepoint(tp=h.tracepoint.encode())
        self.attached = wanted

    def set_enabled(self, kinds: frozenset[int]) -> None:
        """Switch record kinds on: their hooks are attached and their `enabled` flag set. A kind
        nobody wants costs nothing; one whose hook is shared with a wanted kind costs a map lookup."""
        self._attach_for(kinds)
        for k in range(records.MAX_BPF_KIND):
            self._enabled[ctypes.c_int(k)] = ctypes.c_uint32(1 if k in kinds else 0)
        self.enabled_kinds = kinds

    def counters(self) -> dict[str, dict[int, int]]:
        """Per-kind totals over CPUs of records emitted and dropped (ring buffer full)."""
        out: dict[str, dict[int, int]] = {}
        for name in ("emitted", "drops"):
            table = self.bpf[name]
            out[name] = {k: sum(table[ctypes.c_int(k)]) for k in range(records.MAX_BPF_KIND)}
        return out

    def close(self) -> None:
        self.bpf.cleanup()
