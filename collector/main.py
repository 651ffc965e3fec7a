"""sysmon-collector: the only root process. Open the pinned programs, drain the ring, publish.

Lifecycle: pins of this build present? else compile, load and pin them in a child process
(collector/loader.py) -> open the pins (no bcc in this process) -> bind the sockets -> loop {
read subscriptions; drain the ring every few ms; add image hashes; publish batches; release
the ring as filterds acknowledge; heartbeat; watchdog ping }. It parses no config and no
message except ZeroMQ subscriptions (collector/publisher.py).

On SIGTERM the programs stay attached (pinned): events go on filling the ring and the next
collector process sends them. `sysmon-collector --unpin` (run by `sysmon -u`) removes them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pwd
import signal
import sys
import time
from collections.abc import Callable

import zmq

from shared import records
from shared.curve import CurveError
from shared.decode import encode
from shared.malloc import tune_malloc
from shared.transport import DEFAULT_ENDPOINT

from . import __version__
from .errors import CollectorError
from .hashes import ImageHasher
from .hostinfo import HostContext
from .loader import RINGBUF_PAGES
from .pins import DEFAULT_PIN_DIR, PinDir
from .procfs import snapshot_records
from .programs import Programs
from .publisher import CurveServer, Publisher, curve_server
from .ringbuf import RingReader
from .stream import DEFAULT_MAX_BYTES, Stream
from .watchdog import Notifier

BATCH_MAX = 512
BATCHES_PER_TICK = 256  # bounds one tick's work; the rest waits for the next tick
FULL_TICK = BATCH_MAX  # a tick that found a full batch is behind: the next one comes sooner
DEFAULT_INTERVAL_MS, DEFAULT_MAX_INTERVAL_MS = 10, 40  # 40 ms at 150k events/s: a quarter of the ring
# A tick reads the ring only when that is worth a batch: this much unread data (about 500
# records), or DRAIN_AGE_S since the last read. A light load then goes out in about 10 larger
# batches a second (an event waits 0.1 s at most, plus a tick), while the ring's fill is still
# looked at every tick.
DRAIN_BYTES = 64 << 10
DRAIN_AGE_S = 0.1
MAX_PENDING_MARKS = 64


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Collector:
    def __init__(
        self,
        endpoints: list[str],
        group: str,
        interval_ms: int,
        heartbeat_s: float,
        btf_path: str | None = None,
        curve: CurveServer | None = None,
        pin_dir: str = DEFAULT_PIN_DIR,
        ring_pages: int = RINGBUF_PAGES,
        buffer_bytes: int = DEFAULT_MAX_BYTES,
        quiet_pids: tuple[int, ...] = (),
        service_user: str = "sysmon",
        max_interval_ms: int = DEFAULT_MAX_INTERVAL_MS,
    ) -> None:
        self.programs = Programs(pin_dir, btf_path, ring_pages)
        self.ring = RingReader(self.programs.ring_fd, self.programs.ring_size)
        seq, first = self.programs.saved_position()
        self.stream = Stream(seq, first, buffer_bytes)
        self.host = HostContext(__version__)
        self.pub = Publisher(endpoints, self.host.origin, group, curve=curve)
        self.pub.epoch = self.programs.epoch
        self.hasher = ImageHasher()
        self.interval_ms = interval_ms
        self.max_interval_ms = max(interval_ms, max_interval_ms)
        self.heartbeat_s = heartbeat_s
        self.running = True
        self.progress = 0  # loop iterations: a heartbeat whose progress stands still = a stuck loop
        self._pending_marks: list[int] = []
        self._snapshot_due = False
        self._resend_from: int | None = None
        self._drained_at = 0.0  # monotonic time of the last ring read
        self._sent_seq = seq - 1  # the send cursor: the last batch handed to the sockets
        self._sent_record = first
        self._saved = (seq, first)
        self.quiet_base = {os.getpid(), *quiet_pids}
        try:
            self.service_uid = pwd.getpwnam(service_user).pw_uid
        except KeyError:
            self.service_uid = -1
        self._quiet: set[int] = set()
        self._update_quiet()
        # Keep producing what the last collector produced (nothing after a fresh load) until a
        # filterd subscribes; re-applying also mends a predecessor killed between attach and map.
        self.programs.set_enabled(self.programs.enabled_kinds)

    # -- subscriptions ---------------------------------------------------------------------
    def apply_subscriptions(self) -> None:
        """Act on what subscribers asked for; collector/subscriptions.py parses (totally) and
        bounds what they can ask."""
        if not self.pub.read_subscriptions():
            return
        subs, news = self.pub.subs, self.pub.news
        if news.rec:  # a filterd (re)joined: from where its ack says (it subscribes that first)
            self._snapshot_due = True
            self.hasher.forget_sent()
            acked = subs.min_ack(self.pub.epoch)
            self._resend(self.stream.acked if acked is None else acked)
        if len(self._pending_marks) < MAX_PENDING_MARKS:
            self._pending_marks.extend(news.marks[: MAX_PENDING_MARKS - len(self._pending_marks)])
        self._update_quiet()
        if not self.subscribed():
            return  # filterd away: keep producing what it wanted, for when it returns
        kinds = subs.kinds
        if subs.deleted_hashes and records.FILE_DELETE.kind in kinds:
            kinds = kinds | {records.SWITCH_UNLINKED_INODE}
        if kinds != self.programs.enabled_kinds:
            self.programs.set_enabled(kinds)
        self.hasher.want(subs.hash_algos)
        self.hasher.deleted = subs.deleted_hashes

    def _resend(self, from_record: int) -> None:
        self._resend_from = from_record if self._resend_from is None else min(self._resend_from, from_record)

    def _update_quiet(self) -> None:
        pids = self.quiet_base | {
            pid for pid, uid in self.pub.local_peers().items() if uid == self.service_uid
        }
        if pids != self._quiet:
            self.programs.quiet(pids)
            self._quiet = pids

    # -- data path -------------------------------------------------------------------------
    def subscribed(self) -> bool:
        return self.pub.subs.rec_subscribers > 0

    def add_unnumbered(self, recs: list[bytes]) -> None:
        """Records the collector makes itself: sent in order, never numbered (collector/stream.py)."""
        for i in range(0, len(recs), BATCH_MAX):
            self.stream.add(b"".join(recs[i : i + BATCH_MAX]), 0)

    def flush(self) -> None:
        """Send kept batches after the send cursor, in order, until the sockets' queues are full
        (then the rest waits for the next tick: a slow filterd slows us, it does not lose data)."""
        if not self.subscribed() or not self.stream.kept:
            return
        kept = self.stream.kept
        if self._resend_from is not None:
            again = self.stream.since(self._resend_from)
            if again:
                self.pub.stats["resent_batches"] += max(0, self._sent_seq - again[0].seq + 1)
                self._sent_seq = min(self._sent_seq, again[0].seq - 1)
            self._resend_from = None
        start = max(0, self._sent_seq + 1 - kept[0].seq)
        for b in itertools.islice(kept, start, None):
            if not self.pub.send_batch(b.seq, b.first_record, b.count, b.blob):
                self.pub.stats["send_blocked"] += 1
                break
            self._sent_seq = b.seq
            self._sent_record = b.first_record + b.count

    def drain(self, force: bool = False) -> int:
        """Read the ring (when worth it, see DRAIN_BYTES), number, send; returns the kernel
        records read. Every batch costs both daemons a fixed price (here a send, in filterd a
        wakeup, a receive, a position write and a syslog call: about 0.3 ms in all), so a
        light load waits in the ring a little (DRAIN_AGE_S at most) and goes out in one batch."""
        if self._snapshot_due and self.subscribed():
            self._snapshot_due = False
            self.add_unnumbered(snapshot_records())
        now = time.monotonic()
        total = 0
        if (
            force
            or self._pending_marks
            or now - self._drained_at >= DRAIN_AGE_S
            or self.ring.unread() >= DRAIN_BYTES
        ):
            self._drained_at = now
            total = self.read_ring()
        if self._pending_marks and self.subscribed():
            marks = [encode(records.MARKER, token=t) for t in self._pending_marks]
            self._pending_marks = []
            self.add_unnumbered(marks)
        self.flush()
        self.release()
        return total

    def read_ring(self) -> int:
        """Number and keep what the ring holds (bounded per tick); the kernel records read."""
        total = 0
        for _ in range(BATCHES_PER_TICK):
            start = self.ring.read_pos
            recs: list[bytes] = []
            n = self.ring.drain(recs, BATCH_MAX)
            if not n:
                break
            total += n
            if self.hasher.algos:
                recs = self.hasher.records_for(recs)
            self.stream.add(b"".join(recs), n, start)
        return total

    def release(self) -> None:
        """Give ring space back for what is safe: acknowledged, or kept in our own buffer."""
        acked = self.pub.subs.min_ack(self.pub.epoch)
        if not self.subscribed():
            self.stream.release_ring()  # filterd away: keep records here, the ring takes new ones
        elif acked is None:
            self.stream.ack(self._sent_record)  # subscribers that never acknowledge: what went, went
        else:
            self.stream.ack(acked)
            if self.ring_pressed():  # unconfirmed data must leave room for a tick
                self.stream.release_ring()  # a slow filterd must not make the kernel drop
        pos = self.stream.commit(self.ring.read_pos)
        self.ring.commit(pos.ring)
        if (pos.seq, pos.record) != self._saved:
            self.programs.save_position(pos.seq, pos.record)
            self._saved = (pos.seq, pos.record)

    def ring_pressed(self) -> bool:
        """A quarter of the ring in use: read it at the shortest period, and release what is kept."""
        return self.ring.used() > self.ring.size // 4

    def counters(self) -> dict:
        kernel = self.programs.counters()
        return {
            "kernel_emitted": kernel["emitted"],
            "kernel_dropped": kernel["drops"],
            "ring_records": self.ring.records,
            "published": dict(self.pub.stats),
            "buffered_batches": len(self.stream.kept),
            "buffered_bytes": self.stream.kept_bytes,
            "buffer_overflow_records": self.stream.overflow_records,
            "hash_failures": self.hasher.failures,
            "hashes": dict(self.hasher.stats),
            "subscriptions_held": len(self.pub.subs),
            "quiet_pids": sorted(self._quiet),
            "rss_bytes": resident_bytes(),
            "enabled_kinds": sorted(self.programs.enabled_kinds),
            "attached_hooks": sorted(h.tracepoint for h in self.programs.attached),
        }

    def heartbeat(self) -> bool:
        """Send the host context; False if the queues were full (sent again next tick, before
        any data, so a backlog cannot starve the heartbeat)."""
        self.host.refresh()
        counters = self.counters()
        self.pub.kernel_drops = sum(counters["kernel_dropped"].values())
        ctx = self.host.build(counters)
        ctx.update(progress=self.progress, heartbeat_s=self.heartbeat_s, epoch=self.pub.epoch)
        return self.pub.publish_host(ctx)

    def run(self, on_tick: Callable[[], None] | None = None) -> None:
        """A timer loop, not an event loop: the kernel sends no wakeups (BPF_RB_NO_WAKEUP), and one
        sleep plus one non-blocking read per tick is cheaper than a ZeroMQ poll.

        The period adapts between interval_ms and max_interval_ms: a tick that found a full
        batch (FULL_TICK records: the ring fills faster than one batch per period) halves the
        next sleep, any other doubles it, so an idle collector wakes 25 times a second instead
        of 100 and a burst is drained at the shortest period. A tick reads the ring only when
        that is worth a batch (drain()); it looks at the fill every time, so max_interval_ms
        bounds how much a burst can write before it is seen: 40 ms of 150k events/s is a
        quarter of the default 4 MiB ring, and a ring a quarter full makes the next period the
        shortest."""
        next_beat = 0.0
        shortest, longest = self.interval_ms / 1000, self.max_interval_ms / 1000
        sleep = shortest
        while self.running:
            time.sleep(sleep)
            self.progress += 1
            self.apply_subscriptions()
            if self._snapshot_due:
                next_beat = 0.0  # a new filterd needs the host context first
            now = time.monotonic()
            if now >= next_beat and self.heartbeat():
                next_beat = now + self.heartbeat_s
            busy = self.drain() >= FULL_TICK or self._snapshot_due or self.ring_pressed()
            sleep = max(shortest, sleep / 2) if busy else min(longest, sleep * 2)
            if on_tick is not None:
                on_tick()
        self.drain(force=True)
        self.heartbeat()

    def close(self) -> None:
        self.hasher.close()
        self.pub.close()
        self.ring.close()
        self.programs.close()


READER_NICE = -10


def raise_priority(nice: int) -> None:
    """A flood of events must not starve the one process that empties the kernel ring: when the
    CPUs are busy (the flood itself keeps them busy), a reader at the default priority gets its
    share too late and the ring overflows. The loader child inherits it (its compile is short)."""
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as e:  # not root, or RLIMIT_NICE: run on, at the given priority
            print(f"sysmon-collector: priority {nice} not set: {e}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sysmon-collector", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", action="append", help=f"ZeroMQ bind endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--group", default="sysmon", help="group allowed to connect to ipc endpoints")
    p.add_argument("--user", default="sysmon", help="filterd's user: its connected processes are not logged")
    p.add_argument("--curve-secret", help="this collector's CURVE secret key file (required for tcp://)")
    p.add_argument("--curve-clients", help="directory of the filterd public keys (*.key) allowed on tcp://")
    p.add_argument(
        "--interval-ms", type=int, default=DEFAULT_INTERVAL_MS, help="ring buffer drain period under load"
    )
    p.add_argument(
        "--max-interval-ms",
        type=int,
        default=DEFAULT_MAX_INTERVAL_MS,
        help="longest drain period, when the ring is quiet",
    )
    p.add_argument("--heartbeat", type=float, default=2.0, help="host context period, seconds")
    p.add_argument("--btf", help="BTF file to use instead of /sys/kernel/btf/vmlinux")
    p.add_argument(
        "--pin-dir",
        default=os.environ.get("SYSMON_PIN_DIR", DEFAULT_PIN_DIR),
        help=f"bpffs directory of the pinned programs (default {DEFAULT_PIN_DIR})",
    )
    p.add_argument("--ring-pages", type=int, default=RINGBUF_PAGES, help="ring buffer size in 4 KiB pages")
    p.add_argument(
        "--buffer-mb",
        type=int,
        default=DEFAULT_MAX_BYTES >> 20,
        help="records kept while no filterd confirms them, MiB",
    )
    p.add_argument(
        "--quiet-pid", type=int, action="append", default=[], help="a pid whose events are not logged"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=READER_NICE,
        help=f"scheduling priority of the ring reader (default {READER_NICE}; 0 leaves it as started)",
    )
    p.add_argument("--unpin", action="store_true", help="detach and remove the pinned programs, then exit")
    p.add_argument("--print-bpf", action="store_true", help="print the BPF source and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    tune_malloc()
    args = parse_args(argv)
    if args.print_bpf:
        from .loader import build_source

        print(build_source())
        return 0
    if args.unpin:
        PinDir(args.pin_dir).remove()
        return 0
    endpoints = args.endpoint or [DEFAULT_ENDPOINT]
    raise_priority(args.nice)
    notifier = Notifier.from_environ()  # before the loader child starts: it must not inherit it
    try:
        curve = curve_server(endpoints, args.curve_secret, args.curve_clients)  # before loading BPF
        collector = Collector(
            endpoints,
            args.group,
            args.interval_ms,
            args.heartbeat,
            args.btf,
            curve,
            pin_dir=args.pin_dir,
            ring_pages=args.ring_pages,
            buffer_bytes=args.buffer_mb << 20,
            quiet_pids=tuple(args.quiet_pid),
            service_user=args.user,
            max_interval_ms=args.max_interval_ms,
        )
    except (CollectorError, CurveError, zmq.ZMQError, OSError) as e:
        print(f"sysmon-collector: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        collector.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"sysmon-collector {__version__}: publishing on {', '.join(endpoints)}",
        file=sys.stderr,
        flush=True,
    )
    notifier.ready(f"publishing on {', '.join(endpoints)}")
    try:
        collector.run(on_tick=notifier.ping)  # a stuck loop stops the pings: the manager restarts us
    finally:
        notifier.stopping()
        collector.close()
        notifier.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
