"""Compile and load the BPF programs with bcc, fill the offsets map, pin everything: then exit.

Run as its own short-lived process (`python -m collector.loader --pin-dir DIR`), started by the
collector when no pins of the current build exist. bcc brings clang and LLVM (well over 100 MB
resident, most of it never returned to the system); doing it in a child keeps the collector
that runs for months at the size of a small Python process, and a collector restart with the
pins in place takes no compile at all.

Sources are bpf/include/common.h followed by every file in probes.PROBES, compiled as one
module so they share the ring buffer and maps. common.h is prepended as text, not #included:
bcc only rewrites map calls (`events.ringbuf_output(...)`) in the main file, and a helper in a
header that touches a map would compile into an invalid indirect call.

Pins are made in a fresh directory beside the target and renamed into place, so a collector
never sees half a set. bcc attaches every program on load; those attachments end with this
process, and the collector attaches through links of its own (collector/programs.py).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

from shared.digest import new_hash

from . import __version__
from .errors import CollectorError, LoadError
from .pins import EPOCH, PINNED_MAPS, RING_BYTES, STAMP, PinDir, ensure_bpffs, remove_tree
from .probes import HOOKS, PROBES

BPF_DIR = Path(os.environ.get("SYSMON_BPF_DIR", Path(__file__).resolve().parents[1] / "bpf"))
RINGBUF_PAGES = 1024  # 4 MiB: 20k events/s for 1.5 s with no reader (a collector restart takes 0.1-0.3 s)


def build_source() -> str:
    parts = [(BPF_DIR / "include" / "common.h").read_text()]
    parts += [(BPF_DIR / p.source).read_text() for p in PROBES]
    return "\n".join(parts)


def cflags(ring_pages: int) -> list[str]:
    return [
        f"-I{BPF_DIR / 'include'}",
        f"-DRINGBUF_PAGES={ring_pages}",
        "-Wno-unused-value",
        "-Wno-ignored-attributes",
    ]


def build_stamp(ring_pages: int, btf_path: str | None) -> bytes:
    """32 bytes that change whenever the pinned programs would differ from what we would load."""
    h = new_hash("SHA256")
    h.update(build_source().encode())
    h.update(repr((cflags(ring_pages), btf_path, __version__, [x.fn_name for x in HOOKS])).encode())
    headers = sorted((BPF_DIR / "include").glob("*.h"))
    for p in headers:
        h.update(p.read_bytes())
    return h.digest()


def load_and_pin(
    pin_dir: Path | None, ring_pages: int = RINGBUF_PAGES, btf_path: str | None = None, fd_socket: int = -1
) -> None:
    """Load, then pin in `pin_dir`, or (without bpffs) hand the fds to the collector over
    `fd_socket` (SCM_RIGHTS): it then keeps them for its life, and a restart loads again."""
    from .btf import pack_offsets, resolve_offsets  # the loader child's only: ctypes.util & co.

    offsets = resolve_offsets(btf_path)
    try:
        from bcc import BPF  # Debian's python3-bpfcc, through --system-site-packages
    except ImportError as e:
        raise LoadError("bcc is missing: install Debian's python3-bpfcc") from e
    try:
        bpf = BPF(text=build_source(), cflags=cflags(ring_pages))
    except Exception as e:
        raise LoadError(f"BPF programs failed to load: {e}") from e
    table = bpf["offsets_map"]
    table[ctypes.c_int(0)] = table.Leaf.from_buffer_copy(pack_offsets(offsets))
    stream = bpf["stream"]
    stamp = build_stamp(ring_pages, btf_path)
    slots = {EPOCH: time.time_ns(), RING_BYTES: ring_pages * 4096}
    slots.update({STAMP + i: int.from_bytes(stamp[8 * i : 8 * i + 8], "little") for i in range(4)})
    for slot, value in slots.items():
        stream[ctypes.c_int(slot)] = ctypes.c_uint64(value)

    if fd_socket >= 0:
        _send_fds(fd_socket, {name: bpf[name].map_fd for name in PINNED_MAPS}, bpf)
        return
    assert pin_dir is not None
    from .bpfsys import obj_pin

    ensure_bpffs(pin_dir)
    tmp = pin_dir.with_name(f"{pin_dir.name}-new-{os.getpid()}")  # bpffs refuses "." in names
    remove_tree(tmp)
    for sub in ("maps", "progs", "links"):
        (tmp / sub).mkdir(parents=True)
    staged = PinDir(tmp)
    try:
        for name in PINNED_MAPS:
            obj_pin(bpf[name].map_fd, staged.map(name))
        for hook in HOOKS:
            fn = bpf.funcs.get(hook.fn_name.encode())
            if fn is None:
                raise LoadError(f"program {hook.fn_name} was not loaded (check collector/probes.py)")
            obj_pin(fn.fd, staged.prog(hook.fn_name))
        remove_tree(pin_dir)  # an older build's pins: their links go with them
        tmp.rename(pin_dir)
    except BaseException:
        remove_tree(tmp)
        raise


def _send_fds(sock_fd: int, maps: dict[str, int], bpf: object) -> None:
    import socket

    with socket.socket(fileno=sock_fd) as sock:
        for name, fd in maps.items():
            socket.send_fds(sock, [f"map/{name}".encode()], [fd])
        for hook in HOOKS:
            fn = bpf.funcs.get(hook.fn_name.encode())  # type: ignore[attr-defined]
            if fn is None:
                raise LoadError(f"program {hook.fn_name} was not loaded (check collector/probes.py)")
            socket.send_fds(sock, [f"prog/{hook.fn_name}".encode()], [fn.fd])
        sock.sendall(b"end")


def main(argv: list[str] | None = None) -> int:
    from .pins import DEFAULT_PIN_DIR

    p = argparse.ArgumentParser(prog="sysmon-collector-loader", description=__doc__.splitlines()[0])
    p.add_argument("--pin-dir", default=DEFAULT_PIN_DIR)
    p.add_argument("--ring-pages", type=int, default=RINGBUF_PAGES)
    p.add_argument("--btf", help="BTF file to use instead of /sys/kernel/btf/vmlinux")
    p.add_argument("--fd-socket", type=int, default=-1, help="send the fds here instead of pinning")
    args = p.parse_args(argv)
    try:
        load_and_pin(Path(args.pin_dir), args.ring_pages, args.btf, args.fd_socket)
    except (CollectorError, OSError) as e:
        print(f"sysmon-collector: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
