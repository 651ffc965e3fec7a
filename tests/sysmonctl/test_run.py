"""`sysmonctl run` (README's `bash scripts/setup.sh run`): the supervisor in the foreground, with
real BPF, both daemons and a real rsyslog: every event on the terminal and in syslog, Ctrl-C
stops filterd (event 4 Stopped) and then the collector, exit code 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import remove_pins
from tests.harness.rsyslog import Rsyslog
from tests.sysmon_cli.helpers import ROOT, Sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

TAG = f"sysmonctl-run-{uuid.uuid4().hex[:8]}"
CONFIG = f"""<Sysmon schemaversion="4.90"><EventFiltering>
<ProcessCreate onmatch="include"><CommandLine condition="contains">{TAG}</CommandLine></ProcessCreate>
<ProcessTerminate onmatch="include"><Image condition="is">/nothing/at/all</Image></ProcessTerminate>
</EventFiltering></Sysmon>"""


def wait(
    cond: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, (
            f"sysmonctl run exited ({proc.returncode}) waiting for {what}:\n{log.read_text()}"
        )
        assert time.monotonic() < deadline, f"no {what} after {timeout}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.fixture
def box() -> Iterator[tuple[Sandbox, Rsyslog]]:
    b = Sandbox()
    r = Rsyslog(b.dir / "rsyslog")
    try:
        r.start()
        for d in (b.dir / "rsyslog", Path(r.socket_path).parent):
            os.chmod(d, 0o755)  # filterd runs as the sysmon user
        b.syslog_socket = r.socket_path
        yield b, r
    finally:
        r.stop()
        remove_pins(b.env["SYSMON_PIN_DIR"])
        b.cleanup()


def test_run_prints_and_logs_every_event_and_stops_cleanly(box: tuple[Sandbox, Rsyslog]) -> None:
    b, rsyslog = box
    cfg = b.dir / "config.xml"
    cfg.write_text(CONFIG)
    out, err = b.dir / "stdout", b.dir / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sysmonctl", "run", "--config", str(cfg)],
            cwd=ROOT, env=b.env, stdout=o, stderr=e,
        )  # fmt: skip
    try:
        status = b.run_dir / "supervisor.json"
        wait(lambda: status.exists() and json.loads(status.read_text())["state"] == "running",
             "running supervisor", proc, err, 300)  # fmt: skip
        seen: list[str] = []
        for n in range(20):  # the kernel side switches ProcessCreate on as filterd subscribes
            mark = f"{TAG}-{n}"
            subprocess.run([mark], executable="/usr/bin/true", check=True)
            try:
                wait(lambda m=mark: m in out.read_text(errors="replace"), mark, proc, err, 3)
            except AssertionError:
                continue
            seen.append(mark)
            break
        assert seen, err.read_text()
        printed = [x for x in out.read_text().splitlines() if seen[0] in x]
        assert len(printed) == 1 and "<EventID>1</EventID>" in printed[0]
        logged = rsyslog.wait_for(lambda ls: any(seen[0] in x for x in ls), timeout=30)
        assert [x for x in logged if seen[0] in x] == printed  # the same XML in both places
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, err.read_text()
        stopped = [
            x for x in out.read_text().splitlines() if "<EventID>4</EventID>" in x and ">Stopped<" in x
        ]
        assert len(stopped) == 1
        rsyslog.wait_for(lambda ls: stopped[0] in ls, timeout=30)
        assert not (b.run_dir / "collector.pid").exists() and not (b.run_dir / "filterd.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_refuses_a_missing_config() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "sysmonctl", "run", "--config", "/nonexistent/config.xml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 1 and "no such file" in p.stderr
