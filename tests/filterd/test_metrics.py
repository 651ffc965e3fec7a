"""filterd/metrics.py: the exposition of a real pipeline, checked with prometheus_client's parser and
against its generate_latest(); hostile counters from the wire; the HTTP server and its bounds
(slowloris, huge requests, connection floods, clients that never read) with an injected clock."""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import select
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from filterd import metrics
from filterd.config.loader import load_config_bytes
from filterd.main import metrics_socket, parse_args
from filterd.metrics import Families, MetricsServer, exposition
from filterd.pipeline import Pipeline
from filterd.receiver import Receiver
from filterd.state.record_id import RecordIdCounter
from tests.filterd.test_pipeline import HOST, ORIGIN, Clock, ListSink, exec_rec, execs

CONFIG = b"""<Sysmon schemaversion="4.90"><EventFiltering>
<ProcessCreate onmatch="include">
<Image name="true &quot;rule&quot;\\x" condition="end with">/true</Image></ProcessCreate>
<ProcessCreate onmatch="exclude"><Image condition="end with">/id</Image></ProcessCreate>
</EventFiltering></Sysmon>"""
RULE = 'true "rule"\\x'  # a RuleName that needs escaping in a label

COUNTERS = {
    "kernel_emitted": {1: 120, 2: 118, 3: 40, 4: 7, 15: 0, 14: 3},  # 14: no such kind, but counted
    "kernel_dropped": {"1": 5, "4": 2, "7": 0},  # keys as strings: msgpack maps may carry either
    "ring_records": 160,
    "published": {
        "batches": 9,
        "records": 150,
        "hwm_drops": 2,
        "records_dropped": 11,
        "tcp_hwm_drops": 1,
        "tcp_records_dropped": 4,
        "peers_accepted": 3,
    },  # fmt: skip
    "hashes": {"hashed": 4, "failed_gone": 1},
    "buffered_batches": 3,
    "buffered_bytes": 4096,
    "buffer_overflow_records": 0,
    "subscriptions_held": 6,
    "rss_bytes": 41 << 20,
}


class FakeSink:
    def __init__(self, sent: int, dropped: int) -> None:
        self.sent, self.dropped = sent, dropped

    def send_many(self, xmls: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


class SyslogSink(FakeSink):
    """Named like the real one: the label comes from the class name."""


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[tuple[Pipeline, Clock]]:
    """A pipeline through which every counted thing has passed at least once."""
    clock = Clock()
    ids = RecordIdCounter(tmp_path / "eventId")
    sink = ListSink()
    p = Pipeline(load_config_bytes(CONFIG, "c.xml"), [sink], ids, state_dir=tmp_path, clock=clock)
    p.on_host(ORIGIN, {**HOST, "collector_version": "0.1.0", "uptime_s": 12.5, "counters": COUNTERS})
    idr = exec_rec(9, 1, 9 * 10**9, 0, "/usr/bin/id", b"id\0")
    lsr = exec_rec(8, 1, 8 * 10**9, 0, "/usr/bin/ls", b"ls\0")
    p.on_batch(ORIGIN, 0, execs(3) + idr + lsr, first_record=0)
    p.on_batch(ORIGIN, 2, execs(1, 300), first_record=10)  # 5 records, 1 batch lost in transit
    blob = execs(3, 400)
    p.on_batch(ORIGIN, 3, blob[: len(blob) // 2] + b"\x01\x00\x00\x00\xff\xff\x00\x00", first_record=11)
    r = Receiver.__new__(Receiver)  # handle() only, no sockets
    r.pipeline, r.stats = p, p.stats
    r.handle([b"rec"])
    r.handle([b"zzz", b""])
    clock.now += 3.25
    yield p, clock
    p.streams.close()
    ids.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(got: dict, name: str, **labels: str) -> float:
    return got[(name, frozenset(labels.items()))]


C = {"origin": ORIGIN, "host": "h1"}


def test_exposition_of_a_real_pipeline(fed: tuple[Pipeline, Clock]) -> None:
    p, _ = fed
    text = exposition(p, [SyslogSink(40, 2)]).decode()
    got = samples(text)
    kernel = {"hop": "kernel", **C}
    assert value(got, "sysmon_events_emitted_total", kind="process_exec", **kernel) == 120
    assert value(got, "sysmon_events_emitted_total", kind="process_fork", **kernel) == 40
    assert value(got, "sysmon_events_emitted_total", kind="kind_14", **kernel) == 3
    assert ("sysmon_events_emitted_total", frozenset({"kind": "kind_15", **kernel}.items())) not in got
    assert value(got, "sysmon_events_dropped_total", kind="process_exec", **kernel) == 5
    assert value(got, "sysmon_events_dropped_total", kind="net_connect", **kernel) == 0
    assert value(got, "sysmon_events_dropped_total", hop="publisher", socket="local", **C) == 11
    assert value(got, "sysmon_events_dropped_total", hop="publisher", socket="tcp", **C) == 4
    assert value(got, "sysmon_collector_publish_dropped_messages_total", socket="tcp", **C) == 1
    assert value(got, "sysmon_collector_published_records_total", **C) == 150
    assert value(got, "sysmon_collector_published_batches_total", **C) == 9
    assert value(got, "sysmon_collector_publisher_counter_total", counter="peers_accepted", **C) == 3
    assert value(got, "sysmon_collector_image_hashes_total", result="failed_gone", **C) == 1
    assert value(got, "sysmon_collector_ring_records_total", **C) == 160
    assert value(got, "sysmon_collector_resend_buffer_bytes", **C) == 4096
    assert value(got, "sysmon_collector_subscriptions", **C) == 6
    assert value(got, "sysmon_collector_resident_memory_bytes", **C) == 41 << 20
    assert value(got, "sysmon_collector_heartbeat_age_seconds", **C) == 3.25
    assert value(got, "sysmon_collector_silent", **C) == 0
    assert value(got, "sysmon_collector_uptime_seconds", **C) == 12.5
    assert value(got, "sysmon_collector_info", version="0.1.0", **C) == 1
    # filterd's own hops
    assert value(got, "sysmon_events_dropped_total", hop="transit") == 5
    assert value(got, "sysmon_gap_batches_total") == 1
    assert value(got, "sysmon_events_dropped_total", hop="sink", sink="syslog") == 2
    assert value(got, "sysmon_events_sent_total", sink="syslog") == 40
    assert value(got, "sysmon_frames_malformed_total", reason="truncated batch") == 1
    assert value(got, "sysmon_frames_malformed_total", reason="MalformedFrame") == 1
    assert value(got, "sysmon_frames_malformed_total", reason="unknown_topic") == 1
    assert value(got, "sysmon_events_filtered_total", event_id="1", result="included") == 3 + 1 + 1
    assert value(got, "sysmon_events_filtered_total", event_id="1", result="excluded") == 2
    assert value(got, "sysmon_rule_hits_total", rule=RULE) == 5
    assert value(got, "sysmon_events_written_total") == p.stats["written"]
    assert value(got, "sysmon_filterd_batches_total") == 3
    assert value(got, "sysmon_origins") == 1
    assert value(got, "process_resident_memory_bytes") > 1 << 20
    assert value(got, "process_open_fds") > 2
    # every name follows the conventions: counters end in _total, gauges do not
    for fam in text_string_to_metric_families(text):
        kind, _ = metrics.METRICS[fam.name + ("_total" if fam.type == "counter" else "")]
        assert kind == fam.type


def test_content_and_unknown_hops(fed: tuple[Pipeline, Clock]) -> None:
    p, _ = fed
    p.stats["bad_record_DNS_PACKET"] += 2
    p.stats["UnknownKind"] += 3
    p.stats["unparsed_DNS_PACKET"] += 4
    got = samples(exposition(p, []).decode())
    assert value(got, "sysmon_events_dropped_total", hop="content", kind="dns_packet") == 2
    assert value(got, "sysmon_events_dropped_total", hop="unknown") == 3
    assert value(got, "sysmon_records_unparsed_total", kind="dns_packet") == 4


def test_a_silent_collector_and_its_heartbeat_age(fed: tuple[Pipeline, Clock]) -> None:
    p, clock = fed
    clock.now += 60
    p.tick()  # the watch notices the silence
    got = samples(exposition(p, []).decode())
    assert value(got, "sysmon_collector_silent", **C) == 1
    assert value(got, "sysmon_collector_heartbeat_age_seconds", **C) == 63.25
    assert value(got, "sysmon_health_reports_total") == 1


def to_prometheus_client(f: Families) -> list[Any]:
    """The same samples as prometheus_client families (what generate_latest would have served)."""
    out = []
    for name, by_labels in f.samples.items():
        kind, text = metrics.METRICS[name]
        label_sets = {tuple(k for k, _ in labels) for labels in by_labels}
        for names in sorted(label_sets):  # its families take one label set each
            fam = (
                CounterMetricFamily(name, text, labels=list(names))
                if kind == "counter"
                else GaugeMetricFamily(name, text, labels=list(names))
            )
            for labels, v in by_labels.items():
                if tuple(k for k, _ in labels) == names:
                    fam.add_metric([lv for _, lv in labels], v)
            out.append(fam)
    return out


def test_same_samples_as_prometheus_client_generate_latest(fed: tuple[Pipeline, Clock]) -> None:
    p, _ = fed
    f = Families()
    metrics.collect_collectors(f, p, p.clock())
    metrics.collect_filterd(f, p, [SyslogSink(40, 2)])
    fams = to_prometheus_client(f)

    class Collector:
        def collect(self) -> list[Any]:
            return fams

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    theirs = samples(generate_latest(registry).decode())
    ours = samples(f.render().decode())
    assert ours == {k: v for k, v in theirs.items() if not k[0].endswith("_created")}
    helps = {fam.name: fam.documentation for fam in text_string_to_metric_families(f.render().decode())}
    assert helps == {fam.name: fam.documentation for fam in text_string_to_metric_families(
        generate_latest(registry).decode())}  # fmt: skip


label_text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostname=label_text, origin=label_text.filter(bool), rule=label_text, version=label_text)
def test_any_text_from_the_wire_or_the_config_is_escaped(
    hostname: str, origin: str, rule: str, version: str, tmp_path: Path
) -> None:
    with RecordIdCounter(tmp_path / "eventId") as ids:
        p = Pipeline(load_config_bytes(CONFIG, "c.xml"), [], ids)
        p.on_host(origin, {**HOST, "hostname": hostname, "collector_version": version})
        p.rule_hits[rule] += 7
        got = samples(exposition(p, []).decode())
    h = p.hosts[origin].hostname
    assert value(
        got, "sysmon_collector_info", origin=origin, host=h, version=p.hosts[origin].collector_version
    )
    assert value(got, "sysmon_rule_hits_total", rule=rule) == 7


wire = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-2, 20) | st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counters=st.dictionaries(st.sampled_from(sorted(COUNTERS)) | st.text(max_size=6), wire, max_size=12))
def test_hostile_counters_never_break_the_page(counters: dict, tmp_path: Path) -> None:
    with RecordIdCounter(tmp_path / "eventId") as ids:
        p = Pipeline(load_config_bytes(CONFIG, "c.xml"), [], ids)
        p.on_host(ORIGIN, {**HOST, "counters": counters})
        got = samples(exposition(p, []).decode())  # parses, no duplicate series
    for (name, _), v in got.items():
        if name.endswith("_total"):
            assert 0 <= v < 2**64 and not math.isnan(v)


def test_wire_values_are_taken_only_when_sane() -> None:
    assert metrics.wire_count(True) is None and metrics.wire_count(-1) is None
    assert metrics.wire_count(1 << 64) is None and metrics.wire_count(3.0) is None
    assert metrics.wire_count((1 << 64) - 1) == (1 << 64) - 1
    assert metrics.wire_gauge(float("nan")) is None and metrics.wire_gauge(2.5) == 2.5
    m = {f"k{i}": i for i in range(10_000)} | {"Bad Key": 1, 'x"}': 2}
    assert len(metrics.wire_counts(m)) == metrics.MAX_WIRE_KEYS
    assert metrics.wire_counts({"Bad Key": 1, "ok": 2, "neg": -1}) == {"ok": 2}
    assert metrics.kind_counts({"1": 2, 1: 3, "x": 1, 99: 1, "0001": 4, "002": 5}) == {1: 3, 2: 5}


def test_values_are_exact() -> None:
    f = Families()
    f.add("sysmon_gap_batches_total", (1 << 64) - 1)
    f.add("sysmon_parked_bytes", float("inf"))
    assert b"sysmon_gap_batches_total 18446744073709551615\n" in f.render()
    assert b"sysmon_parked_bytes +Inf\n" in f.render()


# -- the server ---------------------------------------------------------------------------------------
class Server:
    """A MetricsServer on a unix socket, polled by the test itself, with an injected clock."""

    def __init__(self, path: str, render: Callable[[], bytes] | None = None) -> None:
        self.clock = Clock()
        self.renders = 0
        self.body = b"# TYPE x gauge\nx 1\n"

        def default() -> bytes:
            self.renders += 1
            return self.body

        sock = metrics.bind_unix(path, os.getgid())
        self.s = MetricsServer([sock], render or default, clock=self.clock, unix_path=path)
        self.path = path

    def connect(self) -> socket.socket:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(self.path)
        return c

    def pump_until(self, cond: Callable[[], bool], rounds: int = 2000) -> None:
        for _ in range(rounds):
            self.s.poll()
            if cond():
                return
            select.select([], [], [], 0.001)
        raise AssertionError("condition not reached")

    def answer(self, c: socket.socket) -> bytes:
        """Everything the server sends until it closes (the server is pumped meanwhile)."""
        out = bytearray()
        c.setblocking(False)
        done = False

        def read() -> bool:
            nonlocal done
            try:
                while data := c.recv(65536):
                    out.extend(data)
                done = True
            except BlockingIOError:
                pass
            return done

        self.pump_until(read)
        return bytes(out)

    def get(self, request: bytes = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
        with self.connect() as c:
            c.sendall(request)
            return self.answer(c)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    s = Server(str(tmp_path / "metrics.sock"))
    yield s
    s.s.close()


def test_get_head_and_errors(srv: Server) -> None:
    ok = srv.get()
    assert ok.startswith(b"HTTP/1.0 200 OK\r\n") and ok.endswith(b"\r\n\r\n" + srv.body)
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in ok
    assert f"Content-Length: {len(srv.body)}\r\n".encode() in ok
    head = srv.get(b"HEAD /metrics?x=1 HTTP/1.0\n\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert srv.get(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 404 ")
    assert srv.get(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").startswith(b"HTTP/1.0 405 ")
    assert srv.get(b"\x00\xff garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert srv.get(b"GET /metrics\r\n\r\n").startswith(b"HTTP/1.0 400 ")  # HTTP/0.9: no
    assert srv.s.requests == {"200": 2, "404": 1, "405": 1, "400": 2}
    srv.pump_until(lambda: not srv.s.clients)  # each hung up after its answer
    assert srv.s.dropped == {}


def test_rendered_at_most_once_per_interval(srv: Server) -> None:
    for _ in range(5):
        srv.get()
    assert srv.renders == 1
    srv.clock.now += metrics.RENDER_EVERY_S
    srv.get()
    assert srv.renders == 2


def test_http_client_over_the_unix_socket(srv: Server, tmp_path: Path) -> None:
    """What `curl --unix-socket` does, with the standard library's client."""
    import threading

    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            srv.s.poll()
            select.select([], [], [], 0.002)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = srv.connect()
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == srv.body
        assert r.getheader("Content-Type") == metrics.CONTENT_TYPE
    finally:
        stop.set()
        t.join()


def test_slowloris_is_cut_off_at_the_deadline_and_others_are_served(srv: Server) -> None:
    slow = srv.connect()
    slow.sendall(b"GET /metr")
    srv.pump_until(lambda: len(srv.s.clients) == 1)
    for _ in range(20):
        srv.clock.now += metrics.DEADLINE_S / 25  # it trickles: the deadline does not move
        slow.sendall(b"i")
        assert srv.get().startswith(b"HTTP/1.0 200 ")
    srv.clock.now += metrics.DEADLINE_S
    srv.pump_until(lambda: not srv.s.clients)
    assert slow.recv(100) == b""  # closed on it, no answer
    assert srv.s.dropped == {"timeout": 1}
    slow.close()


def test_a_huge_request_is_refused_and_never_buffered(srv: Server) -> None:
    c = srv.connect()
    c.setblocking(False)
    sent = 0
    chunk = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 65536
    biggest = 0

    def fed() -> bool:
        nonlocal sent, biggest
        biggest = max([biggest, *(len(x.rbuf) for x in srv.s.clients.values())])
        try:
            sent += c.send(chunk)
        except BlockingIOError:
            pass
        except OSError:
            return True  # reset: the server closed on it
        return sent > 4 * metrics.MAX_REQUEST and not srv.s.clients

    srv.pump_until(fed)
    assert biggest <= metrics.MAX_REQUEST + 1
    assert srv.s.requests == {"431": 1}
    c.close()


def test_a_connection_flood_is_bounded(srv: Server) -> None:
    idle = []
    for _ in range(metrics.MAX_CLIENTS + 20):
        idle.append(srv.connect())
        srv.s.poll()
    assert len(srv.s.clients) == metrics.MAX_CLIENTS
    refused = 0
    for c in idle:
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            refused += c.recv(1) == b""
    assert refused == 20
    srv.clock.now += metrics.DEADLINE_S + 0.1
    srv.s.poll()
    assert not srv.s.clients and srv.s.dropped["timeout"] == metrics.MAX_CLIENTS
    assert srv.get().startswith(b"HTTP/1.0 200 ")  # served again once the idle ones are gone
    for c in idle:
        c.close()


def test_a_client_that_never_reads_is_dropped(srv: Server) -> None:
    srv.body = b"x 1\n" * (4 << 20)  # 16 MB: more than the socket buffers hold
    c = srv.connect()
    c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    srv.pump_until(lambda: any(x.wbuf for x in srv.s.clients.values()))
    srv.clock.now += metrics.DEADLINE_S + 0.1
    srv.s.poll()
    assert not srv.s.clients and srv.s.dropped == {"timeout": 1}
    c.close()


def test_the_unix_socket_is_0660_and_only_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    a = metrics.bind_unix(str(path), os.getgid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    a.close()
    b = metrics.bind_unix(str(path), os.getgid())  # the stale one is replaced
    b.close()
    regular = tmp_path / "file"
    regular.write_text("keep")
    with pytest.raises(FileExistsError):
        metrics.bind_unix(str(regular), os.getgid())
    assert regular.read_text() == "keep"


def test_tcp_listener(tmp_path: Path) -> None:
    srv = MetricsServer.open(None, "127.0.0.1:0", os.getgid(), lambda: b"x 1\n")
    assert srv is not None
    (desc,) = srv.describe()
    port = int(desc.rsplit(":", 1)[1])
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    out = bytearray()
    c.setblocking(False)
    for _ in range(5000):
        srv.poll()
        try:
            data = c.recv(65536)
        except BlockingIOError:
            select.select([c], [], [], 0.001)
            continue
        if not data:
            break
        out += data
    assert out.startswith(b"HTTP/1.0 200 OK") and out.endswith(b"\r\n\r\nx 1\n")
    c.close()
    srv.close()


@pytest.mark.parametrize(
    ("spec", "family"),
    [("127.0.0.1:9701", socket.AF_INET), ("[::1]:9701", socket.AF_INET6), ("0.0.0.0:1", socket.AF_INET)],
)
def test_parse_listen(spec: str, family: socket.AddressFamily) -> None:
    assert metrics.parse_listen(spec)[0] == family


@pytest.mark.parametrize("spec", ["localhost:9701", "127.0.0.1", "127.0.0.1:0x10", ":9701", "1.2.3.4:70000"])
def test_parse_listen_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        metrics.parse_listen(spec)


def test_no_listener_no_server() -> None:
    assert MetricsServer.open("", None, os.getgid(), lambda: b"") is None


def test_metrics_options() -> None:
    assert metrics_socket(parse_args(["--control-socket", "/x/ctl"])) == "/x/metrics.sock"
    assert metrics_socket(parse_args(["--control-socket", ""])) == "/run/sysmon-filterd/metrics.sock"
    assert metrics_socket(parse_args(["--metrics-socket", ""])) == ""
    with pytest.raises(SystemExit):
        parse_args(["--metrics-listen", "localhost:9701"])


def test_every_metric_is_in_the_operations_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [name for name in metrics.METRICS if f"`{name}" not in doc]
    assert not missing
