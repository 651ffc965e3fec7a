"""The collector's only ZeroMQ socket: an XPUB that publishes batches and reads subscriptions.

Subscriptions are the one input the collector acts on (shared/envelope.py lists the topics):
they say which record kinds and hash algorithms someone wants, when a new filterd needs the
running-process snapshot, and when a test or benchmark wants a drain marker. XPUB_VERBOSER
reports every subscribe and unsubscribe, so wants are reference-counted across filterds.
XPUB_NODROP makes a full send queue visible: the batch is dropped and counted, its sequence
number still consumed, so the receiver sees the gap.
"""

from __future__ import annotations

import grp
import os
from collections import Counter
from pathlib import Path

import zmq

from shared import envelope


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return 0


def secure_ipc_path(endpoint: str, group: str) -> None:
    """Make the socket's directory and file reachable only by root and `group`."""
    path = Path(endpoint[len("ipc://") :])
    gid = _group_id(group)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, 0, gid)
    os.chmod(path.parent, 0o750)
    if path.exists():
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)


class Publisher:
    def __init__(self, endpoints: list[str], origin: str, group: str = "sysmon", hwm: int = 10000) -> None:
        self.origin = origin
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        for ep in endpoints:
            if ep.startswith("ipc://"):
                secure_ipc_path(ep, group)
                old = os.umask(0o117)
                try:
                    self.sock.bind(ep)
                finally:
                    os.umask(old)
                secure_ipc_path(ep, group)
            else:
                self.sock.bind(ep)
        self.seq = 0
        self.subscriptions: Counter[bytes] = Counter()
        self.stats = Counter()

    def read_subscriptions(self) -> list[tuple[bool, bytes]]:
        """Pending (subscribe?, topic) messages; malformed ones are counted and ignored."""
        out = []
        while True:
            try:
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return out
            if not msg or msg[0] not in (0, 1):
                self.stats["bad_subscriptions"] += 1
                continue
            topic = msg[1:]
            if msg[0] == 1:
                self.subscriptions[topic] += 1
            elif self.subscriptions[topic] > 0:
                self.subscriptions[topic] -= 1
                if not self.subscriptions[topic]:
                    del self.subscriptions[topic]
            out.append((msg[0] == 1, topic))

    def wanted(self, prefix: bytes) -> set[str]:
        return {t[len(prefix) :].decode(errors="replace") for t in self.subscriptions if t.startswith(prefix)}

    def _send(self, topic: bytes, body: bytes) -> bool:
        try:
            self.sock.send_multipart((topic, body), zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.stats["hwm_drops"] += 1
            return False

    def publish_records(self, blob: bytes, count: int) -> None:
        body = envelope.pack_batch(self.origin, self.seq, blob)
        self.seq += 1
        if self._send(envelope.TOPIC_RECORDS, body):
            self.stats["batches"] += 1
            self.stats["records"] += count
        else:
            self.stats["records_dropped"] += count

    def publish_host(self, context: dict) -> None:
        self._send(envelope.TOPIC_HOST, envelope.pack_host(self.origin, context))

    def close(self) -> None:
        self.sock.close(0)
