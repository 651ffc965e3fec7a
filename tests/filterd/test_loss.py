"""Loss summaries: the first drop of a quiet hop at once, then one summary per interval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filterd.loss import FRAMES, KERNEL, SINK, TRANSIT, LossReporter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_at_once_then_summed_per_interval() -> None:
    clock, out = Clock(), []
    r = LossReporter(out.append, clock, 5.0, name={"o": "h1"}.get)
    r.add(TRANSIT, "o", 3, extra=1)
    r.flush()
    assert out == ["3 records from h1 lost in transit (1 batch missing)"]
    for t in (1, 2, 3):
        clock.now = t
        r.add(TRANSIT, "o", 1, extra=2)
        r.add(KERNEL, "o", 2, {"PROCESS_EXEC": 2})  # another hop: its own clock
        r.flush()
    assert out[1:] == ["the kernel ring buffer of h1 dropped 2 records (PROCESS_EXEC 2)"]
    clock.now = 5
    r.flush()
    assert out[2:] == ["3 records from h1 lost in transit (6 batches missing)"]
    clock.now = 6
    r.flush()
    assert out[3:] == ["the kernel ring buffer of h1 dropped 4 records (PROCESS_EXEC 4)"]
    clock.now = 100
    r.flush()
    assert len(out) == 4


def test_texts() -> None:
    out: list[str] = []
    r = LossReporter(out.append, Clock(), name=str)
    r.add(FRAMES, "filterd", 1, {"MalformedFrame": 1})
    r.add(SINK, "syslog", 2, note="[Errno 111] Connection refused")
    r.flush()
    assert out == [
        "filterd dropped 1 malformed frame (MalformedFrame 1)",
        "the syslog sink dropped 2 events (last error: [Errno 111] Connection refused)",
    ]


@given(st.lists(st.tuples(st.floats(0, 3), st.integers(1, 1000)), max_size=200))
def test_every_drop_is_in_exactly_one_summary_within_the_interval(drops: list[tuple[float, int]]) -> None:
    clock, out = Clock(), []
    r = LossReporter(out.append, clock, 5.0)
    total = 0
    for dt, n in drops:
        clock.now += dt
        r.add(TRANSIT, "o", n)
        total += n
        r.flush()
    clock.now += 5.0
    r.flush()
    assert sum(int(x.split()[0]) for x in out) == total
    assert r.reported[TRANSIT] == total
