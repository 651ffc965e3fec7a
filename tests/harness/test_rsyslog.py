"""Self-test of the private rsyslogd harness (tests/harness/rsyslog.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.harness.fixtures import rsyslog  # noqa: F401  (fixture)
from tests.harness.rsyslog import RSYSLOGD, Rsyslog, RsyslogError

pytestmark = pytest.mark.skipif(not os.access(RSYSLOGD, os.X_OK), reason=f"{RSYSLOGD} not installed")


def _send(path: str, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.send(payload)


def test_starts_private_instance_and_cleans_up() -> None:
    with Rsyslog() as r:
        assert r.running
        assert Path(r.socket_path).exists() and str(r.dir) in r.socket_path
        assert r.socket_path != "/dev/log"
        conf = r.config_path.read_text()
        assert conf.index("$MaxMessageSize 64k") < conf.index('module(load="imuxsock"')
        assert 'SysSock.Use="off"' in conf and "imklog" not in conf
        pid = r.proc.pid
    assert not r.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not r.dir.exists()


def test_message_and_raw_files(rsyslog: Rsyslog) -> None:  # noqa: F811
    _send(rsyslog.socket_path, b"<14>Nov 22 09:48:39 sysmon: <Event>a &amp; b</Event>")
    assert rsyslog.wait_for_count(1) == ["<Event>a &amp; b</Event>"]
    raw = rsyslog.wait_for_count(1, which="raw")
    assert len(raw) == 1
    assert raw[0].endswith(f" {socket.gethostname()} sysmon: <Event>a &amp; b</Event>")


def test_internal_messages_are_kept_apart(rsyslog: Rsyslog) -> None:  # noqa: F811
    rsyslog.wait_for(lambda ls: any("rsyslogd" in ln and "start" in ln for ln in ls), which="internal")
    _send(rsyslog.socket_path, b"<14>Nov 22 09:48:39 sysmon: only")
    assert rsyslog.wait_for_count(1) == ["only"]
    assert all("rsyslogd" not in ln for ln in rsyslog.lines("raw"))


def test_large_message_not_truncated(rsyslog: Rsyslog) -> None:  # noqa: F811
    body = "<Event>" + "x" * 60000 + "</Event>"
    _send(rsyslog.socket_path, b"<14>Nov 22 09:48:39 sysmon: " + body.encode())
    assert rsyslog.wait_for_count(1) == [body]


def test_control_characters_escaped_like_debian(rsyslog: Rsyslog) -> None:  # noqa: F811
    _send(rsyslog.socket_path, b"<14>Nov 22 09:48:39 sysmon: a\tb")
    assert rsyslog.wait_for_count(1) == ["a#011b"]


def test_control_characters_raw_when_asked() -> None:
    with Rsyslog(escape_control_chars=False) as r:
        _send(r.socket_path, b"<14>Nov 22 09:48:39 sysmon: a\tb")
        assert r.wait_for_count(1) == ["a\tb"]


def test_many_messages_no_rate_limit(rsyslog: Rsyslog) -> None:  # noqa: F811
    for i in range(1000):
        _send(rsyslog.socket_path, f"<14>Nov 22 09:48:39 sysmon: m{i}".encode())
    assert rsyslog.wait_for_count(1000, timeout=30) == [f"m{i}" for i in range(1000)]


def test_wait_for_times_out(rsyslog: Rsyslog) -> None:  # noqa: F811
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        rsyslog.wait_for(lambda ls: False, timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_wait_for_notices_death() -> None:
    with Rsyslog() as r:
        os.kill(r.proc.pid, signal.SIGKILL)
        r.proc.wait()
        with pytest.raises(RsyslogError):
            r.wait_for(lambda ls: False, timeout=5)


def test_own_base_dir_is_kept() -> None:
    base = Path(os.path.join("/tmp", f"rsl-keep-{os.getpid()}"))
    base.mkdir()
    try:
        with Rsyslog(base) as r:
            _send(r.socket_path, b"<14>Nov 22 09:48:39 sysmon: kept")
            r.wait_for_count(1)
        assert (base / "messages").read_text() == "kept\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_socket_path_too_long(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        Rsyslog(tmp_path / ("d" * 120))


def test_start_failure_is_reported(tmp_path: Path) -> None:
    r = Rsyslog(binary=str(tmp_path / "no-such-rsyslogd"))
    with pytest.raises(RsyslogError):
        r.start()
    r.cleanup()
