"""A clean Debian 12 root for package tests: debootstrapped once, then used through overlayfs.

The pristine root is cached in /var/cache/sysmon-test-debootstrap/bookworm (built by
debootstrap --variant=minbase from Debian's archive on first use, under a lock); every test
gets a throw-away overlay on top of it, so a rerun costs seconds, not minutes. Downloaded .debs
and apt lists are cached beside it and bind-mounted in, so package installs are quick too.
Commands run in it with chroot(8); /proc and /dev are mounted for maintainer scripts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("SYSMON_TEST_DEBOOTSTRAP", "/var/cache/sysmon-test-debootstrap"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"


def pristine_root() -> Path:
    """The cached minbase root, built if missing (serialised by a lock file)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    base = CACHE / SUITE
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "usr/bin/apt-get").exists():
            tmp = CACHE / f"{SUITE}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(tmp), MIRROR],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            shutil.rmtree(base, ignore_errors=True)
            tmp.rename(base)
    return base


class DebianRoot:
    """An overlay of the pristine root with /proc, /dev and the apt caches mounted."""

    def __init__(self) -> None:
        self.base = pristine_root()
        self.work = Path(tempfile.mkdtemp(prefix="sysmon-debroot-", dir="/var/tmp"))
        self.root = self.work / "root"
        self.mounts: list[Path] = []
        self.own_mounts = 0

    def _mount(self, *args: str, target: Path) -> None:
        subprocess.run(["mount", *args, str(target)], check=True)
        self.mounts.append(target)

    def __enter__(self) -> DebianRoot:
        upper, wk = self.work / "upper", self.work / "wk"
        for d in (self.root, upper, wk):
            d.mkdir()
        try:
            self._mount(
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self.base},upperdir={upper},workdir={wk}",
                target=self.root,
            )
        except subprocess.CalledProcessError:  # no overlayfs: a plain copy is slower but works
            shutil.rmtree(self.root)
            subprocess.run(["cp", "-a", str(self.base), str(self.root)], check=True)
        self.own_mounts = len(self.mounts)  # the overlay itself, if any
        self._mount("-t", "proc", "proc", target=self.root / "proc")
        self._mount("--bind", "/dev", target=self.root / "dev")
        for name, inside in (("archives", "var/cache/apt/archives"), ("lists", "var/lib/apt/lists")):
            cache = CACHE / f"apt-{name}"
            (cache / "partial").mkdir(parents=True, exist_ok=True)
            self._mount("--bind", str(cache), target=self.root / inside)
        shutil.copy("/etc/resolv.conf", self.root / "etc/resolv.conf")
        return self

    def unmount_helpers(self) -> None:
        """Drop /proc, /dev and the apt caches (before booting the root with systemd-nspawn)."""
        while len(self.mounts) > self.own_mounts:
            subprocess.run(["umount", "-l", str(self.mounts.pop())], check=False)

    def __exit__(self, *exc: object) -> None:
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    def run(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
        }
        p = subprocess.run(
            ["chroot", str(self.root), *cmd], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    def put(self, src: Path, inside: str) -> str:
        shutil.copy(src, self.root / inside.lstrip("/"))
        return inside
