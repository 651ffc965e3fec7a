"""Collector liveness with an injected clock: silent, stuck and back again."""

from __future__ import annotations

from filterd.liveness import RESUMED, SILENT, CollectorWatch
from tests.harness.sinks import ListSink


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def watch() -> tuple[CollectorWatch, Clock, list[tuple[str, str]]]:
    clock, out = Clock(), []
    w = CollectorWatch(lambda i, d: out.append((i, d)), clock, name={"o": "h1"}.get)
    return w, clock, out


def beat(w: CollectorWatch, progress: int | None, hb: float = 2.0) -> None:
    ctx = {"heartbeat_s": hb} if progress is None else {"heartbeat_s": hb, "progress": progress}
    w.heartbeat("o", ctx)


def test_no_heartbeat_for_three_periods_then_back() -> None:
    w, clock, out = watch()
    beat(w, 1)
    for _ in range(3):
        clock.now += 2.0
        w.tick()
    assert out == []  # 6 s = max(3 * 2 s, 5 s): not yet more than that
    clock.now += 0.1
    w.tick()
    w.tick()
    assert out == [(SILENT, "no heartbeat from the collector of h1 for 6.1 s")]
    clock.now += 10
    beat(w, 9)
    assert out[1] == (RESUMED, "the collector of h1 is back after 16.1 s of silence")
    clock.now += 2
    beat(w, 10)
    w.tick()
    assert len(out) == 2


def test_minimum_silence_is_five_seconds() -> None:
    w, clock, out = watch()
    beat(w, 1, hb=0.5)
    clock.now += 4.9
    w.tick()
    assert out == []
    clock.now += 0.2
    w.tick()
    assert out == [(SILENT, "no heartbeat from the collector of h1 for 5.1 s")]


def test_heartbeats_with_progress_standing_still() -> None:
    w, clock, out = watch()
    beat(w, 7)
    clock.now += 0.5
    beat(w, 7)  # a second context within the period (e.g. on change): not a stall
    assert out == []
    clock.now += 1.5
    beat(w, 7)
    assert out == [
        (
            SILENT,
            "the collector of h1 made no progress for 2.0 s "
            "(its heartbeats arrive, its loop counter stays at 7)",
        )
    ]
    clock.now += 20
    beat(w, 7)
    w.tick()
    assert len(out) == 1  # said once
    beat(w, 8)
    assert out[1] == (RESUMED, "the collector of h1 is back after 22.0 s of silence")


def test_heartbeats_without_progress_count_as_alive() -> None:
    w, clock, out = watch()
    for _ in range(10):
        beat(w, None)
        clock.now += 2
        w.tick()
    assert out == []


def test_nonsense_heartbeat_values_are_ignored() -> None:
    w, clock, out = watch()
    w.heartbeat("o", {"heartbeat_s": float("nan"), "progress": "x"})
    w.heartbeat("o", {"heartbeat_s": -1, "progress": 2**80})
    w.heartbeat("o", {"heartbeat_s": True})
    clock.now += 6.1
    w.tick()
    assert out == [(SILENT, "no heartbeat from the collector of h1 for 6.1 s")]  # default 2 s period


def test_through_the_pipeline(tmp_path) -> None:  # noqa: ANN001
    from filterd.config.loader import default_config
    from filterd.pipeline import Pipeline
    from filterd.state.record_id import RecordIdCounter

    clock = Clock()

    sink = ListSink()
    lines = sink.lines
    p = Pipeline(default_config(), [sink], RecordIdCounter(tmp_path / "eventId"), clock=clock)
    p.on_host("o", {"hostname": "h1", "progress": 1, "heartbeat_s": 2.0})
    clock.now += 7
    p.tick()
    p.on_host("o", {"hostname": "h1", "progress": 2, "heartbeat_s": 2.0})
    ids = [x.split('<Data Name="ID">')[1].split("<")[0] for x in lines if "<EventID>255<" in x]
    assert ids == [SILENT, RESUMED]


def test_batches_are_proof_of_life_behind_a_backlog() -> None:
    """Heartbeats stuck behind queued data: the batches that do arrive keep the origin alive;
    once they stop too, the silence is reported."""
    w, clock, out = watch()
    beat(w, 1)
    for _ in range(20):
        clock.now += 1.0
        w.activity("o")
        w.tick()
    assert out == []
    clock.now += 6.5
    w.tick()
    assert out == [(SILENT, "no heartbeat from the collector of h1 for 6.5 s")]
    clock.now += 1.0
    w.activity("o")
    assert out[-1] == (RESUMED, "the collector of h1 is back after 7.5 s of silence")
    w.activity("unknown origin")  # watched only from its first heartbeat
    assert len(out) == 2
