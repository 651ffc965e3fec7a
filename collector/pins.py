"""Where the BPF objects live between collector processes: a directory in bpffs.

Why pinned: a program attached through a pinned link keeps running when the collector exits,
and the ring buffer keeps what it writes. A restarted collector opens the same ring and goes on
from the consumer position the last one committed, so events that happen while it restarts wait
in the kernel instead of being lost. It also means the long-running collector never needs bcc:
collector/loader.py compiles and pins in a short-lived process, collector/programs.py uses the
pins with plain bpf(2) calls.

Layout (default /sys/fs/bpf/sysmon):
  maps/<name>    events (ring buffer), enabled, emitted, drops, offsets_map, quiet, stream
  progs/<fn>     one per hook in collector/probes.py
  links/<fn>     present while the hook is attached (collector/programs.py makes and removes them)

The `stream` map's slots (u64 each) hold what must survive the collector: the stream's epoch,
the batch and record numbers at the ring's consumer position, and the build stamp of the
programs, which tells whether the pins are from the sources this collector ships.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

DEFAULT_PIN_DIR = "/sys/fs/bpf/sysmon"
BPF_FS_MAGIC = 0xCAFE4A11
PINNED_MAPS = ("events", "enabled", "emitted", "drops", "offsets_map", "quiet", "stream")

# stream map slots
EPOCH, NEXT_SEQ, NEXT_RECORD, RING_BYTES, STAMP = 0, 1, 2, 3, 4  # STAMP..STAMP+3: 32 bytes
STREAM_SLOTS = 8


class PinDir:
    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PIN_DIR) -> None:
        self.path = Path(path)

    def map(self, name: str) -> str:
        return str(self.path / "maps" / name)

    def prog(self, fn: str) -> str:
        return str(self.path / "progs" / fn)

    def link(self, fn: str) -> str:
        return str(self.path / "links" / fn)

    def exists(self) -> bool:
        return (self.path / "maps" / "stream").exists()

    def linked(self) -> set[str]:
        try:
            return {p.name for p in (self.path / "links").iterdir()}
        except FileNotFoundError:
            return set()

    def remove(self) -> None:
        """Unpin everything: links go first, so the programs stop before their maps go."""
        remove_tree(self.path)


def remove_tree(path: Path) -> None:
    links = path / "links"
    if links.is_dir():
        for p in links.iterdir():
            p.unlink(missing_ok=True)
    import shutil  # rarely needed (unpin, a stale tree): its bz2/lzma stay out of the collector

    shutil.rmtree(path, ignore_errors=True)


def _statfs_magic(path: str) -> int | None:
    class _StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = _StatFs()
    if libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def ensure_bpffs(pin_dir: Path) -> None:
    """Mount bpffs on /sys/fs/bpf when nothing is mounted there (systemd mounts it at boot; a
    plain VM may not). Raises OSError when the pin directory cannot be in a bpffs."""
    parent = pin_dir.parent
    if _statfs_magic(str(parent)) == BPF_FS_MAGIC:
        return
    if str(parent) != "/sys/fs/bpf":
        raise OSError(20, f"{parent} is not a bpffs")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", str(parent).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount bpffs on {parent}: {os.strerror(err)}")
