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

import ctypes
import errno
import itertools
import socket
import threading
import time
from array import array

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Errors where reconnecting cannot help (the receiver is alive but busy, or the message is too big).
_NO_RETRY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EMSGSIZE})


def syslog_header(pri: int, tag: str, epoch_seconds: int) -> str:
    """`<pri>Mmm dd hh:mm:ss tag: ` as glibc 2.36 writes it (local time, C-locale month, day
    space-padded like %e)."""
    t = time.localtime(epoch_seconds)
    return (
        f"<{pri}>{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {tag}: "
    )


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):  # struct msghdr is padded to 8 bytes before msg_len
    _fields_ = [("hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
MSG_NOSIGNAL = 0x4000
UIO_MAXIOV = 1024


class _Vector:
    """sendmmsg's arguments, built once: UIO_MAXIOV message headers, each already pointing at its
    own iovec. A call only writes (address, length) pairs into the iovecs, with two C-speed slice
    assignments over one buffer that holds every datagram back to back: per message no ctypes
    object is made and no attribute is set (that cost more than the system call itself)."""

    def __init__(self) -> None:
        self.iov = (_Iovec * UIO_MAXIOV)()
        self.msgs = (_Mmsghdr * UIO_MAXIOV)()
        base, step = ctypes.addressof(self.iov), ctypes.sizeof(_Iovec)
        for i in range(UIO_MAXIOV):
            self.msgs[i].hdr.iov = base + i * step
            self.msgs[i].hdr.iovlen = 1
        self.words = memoryview(self.iov).cast("B").cast("Q")  # base0, len0, base1, len1, ...

    def send(self, fd: int, buf: bytes, lengths: list[int]) -> int:
        """Datagram i is the next lengths[i] bytes of `buf`; returns how many went out (stops at
        the first error or short count, as sendmmsg does)."""
        addr = ctypes.cast(buf, ctypes.c_void_p).value or 0
        done = 0
        while done < len(lengths):
            chunk = lengths[done : done + UIO_MAXIOV]
            n = len(chunk)
            starts = array("Q", itertools.accumulate(chunk[:-1], initial=addr))
            self.words[0 : 2 * n : 2] = starts
            self.words[1 : 2 * n : 2] = array("Q", chunk)
            sent = _libc.sendmmsg(fd, self.msgs, n, MSG_NOSIGNAL)
            if sent <= 0:
                return done
            done += sent
            if sent < n:
                return done
            addr = starts[-1] + chunk[-1]
        return done


# the fast path writes size_t and pointers as u64 words: true on every 64-bit Linux
_FAST = ctypes.sizeof(ctypes.c_void_p) == ctypes.sizeof(ctypes.c_size_t) == 8


def _sendmmsg_slow(fd: int, datas: list[bytes]) -> int:
    """The same with ctypes objects per message (for a platform where _FAST does not hold)."""
    done = 0
    while done < len(datas):
        chunk = datas[done : done + UIO_MAXIOV]
        n = len(chunk)
        iov = (_Iovec * n)()
        msgs = (_Mmsghdr * n)()
        for i, d in enumerate(chunk):
            iov[i].base = ctypes.cast(ctypes.c_char_p(d), ctypes.c_void_p)
            iov[i].len = len(d)
            msgs[i].hdr.iov = ctypes.addressof(iov[i])
            msgs[i].hdr.iovlen = 1
        sent = _libc.sendmmsg(fd, msgs, n, MSG_NOSIGNAL)
        if sent <= 0:
            return done
        done += sent
        if sent < n:
            return done
    return done


def sendmmsg(fd: int, datas: list[bytes]) -> int:
    """Send each buffer as its own datagram on a connected socket; returns how many went out
    (stops at the first error, which the caller's per-message path then meets and counts)."""
    if _FAST:
        return _Vector().send(fd, b"".join(datas), [len(d) for d in datas])
    return _sendmmsg_slow(fd, datas)


class SyslogSink:
    """Send each event as one syslog record to a local AF_UNIX log socket.

    `send()` never raises on delivery problems (missing socket, receiver restarted, queue
    full with `timeout` set); it counts them in `dropped` and reconnects on the next call.
    `timeout=None` blocks like glibc when the receiver's queue is full (backpressure).
    """

    def __init__(
        self,
        socket_path: str = "/dev/log",
        tag: str = "sysmon",
        facility: int = 1,
        severity: int = 6,
        *,
        timeout: float | None = None,
    ) -> None:
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
        self._vector: _Vector | None = None  # made at the first send_many (80 KiB)
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
                    self.sock_type = (
                        socket.SOCK_STREAM if self.sock_type == socket.SOCK_DGRAM else socket.SOCK_DGRAM
                    )
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

    def send_many(self, xmls: list[str]) -> None:
        """Several events, still one datagram each, in one sendmmsg() call: one system call and
        one receiver wakeup per batch instead of per event. What that call did not send goes
        through send() (reconnect, retry, counting)."""
        if len(xmls) < 2 or self.sock_type != socket.SOCK_DGRAM:
            for x in xmls:
                self.send(x)
            return
        hdr = self.header(int(time.time()))
        text = hdr + hdr.join(xmls)  # every datagram back to back, each with its header
        if text.isascii():  # the usual case: one encode, lengths from the str lengths
            buf, n = text.encode(), len(hdr)
            lengths = [n + len(x) for x in xmls]
        else:
            try:
                datas = [(hdr + x).encode("utf-8", "surrogateescape") for x in xmls]
            except UnicodeEncodeError:
                datas = []  # a rare odd string: the careful path below handles each
            buf, lengths = b"".join(datas), [len(d) for d in datas]
        done = 0
        with self._lock:
            sock = self._sock or self._connect()
            if sock is not None and lengths:
                done = self._sendmmsg(sock.fileno(), buf, lengths)
                self.sent += done
        for x in xmls[done:]:
            self.send(x)

    def _sendmmsg(self, fd: int, buf: bytes, lengths: list[int]) -> int:
        if not _FAST:
            starts = itertools.accumulate(lengths, initial=0)  # one longer than lengths
            return _sendmmsg_slow(fd, [buf[s : s + n] for s, n in zip(starts, lengths, strict=False)])
        if self._vector is None:
            self._vector = _Vector()
        return self._vector.send(fd, buf, lengths)

    def close(self) -> None:
        """Close the socket (idempotent); a later send() reconnects."""
        with self._lock:
            self._disconnect()
