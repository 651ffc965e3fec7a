"""filterd.sink.syslog / stdout: the exact glibc syslog(3) record, delivered to a real rsyslogd."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from filterd.render.xml import SystemHeader, render_event
from filterd.schema import BY_ID
from filterd.sink.stdout import StdoutSink
from filterd.sink.syslog import SyslogSink, syslog_header
from tests.harness.fixtures import rsyslog  # noqa: F401  (fixture)
from tests.harness.rsyslog import Rsyslog

ROOT = Path(__file__).resolve().parents[3]
CAPTURED = ROOT / "tests" / "data" / "captured"  # tests/data/SOURCES.md
XML = render_event(BY_ID[5], ["-", "2026-11-22 09:49:04.011", "{3d1219c7-ba90-6b02-79bd-773d32560000}",
                              "9558", "/usr/bin/cp", "root"], SystemHeader("vm", 9322, 9322, 0), 453,
                   1795340944003627000)
HEADER_RE = re.compile(rb"^<14>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3]\d "
                       rb"\d\d:\d\d:\d\d sysmon: ")


@pytest.fixture
def sockdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sink-", dir="/tmp"))  # short: sun_path is 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _dgram_server(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    return s


def _expected(data_sec_range: tuple[float, float], msg: bytes) -> set[bytes]:
    lo, hi = int(data_sec_range[0]), int(data_sec_range[1])
    return {syslog_header(14, "sysmon", s).encode() + msg for s in range(lo, hi + 1)}


# -- header format ----------------------------------------------------------------------------------

def test_syslog_header_fixed_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert syslog_header(14, "sysmon", 1795340919) == "<14>Nov 22 09:48:39 sysmon: "
        assert syslog_header(14, "sysmon", 1793612919) == "<14>Nov  2 09:48:39 sysmon: "  # %e pads
        assert syslog_header(13, "x", 0) == "<13>Jan  1 00:00:00 x: "
        monkeypatch.setenv("TZ", "XST-5:30")  # local time, not UTC
        time.tzset()
        assert syslog_header(14, "sysmon", 1795340919) == "<14>Nov 22 15:18:39 sysmon: "
    finally:
        monkeypatch.undo()
        time.tzset()


def test_pri_from_facility_and_severity() -> None:
    assert SyslogSink("/nonexistent/x").pri == 14
    assert SyslogSink("/nonexistent/x", facility=16, severity=3).pri == 131  # local0.err


def test_datagram_format_on_plain_socket(sockdir: Path) -> None:
    srv = _dgram_server(sockdir / "log")
    sink = SyslogSink(str(sockdir / "log"))
    t0 = time.time()
    sink.send(XML)
    t1 = time.time()
    data = srv.recv(1 << 17)
    assert HEADER_RE.match(data)
    assert data in _expected((t0, t1), XML.encode())
    assert not data.endswith(b"\n") and b"\x00" not in data  # no newline, no NUL in dgram mode
    assert (sink.sent, sink.dropped, sink.sock_type) == (1, 0, socket.SOCK_DGRAM)
    sink.close()
    srv.close()


def test_big_event_is_one_datagram(sockdir: Path) -> None:
    srv = _dgram_server(sockdir / "log")
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sink = SyslogSink(str(sockdir / "log"))
    big = "<Event>" + "A" * 64000 + "</Event>"
    sink.send(big)
    assert srv.recv(1 << 17).endswith(big.encode())
    sink.close()
    srv.close()


def test_raw_bytes_pass_through(sockdir: Path) -> None:
    srv = _dgram_server(sockdir / "log")
    sink = SyslogSink(str(sockdir / "log"))
    sink.send("/tmp/" + b"\xff\xfe".decode("utf-8", "surrogateescape") + "é")
    assert srv.recv(4096).endswith(b"sysmon: /tmp/\xff\xfe\xc3\xa9")
    sink.send("lone \ud800 surrogate")  # not representable: replaced, never raised
    assert srv.recv(4096).endswith(b"sysmon: lone ? surrogate")
    sink.close()
    srv.close()


# -- stream fallback, reconnects, drops ---------------------------------------------------------------

def test_stream_only_socket_fallback(sockdir: Path) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sockdir / "log"))
    srv.listen(1)
    srv.settimeout(5)
    sink = SyslogSink(str(sockdir / "log"))  # connect(SOCK_DGRAM) -> EPROTOTYPE -> stream
    assert sink.sock_type == socket.SOCK_STREAM
    conn, _ = srv.accept()
    conn.settimeout(5)
    sink.send("one")
    sink.send(XML)
    buf = b""
    while buf.count(b"\x00") < 2:
        buf += conn.recv(65536)
    records = buf.split(b"\x00")[:-1]
    assert len(records) == 2
    assert HEADER_RE.match(records[0]) and records[0].endswith(b"sysmon: one")
    assert records[1].endswith(b"sysmon: " + XML.encode())
    assert (sink.sent, sink.dropped) == (2, 0)
    sink.close()
    conn.close()
    srv.close()


def test_missing_socket_counts_drops_then_recovers(sockdir: Path) -> None:
    path = sockdir / "log"
    sink = SyslogSink(str(path))
    sink.send("lost 1")
    sink.send("lost 2")
    assert (sink.sent, sink.dropped) == (0, 2)
    assert isinstance(sink.last_error, FileNotFoundError)
    srv = _dgram_server(path)
    sink.send("delivered")
    assert srv.recv(4096).endswith(b"sysmon: delivered")
    assert (sink.sent, sink.dropped) == (1, 2)
    sink.close()
    srv.close()


def test_receiver_restart_reconnects_without_loss(sockdir: Path) -> None:
    path = sockdir / "log"
    srv = _dgram_server(path)
    sink = SyslogSink(str(path))
    sink.send("before")
    assert srv.recv(4096).endswith(b"before")
    srv.close()
    path.unlink()
    sink.send("while down")  # ECONNREFUSED, reconnect -> ENOENT: dropped, no exception
    assert sink.dropped == 1
    srv = _dgram_server(path)  # like rsyslog recreating its socket on restart
    sink.send("after")
    assert srv.recv(4096).endswith(b"after")
    assert (sink.sent, sink.dropped) == (2, 1)
    assert sink.connects == 2
    sink.close()
    srv.close()


def test_stale_socket_file_is_a_drop_not_an_error(sockdir: Path) -> None:
    path = sockdir / "log"
    _dgram_server(path).close()  # file stays, nobody listens -> ECONNREFUSED
    sink = SyslogSink(str(path))
    sink.send("x")
    assert (sink.sent, sink.dropped) == (0, 1)
    assert isinstance(sink.last_error, ConnectionRefusedError)


def test_full_receiver_with_timeout_drops(sockdir: Path) -> None:
    srv = _dgram_server(sockdir / "log")  # never reads
    sink = SyslogSink(str(sockdir / "log"), timeout=0.01)
    for _ in range(3000):
        sink.send(XML)
        if sink.dropped:
            break
    assert sink.dropped >= 1 and sink.sent >= 1
    sink.close()
    srv.close()


def test_concurrent_senders(sockdir: Path) -> None:
    srv = _dgram_server(sockdir / "log")
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sink = SyslogSink(str(sockdir / "log"))
    got: list[bytes] = []

    def reader() -> None:
        while len(got) < 400:
            got.append(srv.recv(4096))

    r = threading.Thread(target=reader)
    r.start()
    ws = [threading.Thread(target=lambda i=i: [sink.send(f"m{i}-{j}") for j in range(100)]) for i in range(4)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    r.join(10)
    assert sorted(g.split(b": ", 1)[1] for g in got) == sorted(f"m{i}-{j}".encode()
                                                               for i in range(4) for j in range(100))
    assert sink.sent == 400
    sink.close()
    srv.close()


# -- byte-for-byte against glibc's own syslog(3) ------------------------------------------------------

_GLIBC_CHILD = textwrap.dedent("""
    import ctypes, json, socket, sys, time
    from filterd.sink.syslog import SyslogSink
    mode, msg = sys.argv[1], sys.argv[2].encode("utf-8", "surrogateescape")
    stype = socket.SOCK_DGRAM if mode == "dgram" else socket.SOCK_STREAM
    srv = socket.socket(socket.AF_UNIX, stype)
    srv.bind("/dev/log")
    if mode == "stream":
        srv.listen(2)
    srv.settimeout(5)

    def receive(conn):
        if mode == "dgram":
            return srv.recv(1 << 17)
        buf = b""
        while not buf.endswith(b"\\0"):
            buf += conn.recv(1 << 17)
        return buf

    libc = ctypes.CDLL("libc.so.6")
    out = {}
    t0 = time.time()
    libc.openlog(b"sysmon", 0x10, 8)          # LOG_NOWAIT, LOG_USER
    libc.syslog(8 | 6, b"%s", msg)            # LOG_USER | LOG_INFO
    conn = srv.accept()[0] if mode == "stream" else None
    out["glibc"] = receive(conn).hex()
    sink = SyslogSink("/dev/log")
    conn2 = srv.accept()[0] if mode == "stream" else None
    sink.send(sys.argv[2])
    out["ours"] = receive(conn2).hex()
    out["t0"], out["t1"] = t0, time.time()
    print(json.dumps(out))
""")


def _run_in_private_dev(mode: str, msg: str, tz: str) -> dict:
    """Run the child in a private mount namespace with a tmpfs /dev, so it can own /dev/log."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private /dev/log")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ=tz)
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
           'mount -t tmpfs none /dev && exec "$0" -c "$1" "$2" "$3"', sys.executable, _GLIBC_CHILD, mode, msg]
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    if p.returncode != 0 and b"mount" in p.stderr and b"ermission" in p.stderr:
        pytest.skip(f"cannot mount in a private namespace: {p.stderr!r}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


@pytest.mark.parametrize("mode", ["dgram", "stream"])
@pytest.mark.parametrize("tz", ["UTC", "XST-5:30"])
def test_identical_to_glibc_syslog(mode: str, tz: str) -> None:
    msg = XML + " é " + b"\xff".decode("utf-8", "surrogateescape")
    for _ in range(10):  # the two records must fall in the same second; retry across a boundary
        out = _run_in_private_dev(mode, msg, tz)
        glibc, ours = bytes.fromhex(out["glibc"]), bytes.fromhex(out["ours"])
        # clear of the boundary too: a coarse clock (a tick behind) may still say the last second
        if int(out["t0"]) == int(out["t1"]) and out["t0"] % 1 > 0.02:
            break
    assert ours == glibc
    assert glibc.endswith(b"\x00") == (mode == "stream")
    assert HEADER_RE.match(glibc)


# -- through a real rsyslogd (Debian's receiver) ---------------------------------------------------------

def test_rsyslog_receives_exact_xml(rsyslog: Rsyslog) -> None:  # noqa: F811
    sink = SyslogSink(rsyslog.socket_path)
    sink.send(XML)
    lines = rsyslog.wait_for_count(1)
    assert lines == [XML]
    raw = rsyslog.wait_for_count(1, which="raw")[0]
    host = socket.gethostname()
    prefix = re.compile(r"[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d " + re.escape(host) + " sysmon: ")
    assert prefix.fullmatch(raw[:-len(XML)])
    assert raw.endswith(XML)
    sink.close()


def test_rsyslog_replays_captured_events_exactly(rsyslog: Rsyslog) -> None:  # noqa: F811
    lines = [ln for p in sorted(CAPTURED.glob("*-syslog.log")) for ln in p.read_text().splitlines()
             if " sysmon: <Event>" in ln]
    xmls = [ln.split(" sysmon: ", 1)[1] for ln in lines]
    assert len(xmls) == 198, f"test data missing under {CAPTURED}"
    sink = SyslogSink(rsyslog.socket_path)
    for x in xmls:
        sink.send(x)
    assert rsyslog.wait_for_count(len(xmls)) == xmls
    raw = rsyslog.wait_for_count(len(xmls), which="raw")
    # Same shape as the real capture: "Mmm dd hh:mm:ss <host> sysmon: <Event>..."
    strip = re.compile(r"^[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \S+ ")
    assert [strip.sub("", r) for r in raw] == [strip.sub("", ln) for ln in lines]
    assert (sink.sent, sink.dropped) == (len(xmls), 0)
    sink.close()


# -- stdout sink ----------------------------------------------------------------------------------------

def test_stdout_sink_lines() -> None:
    buf = io.BytesIO()
    sink = StdoutSink(buf)
    sink.send(XML)
    sink.send("x" + b"\xff".decode("utf-8", "surrogateescape"))
    sink.close()
    assert buf.getvalue() == XML.encode() + b"\nx\xff\n"
    assert (sink.sent, sink.dropped) == (2, 0)


def test_stdout_sink_default_stream(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    sink = StdoutSink()
    sink.send("<Event/>")
    assert capfdbinary.readouterr().out == b"<Event/>\n"


def test_stdout_sink_broken_stream_counts() -> None:
    buf = io.BytesIO()
    sink = StdoutSink(buf)
    buf.close()
    sink.send("x")
    sink.close()
    assert (sink.sent, sink.dropped) == (0, 1)


def test_send_many_is_one_datagram_per_event(tmp_path: Path) -> None:
    """send_many() batches the system call, not the messages: each event is its own datagram."""
    import socket as _socket

    from filterd.sink.syslog import SyslogSink as _Sink

    path = str(tmp_path / "log")
    srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    sink = _Sink(path)
    events = [f"<Event>{i}</Event>" for i in range(300)]
    got: list[str] = []
    # read while sending: a datagram queue holds only net.unix.max_dgram_qlen (often 10) messages
    reader = threading.Thread(target=lambda: got.extend(srv.recv(4096).decode() for _ in events))
    reader.start()
    sink.send_many(events)
    reader.join(10)
    assert [g.split(": ", 1)[1] for g in got] == events
    assert all(g.startswith("<14>") for g in got)
    assert sink.sent == 300 and sink.dropped == 0
    sink.close()
    srv.close()


def _send_many_and_read(path: str, events: list[str]) -> tuple[SyslogSink, list[bytes]]:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(5)
    sink = SyslogSink(path)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(srv.recv(1 << 16) for _ in events))
    reader.start()
    sink.send_many(events)
    reader.join(20)
    srv.close()
    return sink, got


@pytest.mark.parametrize("fast", [True, False])
def test_send_many_mixed_text_and_more_than_one_call(
    sockdir: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Datagram boundaries hold for non-ASCII and raw (surrogate-escaped) bytes, and across the
    UIO_MAXIOV messages one sendmmsg() takes; the ctypes-per-message path says the same."""
    import filterd.sink.syslog as mod

    monkeypatch.setattr(mod, "_FAST", fast)
    n = mod.UIO_MAXIOV + 77
    events = [f"<Event>{i}{'é' * (i % 3)}{'x' * (i % 50)}</Event>" for i in range(n)]
    events[5] = "<Event>raw \udcff byte</Event>"
    sink, got = _send_many_and_read(str(sockdir / "log"), events)
    bodies = [g.split(b" sysmon: ", 1)[1] for g in got]
    assert bodies == [e.encode("utf-8", "surrogateescape") for e in events]
    assert all(HEADER_RE.match(g) for g in got)
    assert (sink.sent, sink.dropped) == (n, 0)
    sink.close()


def test_send_many_ascii_lengths_match_bytes(sockdir: Path) -> None:
    """The ASCII fast path takes each datagram's length from its text: check it on real XML."""
    events = [XML, XML.replace("9558", "1"), "<Event>&amp;\t</Event>"]
    sink, got = _send_many_and_read(str(sockdir / "log"), events)
    assert [g.split(b" sysmon: ", 1)[1].decode() for g in got] == events
    sink.close()
