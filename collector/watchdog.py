"""sd_notify for the collector: READY=1 once it publishes, WATCHDOG=1 from its loop.

Why: a collector that hangs (a stuck read, a lock, SIGSTOP) keeps its pid, so neither systemd's
Restart= nor the supervisor's restart-on-exit notices; the monitor would be blind while looking
alive. With pings, both kill and restart it: systemd through `Type=notify` + `WatchdogSec=`,
the supervisor through a NOTIFY_SOCKET of its own that speaks the same protocol.

No dependency (python3-systemd is not needed): one AF_UNIX datagram per message to
$NOTIFY_SOCKET ('/path' or '@abstract'). Pings are rate-limited to half of $WATCHDOG_USEC, so
ping() may be called on every loop iteration for the price of a clock read. Sending never blocks
and never raises: a supervisor that is gone or slow must not take the collector down with it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

DEFAULT_INTERVAL = 1.0  # pings when NOTIFY_SOCKET is set without WATCHDOG_USEC
ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | None:
    """The sendto() address for a NOTIFY_SOCKET value; None if unusable (unset, vsock, relative)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    return None


def ping_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between pings: half the watchdog period; None when the watchdog is another process's
    (WATCHDOG_PID names someone else, as in a child that inherited the environment)."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return usec / 2e6 if usec > 0 else DEFAULT_INTERVAL


class Notifier:
    """The service-manager link of one process. Inert when there is no NOTIFY_SOCKET."""

    def __init__(
        self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        e = os.environ if env is None else env
        self.address = socket_address(e.get("NOTIFY_SOCKET", ""))
        self.interval = ping_interval(e)
        self.clock = clock
        self.next_ping = 0.0
        self.sent = 0
        self.failed = 0  # datagrams the manager could not take (gone, queue full): counted, dropped
        self.sock: socket.socket | None = None
        if self.address is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls) -> Notifier:
        """Take the settings out of os.environ, so that no program this process starts inherits them."""
        n = cls(dict(os.environ))
        for name in ENV:
            os.environ.pop(name, None)
        return n

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, message: str) -> bool:
        if self.sock is None or self.address is None:
            return False
        try:
            self.sock.sendto(message.encode(), socket.MSG_DONTWAIT, self.address)
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> None:
        """Start-up is done (programs loaded, socket bound): the watchdog applies from now on."""
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self.next_ping = self.clock() + (self.interval or 0.0)

    def ping(self) -> None:
        """I am alive. Cheap: sends at most once per interval."""
        if self.interval is None:
            return
        now = self.clock()
        if now >= self.next_ping:
            self.notify("WATCHDOG=1")
            self.next_ping = now + self.interval

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
