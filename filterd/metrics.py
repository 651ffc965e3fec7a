"""filterd's counters in the Prometheus text format (0.0.4), served over HTTP/1.0 from the main loop.

Why here and why so small: the counters already exist (Pipeline.stats, rule_hits, decisions,
frame_errors, the sinks, each collector's counters in its host context); this module only names
them the Prometheus way and serves them. prometheus_client is not imported at run time: its
exposition module pulls in http.server, email, wsgiref and urllib (+1.5 MB resident, measured,
for a daemon whose target is 35 MB); the text format is a few lines, and the tests check ours
with prometheus_client's own parser and against its generate_latest().

Serving: the same pattern as filterd/control.py, no threads (the self-sandbox refuses to start
once a second thread exists, and the pipeline must not be raced). The main loop calls poll();
every socket is non-blocking. By default one AF_UNIX socket (`curl --unix-socket PATH
http://localhost/metrics`), made before the privilege drop, 0660 root:sysmon; with
`--metrics-listen HOST:PORT` also a TCP socket, bound and listening before the sandbox closes
TCP bind, so the sandbox needs no new right: accept() on a listening socket is not socket().
Bounds against a hostile client: MAX_CLIENTS connections (more are accepted and closed at
once, at most ACCEPT_BURST per poll), MAX_REQUEST bytes of request head, one DEADLINE_S from
accept to the last byte of the answer (a slowloris client is cut off, whatever it trickles),
one request per connection, and the body rendered at most once per RENDER_EVERY_S whatever the
number of scrapes.

Counters from a collector come from the wire: each is taken only when it is an int in
[0, 2**64) (a gauge: a finite number), and names taken from the wire become label values only
when they match [a-z0-9_]{1,64}, at most MAX_WIRE_KEYS per map, so a hostile collector cannot
make the page grow without bound or break its syntax.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import select
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filterd import __version__
from shared import records

MAX_CLIENTS = 8
ACCEPT_BURST = 64  # connections accepted (or refused) per poll: a connect flood cannot hold the loop
MAX_REQUEST = 8192
MAX_DRAIN = 1 << 16  # bytes read and thrown away after the answer, before closing anyway
DEADLINE_S = 5.0
RENDER_EVERY_S = 0.5
MAX_WIRE_KEYS = 64
MAX_LABEL = 256  # bytes of a label value taken from the wire (host names, origins)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATH = "/metrics"

_U64 = 1 << 64
_WIRE_KEY = re.compile(r"[a-z0-9_]{1,64}")
_KIND_LABEL = {k.kind: k.name.lower() for k in records.KINDS}
_KERNEL_KINDS = sorted(k for k in _KIND_LABEL if k < records.MAX_BPF_KIND)
_KIND_BY_NAME = {k.name: k.name.lower() for k in records.KINDS}

Labels = tuple[tuple[str, str], ...]

# name -> (type, help). The one list of what is exposed; docs/operations.md has the same table.
METRICS: dict[str, tuple[str, str]] = {
    # per collector (labels origin, host)
    "sysmon_events_emitted_total": ("counter", "Records the collector's BPF programs emitted, per kind."),
    "sysmon_events_dropped_total": (
        "counter",
        "Records or events lost, by hop: kernel (ring buffer full, per kind), publisher (ZeroMQ "
        "high-water mark, per socket), transit (missing from a stream), parked (came before the "
        "host context), content (unusable record, per kind), unknown (unknown kind), sink (per sink).",
    ),
    "sysmon_collector_ring_records_total": ("counter", "Records the collector read from the ring buffer."),
    "sysmon_collector_published_batches_total": ("counter", "Batches the collector published."),
    "sysmon_collector_published_records_total": ("counter", "Records the collector published."),
    "sysmon_collector_publish_dropped_messages_total": (
        "counter",
        "Messages the collector could not queue (high-water mark), per socket.",
    ),
    "sysmon_collector_publisher_counter_total": ("counter", "Other publisher counters, by name."),
    "sysmon_collector_image_hashes_total": ("counter", "Image hash jobs of the collector, by result."),
    "sysmon_collector_resend_buffer_batches": ("gauge", "Batches the collector keeps for resending."),
    "sysmon_collector_resend_buffer_bytes": ("gauge", "Bytes the collector keeps for resending."),
    "sysmon_collector_resend_buffer_overflow_records_total": (
        "counter",
        "Records that fell out of the collector's resend buffer.",
    ),
    "sysmon_collector_subscriptions": ("gauge", "Subscriptions the collector holds."),
    "sysmon_collector_heartbeat_age_seconds": (
        "gauge",
        "Seconds since the collector's last heartbeat that showed progress.",
    ),
    "sysmon_collector_silent": ("gauge", "1 while filterd reports the collector silent (no progress)."),
    "sysmon_collector_uptime_seconds": ("gauge", "The collector's uptime, as its last heartbeat said."),
    "sysmon_collector_resident_memory_bytes": ("gauge", "The collector's resident memory (VmRSS)."),
    "sysmon_collector_context_bad_fields_total": (
        "counter",
        "Host context fields filterd ignored for their type or range.",
    ),
    "sysmon_collector_info": ("gauge", "Always 1; the collector's version in a label."),
    # filterd
    "sysmon_filterd_batches_total": ("counter", "Batches filterd received."),
    "sysmon_filterd_records_decoded_total": ("counter", "Records filterd decoded."),
    "sysmon_gap_batches_total": ("counter", "Batches missing from collector streams (sequence numbers)."),
    "sysmon_duplicate_records_total": ("counter", "Records received again (resent) and skipped."),
    "sysmon_frames_malformed_total": ("counter", "Frames or batches filterd could not use, by reason."),
    "sysmon_records_unparsed_total": ("counter", "Records of no use to any event (e.g. not a DNS answer)."),
    "sysmon_events_filtered_total": ("counter", "Events the rules included or excluded, per event id."),
    "sysmon_events_written_total": ("counter", "Events rendered and handed to the sinks (also 4, 16, 255)."),
    "sysmon_events_sent_total": ("counter", "Events a sink sent, per sink."),
    "sysmon_rule_hits_total": ("counter", "Events included by each named rule (RuleName)."),
    "sysmon_loss_reports_total": ("counter", "In-band loss reports written (event 255 EventsLost)."),
    "sysmon_health_reports_total": ("counter", "In-band health reports written (event 255, collector)."),
    "sysmon_origins": ("gauge", "Collectors (origins) filterd keeps state for."),
    "sysmon_origins_refused_total": ("counter", "Frames of origins refused past the origin limit."),
    "sysmon_parked_bytes": ("gauge", "Bytes of batches waiting for their host context."),
    "sysmon_tail_clients": ("gauge", "Connected `sysmonctl tail` clients."),
    "sysmon_tail_events_total": ("counter", "Events queued to tail clients, by result."),
    "sysmon_metrics_requests_total": ("counter", "Requests to this metrics endpoint, by HTTP status."),
    "sysmon_metrics_clients_dropped_total": ("counter", "Metrics clients cut off, by reason."),
    "sysmon_filterd_info": ("gauge", "Always 1; filterd's version in a label."),
    "process_resident_memory_bytes": ("gauge", "filterd's resident memory (VmRSS)."),
    "process_cpu_seconds_total": ("counter", "filterd's user and system CPU time."),
    "process_open_fds": ("gauge", "filterd's open file descriptors."),
}


# -- exposition ---------------------------------------------------------------------------------------
class Families:
    """Samples grouped by metric, in METRICS order; the same labels twice keep the last value."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[Labels, int | float]] = {}

    def add(self, name: str, value: int | float, labels: Labels = ()) -> None:
        self.samples.setdefault(name, {})[labels] = value

    def render(self) -> bytes:
        out: list[str] = []
        for name, (kind, text) in METRICS.items():
            samples = self.samples.get(name)
            if not samples:
                continue
            out.append(f"# HELP {name} {escape_help(text)}\n# TYPE {name} {kind}\n")
            for labels, value in samples.items():
                if labels:
                    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
                    out.append(f"{name}{{{inner}}} {format_value(value)}\n")
                else:
                    out.append(f"{name} {format_value(value)}\n")
        return "".join(out).encode()


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(v: int | float) -> str:
    if type(v) is int:
        return str(v)  # exact, where a float would round counters above 2**53
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


# -- values from the wire -----------------------------------------------------------------------------
def wire_count(v: Any) -> int | None:
    return v if type(v) is int and 0 <= v < _U64 else None


def wire_gauge(v: Any) -> float | int | None:
    if type(v) is int and -_U64 < v < _U64:
        return v
    if type(v) is float and math.isfinite(v):
        return v
    return None


def wire_counts(m: Any) -> dict[str, int]:
    """The usable name -> count entries of a map from the wire (at most MAX_WIRE_KEYS)."""
    out: dict[str, int] = {}
    if not isinstance(m, dict):
        return out
    for k, v in itertools.islice(m.items(), 4 * MAX_WIRE_KEYS):  # a huge map costs no more than this
        if len(out) >= MAX_WIRE_KEYS:
            break
        n = wire_count(v)
        if n is not None and isinstance(k, str) and _WIRE_KEY.fullmatch(k):
            out[k] = n
    return out


def kind_counts(m: Any) -> dict[int, int]:
    """A per-kind map (keys ints or decimal strings) restricted to kernel kinds."""
    out: dict[int, int] = {}
    if not isinstance(m, dict):
        return out
    for k, v in itertools.islice(m.items(), 4 * records.MAX_BPF_KIND):
        kind = k if type(k) is int else int(k) if isinstance(k, str) and k.isdecimal() and len(k) < 4 else -1
        n = wire_count(v)
        if 0 <= kind < records.MAX_BPF_KIND and n is not None:
            out[kind] = n
    return out


def _label(text: str) -> str:
    return text[:MAX_LABEL]


# -- what filterd knows -------------------------------------------------------------------------------
def collect_collectors(f: Families, pipeline: Any, now: float) -> None:
    """Per origin: its counters from the host context and what filterd knows of its liveness."""
    beats = pipeline.watch.beats
    for origin, h in list(pipeline.hosts.items()):
        base = (("origin", _label(origin)), ("host", _label(h.hostname)))
        c = h.counters
        for name, src in (("sysmon_events_emitted_total", "kernel_emitted"),
                          ("sysmon_events_dropped_total", "kernel_dropped")):  # fmt: skip
            counts = kind_counts(c.get(src))
            for kind in sorted(counts):
                if kind in _KIND_LABEL or counts[kind]:
                    kl = _KIND_LABEL.get(kind) or f"kind_{kind}"
                    f.add(name, counts[kind], (("hop", "kernel"), ("kind", kl), *base))
        published = wire_counts(c.get("published"))
        for key, n in published.items():
            socket_name = "tcp" if key.startswith("tcp_") else "local"
            bare = key.removeprefix("tcp_")
            if key == "batches":
                f.add("sysmon_collector_published_batches_total", n, base)
            elif key == "records":
                f.add("sysmon_collector_published_records_total", n, base)
            elif bare == "records_dropped":
                f.add(
                    "sysmon_events_dropped_total", n, (("hop", "publisher"), ("socket", socket_name), *base)
                )
            elif bare == "hwm_drops":
                f.add("sysmon_collector_publish_dropped_messages_total", n, (("socket", socket_name), *base))
            else:
                f.add("sysmon_collector_publisher_counter_total", n, (("counter", key), *base))
        for key, n in wire_counts(c.get("hashes")).items():
            f.add("sysmon_collector_image_hashes_total", n, (("result", key), *base))
        for name, src, conv in (
            ("sysmon_collector_ring_records_total", "ring_records", wire_count),
            ("sysmon_collector_resend_buffer_batches", "buffered_batches", wire_gauge),
            ("sysmon_collector_resend_buffer_bytes", "buffered_bytes", wire_gauge),
            ("sysmon_collector_resend_buffer_overflow_records_total", "buffer_overflow_records", wire_count),
            ("sysmon_collector_subscriptions", "subscriptions_held", wire_gauge),
            ("sysmon_collector_resident_memory_bytes", "rss_bytes", wire_gauge),
        ):
            v = conv(c.get(src))
            if v is not None:
                f.add(name, v, base)
        b = beats.get(origin)
        if b is not None:
            f.add("sysmon_collector_heartbeat_age_seconds", round(max(0.0, now - b.alive_at), 3), base)
            f.add("sysmon_collector_silent", int(b.silent), base)
        if h.ready:
            f.add("sysmon_collector_uptime_seconds", h.collector_uptime_s, base)
            f.add("sysmon_collector_info", 1, (*base, ("version", _label(h.collector_version))))
        f.add("sysmon_collector_context_bad_fields_total", h.bad_fields, base)


def collect_filterd(f: Families, pipeline: Any, sinks: Iterable[Any], tail: Any = None) -> None:
    s = pipeline.stats
    f.add("sysmon_filterd_batches_total", s["batches"])
    f.add("sysmon_filterd_records_decoded_total", s["decoded"])
    f.add("sysmon_events_dropped_total", s["gap_records"], (("hop", "transit"),))
    f.add("sysmon_events_dropped_total", s["parked_dropped_records"], (("hop", "parked"),))
    f.add("sysmon_events_dropped_total", s["UnknownKind"], (("hop", "unknown"),))
    f.add("sysmon_gap_batches_total", s["gap_batches"])
    f.add("sysmon_duplicate_records_total", s["duplicate_records"])
    for key, n in list(s.items()):
        if key.startswith("bad_record_"):
            kind = _KIND_BY_NAME.get(key[11:], key[11:].lower())
            f.add("sysmon_events_dropped_total", n, (("hop", "content"), ("kind", kind)))
        elif key.startswith("unparsed_"):
            f.add(
                "sysmon_records_unparsed_total", n, (("kind", _KIND_BY_NAME.get(key[9:], key[9:].lower())),)
            )
    for reason, n in sorted(pipeline.frame_errors.items()):
        f.add("sysmon_frames_malformed_total", n, (("reason", reason),))
    for (event_id, included), n in sorted(pipeline.decisions.items()):
        result = "included" if included else "excluded"
        f.add("sysmon_events_filtered_total", n, (("event_id", str(event_id)), ("result", result)))
    f.add("sysmon_events_written_total", s["written"])
    for sink in sinks:
        name = type(sink).__name__.removesuffix("Sink").lower() or "sink"
        sent, dropped = sink.sent, sink.dropped
        f.add("sysmon_events_sent_total", sent if type(sent) is int else 0, (("sink", name),))
        f.add(
            "sysmon_events_dropped_total",
            dropped if type(dropped) is int else 0,
            (("hop", "sink"), ("sink", name)),
        )
    for rule, n in sorted(pipeline.rule_hits.items()):
        f.add("sysmon_rule_hits_total", n, (("rule", rule),))
    f.add("sysmon_loss_reports_total", s["loss_reports"])
    f.add("sysmon_health_reports_total", s["health_reports"])
    f.add("sysmon_origins", len(pipeline.hosts))
    f.add("sysmon_origins_refused_total", s["origins_refused"])
    f.add("sysmon_parked_bytes", pipeline.parked_bytes)
    if tail is not None:
        f.add("sysmon_tail_clients", len(tail.clients))
        f.add("sysmon_tail_events_total", tail.sent, (("result", "sent"),))
        f.add("sysmon_tail_events_total", tail.dropped, (("result", "dropped"),))
    f.add("sysmon_filterd_info", 1, (("version", __version__),))


def collect_process(f: Families, pid: int | None = None) -> None:
    """filterd's own process figures, read from /proc/<pid> (inside the sandbox's read rules)."""
    pid = pid or os.getpid()
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm", "rb") as fh:
        f.add("process_resident_memory_bytes", int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    t = os.times()
    f.add("process_cpu_seconds_total", round(t.user + t.system, 3))
    with contextlib.suppress(OSError):
        f.add("process_open_fds", len(os.listdir(f"/proc/{pid}/fd")))


# -- HTTP over the main loop ------------------------------------------------------------------------
READING, WRITING, DRAINING = 0, 1, 2


class _Client:
    __slots__ = ("sock", "rbuf", "wbuf", "deadline", "state", "drained")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.deadline = deadline
        self.state = READING  # then WRITING the answer, then DRAINING until the client hangs up
        self.drained = 0


def parse_listen(spec: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """`127.0.0.1:9701` or `[::1]:9701` (an IP literal: no name lookup) -> (family, address)."""
    host, sep, port_text = spec.rpartition(":")
    if not sep or not port_text.isdecimal() or not 0 <= int(port_text) < 65536:  # 0: any free port
        raise ValueError(f"{spec!r}: expected HOST:PORT with an IP address and a port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, int(port_text))
    raise ValueError(f"{spec!r}: {host!r} is not an IP address")


def bind_unix(path: str, gid: int) -> socket.socket:
    """A listening AF_UNIX socket born 0660 (root:gid when root), replacing only a stale socket."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    old = os.umask(0o117)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if os.geteuid() == 0:
        os.chown(path, 0, gid, follow_symlinks=False)
    sock.listen(ACCEPT_BURST)
    return sock


def bind_tcp(spec: str) -> socket.socket:
    family, address = parse_listen(spec)
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(ACCEPT_BURST)
    except OSError:
        sock.close()
        raise
    return sock


def response(
    status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", head: bool = False
) -> bytes:
    lines = (
        f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return lines.encode() + (b"" if head else body)


class MetricsServer:
    """Serves GET /metrics on the given listening sockets; poll() from the main loop."""

    def __init__(
        self,
        listeners: Iterable[socket.socket],
        render: Callable[[], bytes],
        clock: Callable[[], float] = time.monotonic,
        unix_path: str | None = None,
    ) -> None:
        self.listeners = {s.fileno(): s for s in listeners}
        self.render = render
        self.clock = clock
        self.unix_path = unix_path
        self.clients: dict[int, _Client] = {}
        self.requests: dict[str, int] = {}  # HTTP status code -> count
        self.dropped: dict[str, int] = {}  # reason -> clients cut off
        self._body = b""
        self._body_at = -math.inf

    @classmethod
    def open(
        cls,
        unix_path: str | None,
        listen: str | None,
        gid: int,
        render: Callable[[], bytes],
    ) -> MetricsServer | None:
        """The listeners asked for (none: None). Call before the privilege drop and the sandbox."""
        socks: list[socket.socket] = []
        try:
            if unix_path:
                socks.append(bind_unix(unix_path, gid))
            if listen:
                socks.append(bind_tcp(listen))
        except BaseException:
            for s in socks:
                s.close()
            raise
        return cls(socks, render, unix_path=unix_path) if socks else None

    def describe(self) -> list[str]:
        out = []
        for s in self.listeners.values():
            name = s.getsockname()
            out.append(f"unix:{name}" if s.family == socket.AF_UNIX else f"tcp:{name[0]}:{name[1]}")
        return out

    def families(self, f: Families) -> None:
        """The server's own counters."""
        for code, n in sorted(self.requests.items()):
            f.add("sysmon_metrics_requests_total", n, (("code", code),))
        for reason, n in sorted(self.dropped.items()):
            f.add("sysmon_metrics_clients_dropped_total", n, (("reason", reason),))

    # -- main loop ---------------------------------------------------------------------------------
    def poll(self) -> None:
        """Accept, read, answer and write what can be done now, without blocking."""
        p = select.poll()
        for fd in self.listeners:
            p.register(fd, select.POLLIN)
        for fd, c in self.clients.items():
            p.register(fd, select.POLLOUT if c.state == WRITING else select.POLLIN)
        ready = p.poll(0)
        for fd, ev in ready:
            c = self.clients.get(fd)
            if c is None or not ev:
                continue
            if c.state == READING:
                self._read(c)
            elif c.state == WRITING:
                self._write(c)
            else:
                self._drain(c)
        for fd, _ in ready:
            if fd in self.listeners:
                self._accept(self.listeners[fd])
        now = self.clock()
        for c in list(self.clients.values()):
            if now > c.deadline:
                self._drop(c, "timeout" if c.state != DRAINING else None)

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the connection waits in the backlog
            if len(self.clients) >= MAX_CLIENTS:
                self._count(self.dropped, "too_many_clients")
                conn.close()
                continue
            conn.setblocking(False)
            self.clients[conn.fileno()] = _Client(conn, self.clock() + DEADLINE_S)

    def _read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(MAX_REQUEST + 1 - len(c.rbuf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c, "hung_up")
            return
        c.rbuf += data
        end = c.rbuf.find(b"\r\n\r\n")
        if end < 0:
            end = c.rbuf.find(b"\n\n")
        if end < 0:
            if len(c.rbuf) > MAX_REQUEST:
                self._answer(c, "431 Request Header Fields Too Large", b"request too large\n")
            return
        self._handle(c, bytes(c.rbuf[:end]))

    def _handle(self, c: _Client, head: bytes) -> None:
        line = head.split(b"\n", 1)[0].rstrip(b"\r")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._answer(c, "400 Bad Request", b"bad request\n")
            return
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            self._answer(c, "405 Method Not Allowed", b"GET or HEAD only\n")
        elif target != PATH.encode():
            self._answer(c, "404 Not Found", f"the metrics are at {PATH}\n".encode(), head=method == b"HEAD")
        else:
            self._answer(c, "200 OK", self.body(), CONTENT_TYPE, head=method == b"HEAD")

    def body(self) -> bytes:
        now = self.clock()
        if now - self._body_at >= RENDER_EVERY_S:
            self._body = self.render()
            self._body_at = now
        return self._body

    def _answer(
        self, c: _Client, status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
        head: bool = False,
    ) -> None:  # fmt: skip
        self._count(self.requests, status.split(" ", 1)[0])
        c.wbuf = bytearray(response(status, body, content_type, head))
        c.rbuf = bytearray()
        c.state = WRITING
        self._write(c)

    def _write(self, c: _Client) -> None:
        while c.wbuf:
            try:
                n = c.sock.send(c.wbuf[: 1 << 16], socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(c, "error")
                return
            del c.wbuf[:n]
        # Half-close and read until the client hangs up: closing with unread input would make
        # TCP reset the connection, and the client could lose the answer.
        c.state = DRAINING
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(c, None)

    def _drain(self, c: _Client) -> None:
        try:
            data = c.sock.recv(MAX_DRAIN)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        c.drained += len(data)
        if not data or c.drained > MAX_DRAIN:
            self._drop(c, None)

    def _drop(self, c: _Client, reason: str | None) -> None:
        fd = c.sock.fileno()
        if self.clients.get(fd) is not c:
            return
        del self.clients[fd]
        if reason is not None:
            self._count(self.dropped, reason)
        c.sock.close()

    def close(self) -> None:
        for c in list(self.clients.values()):
            self._drop(c, None)
        for s in self.listeners.values():
            s.close()
        self.listeners = {}
        if self.unix_path:
            with contextlib.suppress(OSError):  # denied once sandboxed; the next start replaces it
                os.unlink(self.unix_path)


def exposition(
    pipeline: Any, sinks: Iterable[Any], tail: Any = None, server: MetricsServer | None = None
) -> bytes:
    """The whole page: collectors, filterd, this server, the process."""
    f = Families()
    collect_collectors(f, pipeline, pipeline.clock())
    collect_filterd(f, pipeline, sinks, tail)
    if server is not None:
        server.families(f)
    collect_process(f)
    return f.render()
