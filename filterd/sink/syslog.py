"""Event sink that speaks syslog(3) exactly like Sysmon does through glibc.

Sysmon calls `openlog("sysmon", LOG_NOWAIT, LOG_USER)` and then `syslog(LOG_USER|LOG_INFO,
"%s", xml)` per event. glibc 2.36 (`misc/syslog.c`) turns that into one AF_UNIX datagram to
/dev/log:

    <14>Nov  2 09:48:39 sysmon: <Event>...</Event>

i.e. `<PRI>` + local time `strftime("%h %e %T ")` in the C locale + tag + ": " + message, with
no pid (no LOG_PID) and no hostname. The socket is SOCK_DGRAM; if connect() says EPROTOTYPE
(a stream-only log socket) glibc switches to SOCK_STREAM and terminates each record with a
NUL. When a send fails glibc closes, reconnects and retries once, then drops the message.
This module owns that wire format for filterd, plus counters (sent / dropped / connects) so
losses are visible instead of raised into the pipeline.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Errors where reconnecting cannot help (the receiver is alive but busy, or the message is too big).
_NO_RETRY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EMSGSIZE})


def syslog_header(pri: int, tag: str, epoch_seconds: int) -> str:
    """`<pri>Mmm dd hh:mm:ss tag: ` as glibc 2.36 writes it (local time, C-locale month, day
    space-padded like %e)."""
    t = time.localtime(epoch_seconds)
    return (f"<{pri}>{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {tag}: ")


class SyslogSink:
    """Send each event as one syslog record to a local AF_UNIX log socket.

    `send()` never raises on delivery problems (missing socket, receiver restarted, queue
    full with `timeout` set); it counts them in `dropped` and reconnects on the next call.
    `timeout=None` blocks like glibc when the receiver's queue is full (backpressure).
    """

    def __init__(self, socket_path: str = "/dev/log", tag: str = "sysmon", facility: int = 1,
                 severity: int = 6, *, timeout: float | None = None) -> None:
        self.socket_path = socket_path
        self.tag = tag
        self.pri = ((facility & 0x3FF) << 3) | (severity & 0x07)  # LOG_MAKEPRI
        self.timeout = timeout
        self.sent = 0
        self.dropped = 0
        self.connects = 0
        self.last_error: OSError | None = None
        self.sock_type = socket.SOCK_DGRAM  # flips to SOCK_STREAM on EPROTOTYPE, like glibc
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._hdr_sec = -1
        self._hdr = ""
        with self._lock:
            self._connect()  # best effort: a missing socket now is not an error

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> socket.socket | None:
        for _ in range(2):  # second round only after an EPROTOTYPE type switch
            s = socket.socket(socket.AF_UNIX, self.sock_type | socket.SOCK_CLOEXEC)
            try:
                s.settimeout(self.timeout)
                s.connect(self.socket_path)
            except OSError as e:
                s.close()
                self.last_error = e
                if e.errno == errno.EPROTOTYPE:
                    self.sock_type = (socket.SOCK_STREAM if self.sock_type == socket.SOCK_DGRAM
                                      else socket.SOCK_DGRAM)
                    continue
                return None
            self._sock = s
            self.connects += 1
            return s
        return None

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _write(self, sock: socket.socket, data: bytes) -> None:
        if self.sock_type == socket.SOCK_STREAM:
            sock.sendall(data + b"\x00", socket.MSG_NOSIGNAL)  # NUL record terminator
        else:
            sock.send(data, socket.MSG_NOSIGNAL)

    # -- public -----------------------------------------------------------------------------
    def header(self, epoch_seconds: int) -> str:
        """The record prefix for a given second (cached: it changes once per second)."""
        if epoch_seconds != self._hdr_sec:
            self._hdr = syslog_header(self.pri, self.tag, epoch_seconds)
            self._hdr_sec = epoch_seconds
        return self._hdr

    def send(self, xml: str) -> None:
        """Send one event; on failure reconnect and retry once, then count it as dropped."""
        msg = self.header(int(time.time())) + xml
        try:
            data = msg.encode("utf-8", "surrogateescape")  # raw non-UTF-8 bytes go out as they came
        except UnicodeEncodeError:
            data = msg.encode("utf-8", "replace")
        with self._lock:
            sock = self._sock or self._connect()
            if sock is not None:
                try:
                    self._write(sock, data)
                    self.sent += 1
                    return
                except OSError as e:
                    self.last_error = e
                    self._disconnect()
                    if e.errno in _NO_RETRY or isinstance(e, TimeoutError):
                        self.dropped += 1
                        return
                sock = self._connect()  # receiver restarted / socket replaced: like glibc, once
                if sock is not None:
                    try:
                        self._write(sock, data)
                        self.sent += 1
                        return
                    except OSError as e:
                        self.last_error = e
                        self._disconnect()
            self.dropped += 1

    def close(self) -> None:
        """Close the socket (idempotent); a later send() reconnects."""
        with self._lock:
            self._disconnect()
