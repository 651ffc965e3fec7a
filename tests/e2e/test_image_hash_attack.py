"""End to end: an unprivileged user cannot stall the collector through the image it hashes.

The attack: `nobody` copies a program to /dev/shm, runs it, and the program unlinks itself and
puts a FIFO at its own path before exiting. A collector that opens the exec'd path for reading
once the process is gone waits forever for a FIFO writer, and nothing is logged any more.
The collector is stopped (SIGSTOP) while the attack runs, so when it reads the exec record
the process is surely gone and the FIFO surely there: the worst case, every time.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import Monitor, running

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

CONFIG = """<Sysmon schemaversion="4.90"><HashAlgorithms>sha256</HashAlgorithms><EventFiltering>
<ProcessCreate onmatch="exclude"/>
</EventFiltering></Sysmon>"""
NOBODY = 65534
PYTHON = os.path.realpath(sys.executable)
TRUE = "/usr/bin/true"


@pytest.fixture(scope="module")
def mon() -> Iterator[Monitor]:
    with running(CONFIG) as m:
        yield m


def creates_with(lines: list[str], needle: str) -> list[str]:
    return [ln for ln in lines if "<EventID>1</EventID>" in ln and needle in ln]


def run_marker(marker: str) -> None:
    subprocess.run([marker], executable=TRUE, check=True)


def hash_failures(mon: Monitor) -> int:
    return sum(h.get("hash_failures", 0) for h in mon.stats().get("hosts", {}).values())


def test_fifo_swapped_in_for_an_exec_d_image_stalls_nothing(mon: Monitor) -> None:
    assert mon.collector is not None
    # Hashing is on: some exec of `true` gets its Hashes (the first may be hashed late).
    deadline = time.monotonic() + 30
    while True:
        warm = f"warm-{uuid.uuid4().hex}"
        run_marker(warm)
        lines = mon.wait_events(lambda ls, w=warm: bool(creates_with(ls, w)))
        if '<Data Name="Hashes">SHA256=' in creates_with(lines, warm)[0]:
            break
        assert time.monotonic() < deadline, "no ProcessCreate with Hashes"

    path = Path(f"/dev/shm/sysmon-attack-{uuid.uuid4().hex[:8]}")
    shutil.copy(PYTHON, path)
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o755)
    failures_before = hash_failures(mon)
    mon.collector.send_signal(signal.SIGSTOP)
    try:
        attack = subprocess.run(
            [
                str(path),
                "-S",
                "-c",
                "import os, sys; os.unlink(sys.argv[1]); os.mkfifo(sys.argv[1])",
                str(path),
            ],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            env={"PYTHONHOME": "/usr"},  # the copy finds the standard library there
            cwd="/",
            capture_output=True,
            timeout=60,
        )
        assert attack.returncode == 0, attack.stderr
        assert stat.S_ISFIFO(os.lstat(path).st_mode)
    finally:
        mon.collector.send_signal(signal.SIGCONT)
    try:
        markers = [f"after-fifo-{i}-{uuid.uuid4().hex}" for i in range(5)]
        for m in markers:
            run_marker(m)
        lines = mon.wait_events(lambda ls: all(creates_with(ls, m) for m in markers), timeout=30)
        [attack_ev] = creates_with(lines, f'<Data Name="Image">{path}</Data>')
        assert '<Data Name="User">nobody</Data>' in attack_ev
        assert '<Data Name="Hashes">SHA256=' not in attack_ev  # no hash of whatever the FIFO is
        assert mon.collector.poll() is None
        deadline = time.monotonic() + 30
        while hash_failures(mon) <= failures_before:  # counted (host context, every 2 s)
            assert time.monotonic() < deadline, "hash failure not counted"
            time.sleep(0.2)
    finally:
        path.unlink(missing_ok=True)
