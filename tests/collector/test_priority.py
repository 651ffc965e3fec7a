"""collector/main.py raise_priority: the ring reader runs ahead of what it watches, or says why not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = (
    "import os\n"
    "from collector.main import raise_priority\n"
    "if {drop} and os.geteuid() == 0:\n"
    "    os.setuid(65534)\n"  # imported as root (the checkout may be 0700), refused as nobody
    "raise_priority({nice})\n"
    "print(os.getpriority(0, 0))\n"
)


def run(nice: int, drop: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CODE.format(nice=nice, drop=drop)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a priority needs root")
def test_root_raises_it() -> None:
    assert run(-7).stdout.strip() == "-7"
    assert run(0).stdout.strip() == "0"  # --nice 0: left as started (systemd's Nice=)


def test_refused_is_said_and_survived() -> None:
    p = run(-7, drop=True)
    assert p.stdout.strip() == "0"
    assert "priority -7 not set" in p.stderr
