"""collector/stream.py: numbering, acknowledgement, resend and the ring position to release."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collector.stream import Position, Stream


def test_numbers_count_kernel_records_only() -> None:
    s = Stream(5, 100)
    a = s.add(b"x" * 10, 3, ring_start=0)
    b = s.add(b"hash", 0)  # collector-made records: not numbered
    c = s.add(b"y" * 10, 2, ring_start=40)
    assert (a.seq, a.first_record, b.seq, b.first_record, c.seq, c.first_record) == (5, 100, 6, 103, 7, 103)
    assert s.next_record == 105


def test_ring_is_released_only_up_to_the_first_unacknowledged_batch() -> None:
    s = Stream(0, 0)
    s.add(b"a", 3, ring_start=0)
    s.add(b"b", 3, ring_start=64)
    assert s.commit(read_pos=128) == Position(0, 0, 0)
    s.ack(3)
    assert s.commit(read_pos=128) == Position(64, 1, 3)
    s.ack(6)
    assert s.commit(read_pos=128) == Position(128, 2, 6)


def test_release_ring_keeps_bytes_and_frees_the_ring() -> None:
    s = Stream(0, 0)
    s.add(b"a", 3, ring_start=0)
    s.release_ring()
    assert s.commit(read_pos=64) == Position(64, 1, 3)
    assert [b.blob for b in s.since(0)] == [b"a"]


def test_resend_from_an_ack_inside_a_batch() -> None:
    s = Stream(0, 0)
    for i in range(4):
        s.add(bytes([i]), 10)
    assert [b.first_record for b in s.since(25)] == [20, 30]
    assert [b.first_record for b in s.since(0)] == [0, 10, 20, 30]
    assert s.since(40) == []


def test_overflow_drops_oldest_and_counts_records() -> None:
    s = Stream(0, 0, max_bytes=100)
    for _ in range(5):
        s.add(b"x" * 40, 7)
    assert s.kept_bytes <= 100
    assert s.overflow_records == 7 * (5 - len(s.kept))
    assert s.since(0)[0].first_record == 7 * (5 - len(s.kept))


def test_ack_beyond_the_stream_is_capped() -> None:
    s = Stream(0, 0)
    s.add(b"a", 2)
    s.ack(1 << 63)  # a lying or confused subscriber cannot confirm records not sent yet
    assert s.acked == 2
    b = s.add(b"b", 2)
    assert s.since(s.acked) == [b]


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 600), st.integers(1, 300)),
            st.tuples(st.just("ack"), st.integers(0, 1 << 64), st.just(0)),
            st.tuples(st.just("release"), st.just(0), st.just(0)),
        ),
        max_size=60,
    )
)
def test_invariants(ops: list[tuple[str, int, int]]) -> None:
    s = Stream(0, 0, max_bytes=2000)
    ring = 0
    for op, a, b in ops:
        if op == "add":
            s.add(b"z" * b, a, ring_start=ring)
            ring += b
        elif op == "ack":
            s.ack(a)
        else:
            s.release_ring()
        assert (
            s.kept_bytes
            == sum(len(k.blob) for k in s.kept)
            <= max(2000, max((len(k.blob) for k in s.kept), default=0))
        )
        firsts = [k.first_record for k in s.kept]
        assert firsts == sorted(firsts)
        pos = s.commit(ring)
        assert 0 <= pos.ring <= ring and pos.record <= s.next_record
        assert all(k.first_record + k.count > s.acked or k.count == 0 for k in s.kept)
