"""sysmon-collector: the only root process. Load programs, drain the ring, publish.

Lifecycle: resolve BTF offsets -> compile and load -> bind the socket -> loop { read
subscriptions; drain the ring every few ms; add image hashes; publish batches; heartbeat }.
It parses no config and no message except ZeroMQ subscriptions (collector/publisher.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import zmq

from shared import envelope, records
from shared.curve import CurveError
from shared.decode import encode

from . import __version__
from .errors import CollectorError
from .hashes import ImageHasher
from .hostinfo import HostContext
from .loader import Programs
from .procfs import snapshot_records
from .publisher import CurveServer, Publisher, curve_server
from .ringbuf import RingReader

DEFAULT_ENDPOINT = "ipc:///run/sysmon/collector.sock"
BATCH_MAX = 512


class Collector:
    def __init__(
        self,
        endpoints: list[str],
        group: str,
        interval_ms: int,
        heartbeat_s: float,
        btf_path: str | None = None,
        curve: CurveServer | None = None,
    ) -> None:
        self.programs = Programs(btf_path)
        self.ring = RingReader(self.programs.ring_fd, self.programs.ring_size)
        self.host = HostContext(__version__)
        self.pub = Publisher(endpoints, self.host.origin, group, curve=curve)
        self.hasher = ImageHasher()
        self.interval_ms = interval_ms
        self.heartbeat_s = heartbeat_s
        self.running = True
        self._pending_marks: list[int] = []
        self._snapshot_due = False
        self.programs.set_enabled(frozenset())

    # -- subscriptions ---------------------------------------------------------------------
    def apply_subscriptions(self) -> None:
        changes = self.pub.read_subscriptions()
        if not changes:
            return
        for subscribed, topic in changes:
            if subscribed and topic == envelope.TOPIC_RECORDS:
                self._snapshot_due = True
                self.hasher.forget_sent()
            elif subscribed and topic.startswith(envelope.MARK):
                try:
                    self._pending_marks.append(int(topic[len(envelope.MARK) :]))
                except ValueError:
                    self.pub.stats["bad_subscriptions"] += 1
        kinds = set()
        for k in self.pub.wanted(envelope.WANT_KIND):
            if k.isdigit() and int(k) < records.MAX_BPF_KIND:
                kinds.add(int(k))
        if frozenset(kinds) != self.programs.enabled_kinds:
            self.programs.set_enabled(frozenset(kinds))
        known = {n for _, n, _ in records.HASH_ORDER}
        self.hasher.want(frozenset(a for a in self.pub.wanted(envelope.WANT_HASH) if a in known))

    # -- data path -------------------------------------------------------------------------
    def publish(self, recs: list[bytes]) -> None:
        if self.hasher.algos:
            recs = self.hasher.records_for(recs)
        for i in range(0, len(recs), BATCH_MAX):
            chunk = recs[i : i + BATCH_MAX]
            self.pub.publish_records(b"".join(chunk), len(chunk))

    def drain(self) -> None:
        recs: list[bytes] = []
        while self.ring.drain(recs, BATCH_MAX * 8):
            self.publish(recs)
            recs = []
        if self._snapshot_due:
            self._snapshot_due = False
            self.publish(snapshot_records())
        if self._pending_marks:
            marks = [encode(records.MARKER, token=t) for t in self._pending_marks]
            self._pending_marks = []
            self.pub.publish_records(b"".join(marks), len(marks))

    def counters(self) -> dict:
        kernel = self.programs.counters()
        return {
            "kernel_emitted": kernel["emitted"],
            "kernel_dropped": kernel["drops"],
            "ring_records": self.ring.records,
            "published": dict(self.pub.stats),
            "hash_failures": self.hasher.failures,
            "enabled_kinds": sorted(self.programs.enabled_kinds),
            "attached_hooks": sorted(h.tracepoint for h in self.programs.attached),
        }

    def heartbeat(self) -> None:
        self.host.refresh()
        counters = self.counters()
        self.pub.kernel_drops = sum(counters["kernel_dropped"].values())
        self.pub.publish_host(self.host.build(counters))

    def run(self) -> None:
        """A timer loop, not an event loop: the kernel sends no wakeups (BPF_RB_NO_WAKEUP), and one
        sleep plus one non-blocking read per tick is cheaper than a ZeroMQ poll."""
        next_beat = 0.0
        interval = self.interval_ms / 1000
        while self.running:
            time.sleep(interval)
            self.apply_subscriptions()
            if self._snapshot_due:
                next_beat = 0.0  # a new filterd needs the host context first
            now = time.monotonic()
            if now >= next_beat:
                self.heartbeat()
                next_beat = now + self.heartbeat_s
            self.drain()
        self.drain()
        self.heartbeat()

    def close(self) -> None:
        self.pub.close()
        self.ring.close()
        self.programs.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sysmon-collector", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", action="append", help=f"ZeroMQ bind endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--group", default="sysmon", help="group allowed to connect to ipc endpoints")
    p.add_argument("--curve-secret", help="this collector's CURVE secret key file (required for tcp://)")
    p.add_argument("--curve-clients", help="directory of the filterd public keys (*.key) allowed on tcp://")
    p.add_argument("--interval-ms", type=int, default=10, help="ring buffer drain period")
    p.add_argument("--heartbeat", type=float, default=2.0, help="host context period, seconds")
    p.add_argument("--btf", help="BTF file to use instead of /sys/kernel/btf/vmlinux")
    p.add_argument("--print-bpf", action="store_true", help="print the BPF source and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_bpf:
        from .loader import build_source

        print(build_source())
        return 0
    endpoints = args.endpoint or [DEFAULT_ENDPOINT]
    try:
        curve = curve_server(endpoints, args.curve_secret, args.curve_clients)  # before loading BPF
        collector = Collector(endpoints, args.group, args.interval_ms, args.heartbeat, args.btf, curve)
    except (CollectorError, CurveError, zmq.ZMQError, OSError) as e:
        print(f"sysmon-collector: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        collector.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"sysmon-collector {__version__}: publishing on {', '.join(args.endpoint or [DEFAULT_ENDPOINT])}",
        file=sys.stderr,
        flush=True,
    )
    try:
        collector.run()
    finally:
        collector.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
