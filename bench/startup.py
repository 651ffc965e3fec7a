"""Start-up: from `sysmon -i` to the first event logged, cold (no pins: the loader compiles the
BPF programs) and warm (the pins of this build exist: nothing is compiled), and the time a
`kill -9`ed collector takes to publish again with the pins in place.

Each round is a private installation (tests/sysmon_cli/helpers.py Sandbox: its own paths and
pins) writing to a private rsyslog. "First event" = the first ProcessCreate of a marker process
that is started every 20 ms from the moment `sysmon -i` is launched.

    .venv/bin/python bench/startup.py [--rounds 3] [--out bench/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import print_table  # noqa: E402
from collector.pins import remove_tree  # noqa: E402
from tests.harness.rsyslog import Rsyslog  # noqa: E402
from tests.sysmon_cli.helpers import Sandbox  # noqa: E402

CONFIG = ROOT / "filterd" / "default-config.xml"


def first_logged(rsyslog: Rsyslog, tag: str, t0: float, proc: subprocess.Popen[bytes], limit: float) -> float:
    """Seconds from t0 until a marker `tag-N` ProcessCreate is in the log (markers every 20 ms)."""
    i = 0
    while time.monotonic() - t0 < limit:
        subprocess.run(["/bin/true", f"{tag}-{i}"], check=False)
        i += 1
        if any(tag in x and "<EventID>1<" in x for x in rsyslog.lines("msg")):
            return time.monotonic() - t0
        time.sleep(0.02)
    raise TimeoutError(f"nothing logged within {limit:.0f} s; sysmon -i: {proc.poll()}")


def pid_of(box: Sandbox, name: str) -> int | None:
    try:
        return int((box.run_dir / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None


def one_round(warm: bool) -> dict[str, Any]:
    box = Sandbox()
    rsyslog = Rsyslog(box.dir / "rsyslog")
    box.syslog_socket = rsyslog.socket_path
    pins = Path(box.env["SYSMON_PIN_DIR"])
    out: dict[str, Any] = {"warm": warm}
    try:
        rsyslog.start()
        for p in (rsyslog.dir, Path(rsyslog.socket_path).parent):
            os.chmod(p, 0o755)
        if warm:  # make the pins once, then start from them
            assert box.sysmon("-accepteula", "-i", str(CONFIG)).code == 0
            assert box.sysmon("-u").code == 0  # -u removes the pins: put them back without a monitor
            subprocess.run(
                [sys.executable, "-m", "collector.loader", "--pin-dir", str(pins)],
                cwd=ROOT,
                env=box.env,
                check=True,
            )
        tag = f"startup-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sysmon_cli", "-accepteula", "-i", str(CONFIG)],
            cwd=ROOT,
            env=box.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out["first_event_s"] = first_logged(rsyslog, tag, t0, proc, 600)
        proc.wait(600)
        out["install_returned_s"] = time.monotonic() - t0
        old = pid_of(box, "collector")
        if old is not None:  # kill -9 the collector: how long until events flow again
            os.kill(old, signal.SIGKILL)
            t1 = time.monotonic()
            while pid_of(box, "collector") in (None, old) and time.monotonic() - t1 < 60:
                time.sleep(0.01)
            out["collector_respawn_s"] = time.monotonic() - t1
            out["collector_restart_to_event_s"] = first_logged(rsyslog, tag + "-again", t1, proc, 120)
        box.sysmon("-u", "force")
    finally:
        rsyslog.stop()
        remove_tree(pins)
        box.cleanup()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/startup.py needs root (it installs the monitor)", file=sys.stderr)
        return 1
    results = {"cold": [one_round(False) for _ in range(args.rounds)]}
    results["warm"] = [one_round(True) for _ in range(args.rounds)]
    rows = []
    for kind, rs in results.items():

        def med(key: str, rs: list[dict[str, Any]] = rs) -> str:
            vals = [r[key] for r in rs if key in r]
            return f"{statistics.median(vals):.2f}" if vals else "-"

        rows.append(
            (kind, med("first_event_s"), med("install_returned_s"), med("collector_restart_to_event_s"))
        )
    header = ("pins", "sysmon -i -> first event (s)", "sysmon -i returns (s)", "kill -9 collector -> events")
    print_table(rows, header)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
