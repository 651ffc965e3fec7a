"""Throw-away "hosts" on this machine for the remote tests: named network namespaces joined by
veth pairs, and a command prefix that runs a process inside one with its own hostname (a UTS
namespace) and, optionally, its own /etc/machine-id and /etc/passwd (bind mounts in a private
mount namespace), so a collector there describes a different host.

`nsenter --net` is used instead of `ip netns exec`, which remounts /sys and so hides tracefs
from a collector that needs it. Traffic stays between the namespaces made here (addresses in
10.99.0.0/16). Lab.close() removes every namespace and link it made, whatever happened before.
"""

from __future__ import annotations

import os
import subprocess
from types import TracebackType


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Lab:
    """Namespaces and links named with a per-run tag, so parallel runs do not collide."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"sm{os.getpid() % 100000}"
        self.namespaces: list[str] = []
        self.links = 0

    def host(self, name: str) -> str:
        ns = f"{self.tag}{name}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def link(self, a: str, addr_a: str, b: str, addr_b: str) -> None:
        """A veth pair between namespaces a and b with these CIDR addresses."""
        self.links += 1
        ea, eb = f"{self.tag}v{self.links}a", f"{self.tag}v{self.links}b"  # <= 15 characters
        _ip("link", "add", ea, "netns", a, "type", "veth", "peer", "name", eb, "netns", b)
        for ns, dev, addr in ((a, ea, addr_a), (b, eb, addr_b)):
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")

    @staticmethod
    def prefix(ns: str, hostname: str | None = None, binds: dict[str, str] | None = None) -> list[str]:
        """argv prefix: run in network namespace `ns`, with its own hostname and bind mounts."""
        argv = ["nsenter", f"--net=/run/netns/{ns}", "--"]
        if hostname is None and not binds:
            return argv
        script = []
        if hostname is not None:
            script.append(f'hostname "{hostname}"')
        for src, dst in (binds or {}).items():
            script.append(f'mount --bind "{src}" "{dst}"')
        script.append('exec "$@"')
        return [*argv, "unshare", "--uts", "--mount", "--propagation", "private", "--",
                "sh", "-ec", " && ".join(script), "sh"]

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)  # veths go with it
        self.namespaces = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
