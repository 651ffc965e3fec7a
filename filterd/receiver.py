"""filterd's only ZeroMQ user: a SUB socket connected to one or more collectors.

Besides the data topics it holds "want" subscriptions (shared/envelope.py): they are how the
config reaches the collector without the collector parsing anything. A frame that cannot be
used is counted by error class and dropped; nothing received can stop the daemon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import zmq

from shared import envelope
from shared.errors import FrameError

from .pipeline import Pipeline


class Receiver:
    def __init__(self, endpoints: Iterable[str], pipeline: Pipeline, rcvhwm: int = 100000) -> None:
        self.pipeline = pipeline
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        for topic in (envelope.TOPIC_HOST, envelope.TOPIC_RECORDS):
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.wants: set[bytes] = set()
        self.last_error = ""
        self.stats: Counter[str] = pipeline.stats
        for ep in endpoints:
            self.sock.connect(ep)

    def set_wants(self, kinds: Iterable[int], hash_algos: Iterable[str]) -> None:
        """Subscribe to the want topics for these record kinds and hash algorithms, drop the rest."""
        new = {envelope.WANT_KIND + str(k).encode() for k in kinds}
        new |= {envelope.WANT_HASH + a.encode() for a in hash_algos}
        for t in new - self.wants:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        for t in self.wants - new:
            self.sock.setsockopt(zmq.UNSUBSCRIBE, t)
        self.wants = new

    def request_marker(self, token: int) -> None:
        self.sock.setsockopt(zmq.SUBSCRIBE, envelope.MARK + str(token).encode())

    def handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.stats["MalformedFrame"] += 1
            return
        topic, body = frames
        try:
            if topic == envelope.TOPIC_RECORDS:
                b = envelope.unpack_batch(body)
                self.pipeline.on_batch(b.origin, b.seq, b.records)
            elif topic == envelope.TOPIC_HOST:
                m = envelope.unpack_host(body)
                self.pipeline.on_host(m.origin, m.context)
            else:
                self.stats["unknown_topic"] += 1
        except FrameError as e:
            self.stats[type(e).__name__] += 1
        except (ValueError, TypeError, KeyError) as e:  # a well-formed frame with nonsense inside
            self.stats["bad_content"] += 1
            self.last_error = repr(e)

    def poll(self, timeout_ms: int) -> int:
        """Handle what arrives within timeout_ms; returns messages handled."""
        n = 0
        if self.sock.poll(timeout_ms):
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.handle(frames)
                n += 1
                if n >= 1000:
                    break
        return n

    def close(self) -> None:
        self.sock.close(0)
