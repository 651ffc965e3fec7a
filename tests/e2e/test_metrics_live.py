"""filterd's Prometheus metrics from the real daemons: scraped over the unix socket (and TCP, under
the self-sandbox) while the collector runs; the kernel's emitted counters rise with a workload;
hostile clients (a connection flood, a slowloris, a huge request) neither stall nor grow filterd."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from filterd import metrics
from tests.harness.daemons import Monitor

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    m = Monitor(extra_filterd=("--metrics-listen", f"127.0.0.1:{free_port()}"))
    try:
        yield m.start()
    finally:
        m.stop()
        m.cleanup()


def tcp_port(m: Monitor) -> int:
    return int(m.extra_filterd[1].rsplit(":", 1)[1])


def scrape(m: Monitor, tcp: bool = False) -> str:
    """GET /metrics as `curl --unix-socket` (or over TCP) would."""
    conn = http.client.HTTPConnection("localhost", timeout=10)
    if tcp:
        conn = http.client.HTTPConnection("127.0.0.1", tcp_port(m), timeout=10)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(m.dir / "metrics.sock"))
        conn.sock = s
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    assert r.status == 200, body
    assert r.getheader("Content-Type") == metrics.CONTENT_TYPE
    return body


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (origins summed)."""
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def control(m: Monitor, cmd: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(m.control)
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        return json.loads(s.makefile("rb").readline())


def run_marked(n: int) -> str:
    marker = f"metrics-{uuid.uuid4().hex[:8]}"
    for _ in range(n):
        subprocess.run(["/bin/true", marker], check=True)
    return marker


def test_kernel_emitted_counters_rise_after_a_workload(mon: Monitor) -> None:
    first = scrape(mon)
    exec_kernel = {"hop": "kernel", "kind": "process_exec"}
    before = sample_sum(first, "sysmon_events_emitted_total", **exec_kernel)
    included = sample_sum(first, "sysmon_events_filtered_total", event_id="1", result="included")
    run_marked(25)
    wait_for(
        lambda: sample_sum(scrape(mon), "sysmon_events_emitted_total", **exec_kernel) >= before + 25,
        30,
        "25 more process_exec records emitted in the kernel",
    )
    text = scrape(mon)
    assert sample_sum(text, "sysmon_events_filtered_total", event_id="1", result="included") >= included + 25
    assert sample_sum(text, "sysmon_events_sent_total", sink="syslog") > 0
    assert sample_sum(text, "sysmon_events_dropped_total", **exec_kernel) == 0
    assert sample_sum(text, "sysmon_events_dropped_total", hop="transit") == 0
    assert sample_sum(text, "sysmon_collector_published_records_total") > 0
    assert sample_sum(text, "sysmon_collector_silent") == 0
    assert sample_sum(text, "sysmon_collector_info") == 1  # one collector, its version in a label
    assert sample_sum(text, "process_resident_memory_bytes") > 0
    # the same page over TCP, from the sandboxed daemon
    assert sample_sum(scrape(mon, tcp=True), "sysmon_events_emitted_total", **exec_kernel) >= before + 25


def test_the_tcp_listener_does_not_widen_the_sandbox(mon: Monitor) -> None:
    r = control(mon, "selftest")
    assert r["ok"] and "seccomp (unix only)" in r["sandbox"], r
    assert r["inet_tcp"] == "EAFNOSUPPORT" and r["inet6_tcp"] == "EAFNOSUPPORT"  # no new TCP socket
    status = control(mon, "status")["filterd"]
    assert status["metrics"] == [f"unix:{mon.dir / 'metrics.sock'}", f"tcp:127.0.0.1:{tcp_port(mon)}"]


def test_hostile_clients_neither_stall_nor_grow_filterd(mon: Monitor) -> None:
    pid = mon.filterd.pid if mon.filterd else 0
    rss_before = sample_sum(scrape(mon), "process_resident_memory_bytes")
    port = tcp_port(mon)
    huge = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a request head without end
    huge.connect(str(mon.dir / "metrics.sock"))
    huge.setblocking(False)
    with contextlib.suppress(OSError):
        for _ in range(64):
            huge.send(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 16384)
    r, _, _ = select.select([huge], [], [], 30)
    assert r and huge.recv(100).startswith(b"HTTP/1.0 431 ")
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET /metr")  # and nothing more: a slowloris
    scrape(mon)  # answered, so the slowloris (connected before) was accepted too
    flood = []
    for _ in range(200):  # idle connections, non-blocking connects: the backlog may be full
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        flood.append(s)
    try:
        # the pipeline goes on while they hang on
        marker = run_marked(10)
        mon.wait_events(lambda ls: sum(marker in ln and "<EventID>1<" in ln for ln in ls) >= 10, timeout=30)
        # the slowloris is cut off at the deadline (reset: it had sent bytes nobody read)
        r, _, _ = select.select([slow], [], [], 30)
        assert r, "the slowloris client was not cut off"
        with contextlib.suppress(ConnectionResetError):
            assert slow.recv(100) == b""
    finally:
        for s in [*flood, slow, huge]:
            s.close()

    def served() -> bool:  # once the flood's held connections time out
        try:
            return sample_sum(scrape(mon), "sysmon_metrics_requests_total", code="431") == 1
        except (OSError, http.client.HTTPException, AssertionError):
            return False

    wait_for(served, 30, "scrape after the hostile clients")
    text = scrape(mon)
    assert sample_sum(text, "sysmon_metrics_clients_dropped_total", reason="too_many_clients") > 0
    assert sample_sum(text, "sysmon_metrics_clients_dropped_total", reason="timeout") >= 1
    assert mon.filterd is not None and mon.filterd.poll() is None and mon.filterd.pid == pid
    # bounded: a few 8 KB request buffers and one cached page, not the flood's bytes
    assert sample_sum(text, "process_resident_memory_bytes") - rss_before < 4 << 20
