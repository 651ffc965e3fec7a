"""Per-event-type benchmark: sustained load of each kind with a log-everything config.

Phases (each in its own child process, so its events are counted by ProcessId):
  file   N x open(O_CREAT)+close+unlink      -> 2N events (11, 23)
  tcp    N x connect+accept on 127.0.0.1     -> 2N events (3)
  udp    N x one datagram on a new flow      -> 2N events (3: send and receive)
  dns    N x query to a loopback responder   -> N events (22) + 2N (3: UDP flows)
  exec   N x fork+exec /bin/true             -> 2N events (1, 5)
For each: events expected vs received, kernel drops and batch gaps, events/s while the load ran,
and CPU microseconds per event for the collector and for filterd.
Prints a table, writes bench/results/events.json. Run as root: python bench/events.py
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds, print_table  # noqa: E402
from tests.e2e.test_events import COLLECT_ALL  # noqa: E402
from tests.harness.daemons import Monitor  # noqa: E402

DNS_ADDR = "127.0.0.154"

WORKLOADS = {
    "file": "import os\nfor i in range({n}):\n    f = f'/run/bench-{{os.getpid()}}-{{i}}'\n"
    "    os.close(os.open(f, os.O_CREAT | os.O_WRONLY)); os.unlink(f)\n",
    "tcp": "import socket\nsrv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(128)\n"
    "for i in range({n}):\n    c = socket.socket(); c.connect(srv.getsockname())\n"
    "    a, _ = srv.accept(); a.close(); c.close()\n",
    "udp": "import socket\nr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))\n"
    "for i in range({n}):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "    s.bind(('127.0.0.1', 20000 + i))  # a new flow each time: the same 5-tuple is one flow\n"
    "    s.sendto(b'x', r.getsockname()); r.recvfrom(8); s.close()\n",
    "dns": "import socket, struct\nfor i in range({n}):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 40000 + i))\n"
    "    s.connect(('" + DNS_ADDR + "', 53))\n"
    "    name = b''.join(bytes([len(p)]) + p for p in (b'q%d' % i, b'bench', b'test')) + b'\\0'\n"
    "    s.send(struct.pack('>HHHHHH', i, 0x100, 1, 0, 0, 0) + name + b'\\0\\1\\0\\1')\n"
    "    s.recvfrom(512); s.close()\n",
}
EXPECTED = {"file": {11: 1, 23: 1}, "tcp": {3: 2}, "udp": {3: 2}, "dns": {22: 1, 3: 2}, "exec": {1: 1, 5: 1}}


def dns_responder(stop: threading.Event) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((DNS_ADDR, 53))
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            q, peer = s.recvfrom(512)
        except TimeoutError:
            continue
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
        s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + q[12:] + ans, peer)
    s.close()


def count_events(lines: list[str], pid: int) -> dict[int, int]:
    out: dict[int, int] = {}
    needle = f'"ProcessId">{pid}<'
    for line in lines:
        if needle in line:
            eid = int(line.split("<EventID>", 1)[1].split("<", 1)[0])
            out[eid] = out.get(eid, 0) + 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="operations per phase")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "events.json"))
    args = ap.parse_args()
    cfg_dir = Path(f"/run/sysmon-bench-{uuid.uuid4().hex[:8]}")
    cfg_dir.mkdir(mode=0o755)
    (cfg_dir / "all.xml").write_text(COLLECT_ALL)
    stop = threading.Event()
    responder = threading.Thread(target=dns_responder, args=(stop,), daemon=True)
    responder.start()
    mon = Monitor(config=str(cfg_dir / "all.xml"))
    mon.start()
    results = {}
    try:
        for phase in ("file", "tcp", "udp", "dns", "exec"):
            time.sleep(1.0)
            c0, f0 = cpu_seconds(mon.collector.pid), cpu_seconds(mon.filterd.pid)
            t0 = time.perf_counter()
            if phase == "exec":
                code = (
                    "import os\nfor i in range({n}):\n    pid = os.fork()\n    if pid == 0:\n"
                    "        os.execv('/bin/true', ['true'])\n    os.waitpid(pid, 0)\n"
                )
            else:
                code = WORKLOADS[phase]
            p = subprocess.Popen([sys.executable, "-c", code.format(n=args.n)])
            assert p.wait() == 0
            wall = time.perf_counter() - t0
            pids = [p.pid]
            expected = {eid: k * args.n for eid, k in EXPECTED[phase].items()}
            got: dict[int, int] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                lines = mon.events()
                if phase == "exec":  # the events are the children's, not the driver's
                    got = {
                        1: sum("<EventID>1<" in x and "/usr/bin/true<" in x for x in lines),
                        5: sum("<EventID>5<" in x and "/usr/bin/true<" in x for x in lines),
                    }
                else:
                    got = count_events(lines, pids[0])
                if all(got.get(e, 0) >= c for e, c in expected.items()):
                    break
                time.sleep(0.25)
            done = time.perf_counter() - t0
            c1, f1 = cpu_seconds(mon.collector.pid), cpu_seconds(mon.filterd.pid)
            n_events = sum(got.get(e, 0) for e in expected)
            results[phase] = {
                "expected": expected,
                "received": {e: got.get(e, 0) for e in expected},
                "events": n_events,
                "workload_s": wall,
                "drained_s": done,
                "events_per_s": n_events / done if done else 0.0,
                "collector_us_per_event": 1e6 * (c1 - c0) / max(n_events, 1),
                "filterd_us_per_event": 1e6 * (f1 - f0) / max(n_events, 1),
            }
        time.sleep(2.5)
        stats = mon.stats()
    finally:
        mon.stop()
        mon.cleanup()
        stop.set()
    hosts = list(stats.get("hosts", {}).values())
    drops = sum(sum(h.get("kernel_dropped", {}).values()) for h in hosts)
    gaps = stats.get("stats", {}).get("gap_batches", 0)
    rows = []
    for phase, r in results.items():
        exp = sum(r["expected"].values())
        rows.append(
            (
                phase,
                f"{exp}",
                f"{r['events']}",
                f"{r['events_per_s']:.0f}",
                f"{r['collector_us_per_event']:.1f}",
                f"{r['filterd_us_per_event']:.1f}",
            )
        )
    print_table(rows, ("phase", "expected", "received", "events/s", "collector us/ev", "filterd us/ev"))
    print(f"kernel drops {drops}, batch gaps {gaps}")
    out = {"n": args.n, "phases": results, "kernel_drops": drops, "gap_batches": gaps}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
