"""filterd's CPU per event without the kernel, ZeroMQ or rsyslog: the pipeline fed with batches
shaped like bench/pipeline.py's workload, timed (process CPU) and optionally profiled.

Why: the whole-product bench runs on a shared 2-core machine and counts CPU in 10 ms ticks, so
small changes drown in its noise; this replays the same record mix in-process, many times.

Workloads (records as the kernel sends them, batches cut as the collector cuts them):
  exec: per fork+exec of /bin/true a PROCESS_EXEC and a PROCESS_EXIT, ~32 records a batch
        (the 10 ms drain at ~1000 execs/s), events 1 and 5;
  file: per create+close+unlink a FILE_CREATE and a FILE_DELETE, 512 records a batch, 11 and 23.
Sinks: `null` (rendering only), `syslog` (the real SyslogSink to a datagram socket that a child
process drains: sendmmsg included), `rsyslog` (the same to a private rsyslogd, as the e2e
tests and bench/pipeline.py run it), `json` (adds the JSON lines sink, to /dev/null).

    python bench/replay.py [--config bench/configs/log-everything.xml] [--workload file]
                           [--sink syslog] [--rounds 5] [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filterd.config.loader import default_config, load_config_bytes  # noqa: E402
from filterd.pipeline import Pipeline  # noqa: E402
from filterd.state.record_id import RecordIdCounter  # noqa: E402
from shared import records  # noqa: E402
from shared.decode import encode, split_path  # noqa: E402

ORIGIN = "3d1219c7aa0000000000000000000000/boot"
BOOT_EPOCH_NS = 1_700_000_000 * 10**9
HOST = {
    "hostname": "bench-host",
    "machine_id": "3d1219c7aa0000000000000000000000",
    "boot_epoch_ns": BOOT_EPOCH_NS,
    "users": {0: "root", 1000: "alice"},
    "logins": [],
    "collector_pid": 4242,
}
DRIVER_PID, DRIVER_START = 5000, 10**12
TRUE = "/tmp/sysmon-bench-abcdefgh/true"
FILEDIR = "/tmp/sysmon-bench-abcdefgh/files"


class NullSink:
    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0

    def send(self, xml: str) -> None:
        self.sent += 1

    def send_many(self, xmls: list[str]) -> None:
        self.sent += len(xmls)

    def close(self) -> None:
        pass


def _exec_records(i: int, t: int) -> list[bytes]:
    pid, start = 10000 + i, t
    ex = encode(
        records.PROCESS_EXEC,
        (split_path(TRUE), split_path(FILEDIR.rsplit("/", 1)[0]), b"true\0"),
        pid=pid, tid=pid, ppid=DRIVER_PID, uid=0, gid=0, auid=0xFFFFFFFF, sessionid=0xFFFFFFFF,
        start_ns=start, parent_start_ns=DRIVER_START, end_code=0x55AA00 + i, time_ns=t + 1000,
        flags=records.REC_F_NO_TTY, exe_ino=77, exe_ctime=1_700_000_000, exe_dev=0x803,
    )  # fmt: skip
    exit_ = encode(
        records.PROCESS_EXIT,
        pid=pid,
        tid=pid,
        uid=0,
        start_ns=start,
        end_code=0x55AA00 + i,
        time_ns=t + 300_000,
    )
    return [ex, exit_]


def _file_records(i: int, t: int) -> list[bytes]:
    name = f"f{i}".encode()
    create = encode(
        records.FILE_CREATE,
        (name + b"\0" + split_path(FILEDIR),),
        pid=DRIVER_PID, tid=DRIVER_PID, uid=0, fd=3, time_ns=t,
    )  # fmt: skip
    delete = encode(
        records.FILE_DELETE,
        (f"{FILEDIR}/f{i}".encode(), split_path("/work/main")),
        pid=DRIVER_PID, tid=DRIVER_PID, uid=0, dirfd=-100, time_ns=t + 2000,
    )  # fmt: skip
    return [create, delete]


def batches(workload: str, n: int, per: int = 0) -> list[tuple[bytes, int]]:
    """The workload's records, cut into the collector's batches (unnumbered setup first); `per`
    records a batch (default: as the collector cuts them at the workload's rate)."""
    setup = [
        encode(
            records.PROCESS_EXEC,
            (split_path("/work/sysmon-bench/driver"), split_path("/work/main"), b"driver\0e\0"),
            pid=DRIVER_PID,
            tid=DRIVER_PID,
            ppid=1,
            uid=0,
            start_ns=DRIVER_START,
            end_code=0x4000,
            time_ns=DRIVER_START,
            flags=records.REC_F_NO_TTY | records.REC_F_SNAPSHOT,
        ),  # fmt: skip
        encode(records.IMAGE_HASH, (bytes(32),), exe_ino=77, exe_ctime=1_700_000_000, exe_dev=0x803, algos=4),
    ]
    make, default = (_exec_records, 32) if workload == "exec" else (_file_records, 512)
    per = per or default
    recs: list[bytes] = []
    t = DRIVER_START + 10**9
    for i in range(n):
        recs += make(i, t)
        t += 50_000
    cut = [recs[i : i + per] for i in range(0, len(recs), per)]
    return [(b"".join(setup), 0)] + [(b"".join(c), len(c)) for c in cut]  # (blob, numbered records)


def drainer(path: str) -> subprocess.Popen[bytes]:
    """A child process that reads and discards datagrams on `path` (stands in for rsyslog); the
    socket is world-writable so that filterd, running as `sysmon`, can send to it."""
    code = (
        "import os,socket,sys\n"
        "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<22)\n"
        f"s.bind({path!r})\n"
        f"os.chmod({path!r},0o666)\n"
        "print('ok',flush=True)\n"
        "while True: s.recv(1<<16)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout is not None
    p.stdout.readline()
    return p


def make_sinks(kind: str, tmp: Path) -> tuple[list[Any], list[Any]]:
    """The sinks, and what to stop at the end (drainer processes, rsyslog)."""
    if kind == "null":
        return [NullSink()], []
    from filterd.sink.syslog import SyslogSink

    if kind == "rsyslog":
        from tests.harness.rsyslog import Rsyslog

        rs = Rsyslog().start()
        return [SyslogSink(rs.socket_path)], [rs]
    path = str(tmp / "log.sock")
    child = drainer(path)
    sinks: list[Any] = [SyslogSink(path)]
    if kind == "json":
        from filterd.sink.json_lines import JsonSink

        sinks.append(JsonSink("/dev/null"))
    return sinks, [child]


def run_round(
    config: Any,
    blobs: list[tuple[bytes, int]],
    sinks: list[Any],
    tmp: Path,
    profile: Any = None,
    pace: float = 0.0,
) -> float:
    """One fresh pipeline over all batches (`pace` seconds apart, as the collector's ticks send
    them: a process that sleeps between batches runs colder than a tight loop); returns
    process CPU seconds."""
    state = Path(tempfile.mkdtemp(prefix="state-", dir=tmp))  # fresh: a stored position would skip all
    p = Pipeline(config, sinks, RecordIdCounter(tmp / "eventId"), state_dir=state)
    p.on_host(ORIGIN, HOST)
    first = 0
    t0 = time.process_time()
    if profile is not None:
        profile.enable()
    for seq, (blob, numbered) in enumerate(blobs):
        p.on_batch(ORIGIN, seq, blob, 0, 1, first)
        first += numbered
        if pace:
            time.sleep(pace)
    if profile is not None:
        profile.disable()
    cpu = time.process_time() - t0
    p.streams.close()
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="Sysmon XML config (default: the built-in one)")
    ap.add_argument("--workload", choices=("exec", "file", "both"), default="both")
    ap.add_argument("--execs", type=int, default=2000)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--sink", choices=("null", "syslog", "rsyslog", "json"), default="syslog")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=0, help="records a batch (default: exec 32, file 512)")
    ap.add_argument("--pace-ms", type=float, default=0.0, help="sleep between batches (collector tick: 10)")
    ap.add_argument("--profile", help="write a cProfile of one more round here (and print its top)")
    args = ap.parse_args()
    config = (
        load_config_bytes(Path(args.config).read_bytes(), args.config) if args.config else default_config()
    )
    tmp = Path(tempfile.mkdtemp(prefix="sysmon-replay-"))
    sinks, children = make_sinks(args.sink, tmp)
    try:
        loads = []
        if args.workload in ("exec", "both"):
            loads.append(("exec", batches("exec", args.execs, args.batch), 2 * args.execs))
        if args.workload in ("file", "both"):
            loads.append(("file", batches("file", args.files, args.batch), 2 * args.files))
        for name, blobs, events in loads:
            cpu = [run_round(config, blobs, sinks, tmp, pace=args.pace_ms / 1000) for _ in range(args.rounds)]
            us = [1e6 * c / events for c in cpu]
            print(
                f"{name}: {events} events, {len(blobs)} batches, sink {args.sink}: "
                f"median {statistics.median(us):.2f} us/event (min {min(us):.2f}, max {max(us):.2f})"
            )
            if args.profile:
                prof = cProfile.Profile()
                run_round(config, blobs, sinks, tmp, prof, args.pace_ms / 1000)
                out = f"{args.profile}.{name}"
                prof.dump_stats(out)
                st = pstats.Stats(out)
                st.sort_stats("tottime").print_stats(25)
    finally:
        for s in sinks:
            s.close()
        for c in children:
            if isinstance(c, subprocess.Popen):
                c.kill()
                c.wait()
            else:
                c.stop()
                c.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
