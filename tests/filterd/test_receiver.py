"""The receiver over real ZeroMQ sockets: acknowledgements as the collector sees them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from filterd.config.loader import default_config
from filterd.pipeline import Pipeline
from filterd.receiver import ACK_EVERY_BATCHES, Receiver
from filterd.state.record_id import RecordIdCounter
from shared import envelope, records
from shared.decode import encode, split_path

ORIGIN = "m/b"
HOST = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1,
    "users": {},
    "logins": [],
    "collector_pid": 1,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """An XPUB as the collector binds it: every subscribe and unsubscribe is seen, in order."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.subs: list[tuple[bool, bytes]] = []

    def read(self) -> None:
        while True:
            try:
                m = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.subs.append((m[0] == 1, m[1:]))

    def acks(self) -> list[tuple[bool, bytes]]:
        return [s for s in self.subs if s[1].startswith(envelope.ACK)]

    def held_acks(self) -> set[bytes]:
        held: set[bytes] = set()
        for on, t in self.acks():
            (held.add if on else held.discard)(t)
        return held

    def send(self, topic: bytes, body: bytes) -> None:
        self.sock.send_multipart((topic, body))


def pump(c: Collector, r: Receiver, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, c.subs
        c.read()
        r.poll(10)
    c.read()


def execs(n: int, pid: int) -> bytes:
    return b"".join(
        encode(records.PROCESS_EXEC, (split_path("/bin/true"), b"", b"true\0"), pid=pid + i, start_ns=pid + i)
        for i in range(n)
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[str, Path, Clock]]:
    yield f"ipc://{tmp_path}/c.sock", tmp_path, Clock()


def make(
    state: Path, clock: Clock, endpoint: str, local_origin: str | None = None
) -> tuple[Pipeline, Receiver]:
    p = Pipeline(default_config(), [], RecordIdCounter(state / "eventId"), state_dir=state, clock=clock)
    return p, Receiver([endpoint], p, local_origin=local_origin, clock=clock)


def test_one_ack_follows_the_written_position(env: tuple[str, Path, Clock]) -> None:
    endpoint, state, clock = env
    c = Collector(endpoint)
    p, r = make(state, clock, endpoint)
    try:
        pump(c, r, lambda: (True, envelope.TOPIC_RECORDS) in c.subs)
        assert c.acks() == []  # nothing stored, nothing to confirm yet
        c.send(b"host", envelope.pack_host(ORIGIN, HOST))
        c.send(b"rec", envelope.pack_batch(ORIGIN, 0, execs(3, 10), epoch=9, first_record=0))
        pump(c, r, lambda: c.held_acks() == {b"ack/9/3"})
        c.send(b"rec", envelope.pack_batch(ORIGIN, 1, execs(2, 20), epoch=9, first_record=3))
        pump(c, r, lambda: p.streams.streams[ORIGIN].written == 5)
        for _ in range(5):
            r.poll(1)
        c.read()
        assert c.held_acks() == {b"ack/9/3"}  # at most every ACK_EVERY_S
        clock.now += 0.1
        pump(c, r, lambda: c.held_acks() == {b"ack/9/5"})
        # new first, then the old one goes: never without an ack
        assert c.acks()[-2:] == [(True, b"ack/9/5"), (False, b"ack/9/3")]
    finally:
        r.close()
        p.streams.close()


def test_under_load_the_ack_moves_every_64_batches(env: tuple[str, Path, Clock]) -> None:
    endpoint, state, clock = env
    c = Collector(endpoint)
    p, r = make(state, clock, endpoint)
    try:
        pump(c, r, lambda: (True, envelope.TOPIC_RECORDS) in c.subs)
        c.send(b"host", envelope.pack_host(ORIGIN, HOST))
        c.send(b"rec", envelope.pack_batch(ORIGIN, 0, execs(1, 1), epoch=1, first_record=0))
        pump(c, r, lambda: c.held_acks() == {b"ack/1/1"})
        for seq in range(1, ACK_EVERY_BATCHES + 1):
            c.send(b"rec", envelope.pack_batch(ORIGIN, seq, execs(1, seq + 1), epoch=1, first_record=seq))
        pump(c, r, lambda: c.held_acks() == {b"ack/1/65"})  # the clock never moved: by the batch count
    finally:
        r.close()
        p.streams.close()


def test_a_restarted_filterd_acks_its_stored_position_before_rec(env: tuple[str, Path, Clock]) -> None:
    endpoint, state, clock = env
    c = Collector(endpoint)
    p, r = make(state, clock, endpoint, local_origin=ORIGIN)
    try:
        pump(c, r, lambda: (True, envelope.TOPIC_RECORDS) in c.subs)
        c.send(b"host", envelope.pack_host(ORIGIN, HOST))
        c.send(b"rec", envelope.pack_batch(ORIGIN, 0, execs(4, 10), epoch=5, first_record=100))
        pump(
            c,
            r,
            lambda: p.streams.streams.get(ORIGIN) is not None and p.streams.streams[ORIGIN].written == 104,
        )
    finally:
        r.close()
        p.streams.close()
    c.subs.clear()
    p, r = make(state, clock, endpoint, local_origin=ORIGIN)
    try:
        pump(c, r, lambda: (True, envelope.TOPIC_RECORDS) in c.subs)
        topics = [t for on, t in c.subs if on]
        assert topics.index(b"ack/5/104") < topics.index(envelope.TOPIC_RECORDS)
        # the collector resends from there: a record it had sent before is skipped, the rest logged
        c.send(b"host", envelope.pack_host(ORIGIN, HOST))
        c.send(b"rec", envelope.pack_batch(ORIGIN, 1, execs(3, 13), epoch=5, first_record=103))
        pump(c, r, lambda: p.streams.streams[ORIGIN].written == 106)
        assert p.stats["duplicate_records"] == 1 and p.stats["gap_records"] == 0
    finally:
        r.close()
        p.streams.close()


def test_a_second_origin_on_the_socket_is_not_acknowledged(env: tuple[str, Path, Clock]) -> None:
    endpoint, state, clock = env
    c = Collector(endpoint)
    p, r = make(state, clock, endpoint)
    try:
        pump(c, r, lambda: (True, envelope.TOPIC_RECORDS) in c.subs)
        for o in (ORIGIN, "other/b"):
            c.send(b"host", envelope.pack_host(o, HOST))
        c.send(b"rec", envelope.pack_batch(ORIGIN, 0, execs(1, 1), epoch=1, first_record=0))
        c.send(b"rec", envelope.pack_batch("other/b", 0, execs(2, 5), epoch=2, first_record=0))
        pump(c, r, lambda: p.stats["ack_other_origin"] == 1 and c.held_acks() == {b"ack/1/1"})
        clock.now += 1
        c.send(b"rec", envelope.pack_batch(ORIGIN, 1, execs(1, 9), epoch=1, first_record=1))
        pump(c, r, lambda: c.held_acks() == {b"ack/1/2"})
        assert not any(t.startswith(b"ack/2/") for _, t in c.acks())
    finally:
        r.close()
        p.streams.close()
