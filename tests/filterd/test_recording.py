"""filterd/recording.py: the entry layout, the state group a recording starts with, and the record
clients of a real ControlServer (bounded buffer, loss noted in the stream, state on request, stop)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd import recording
from filterd.config.loader import load_config_bytes
from filterd.control import ControlServer
from filterd.pipeline import Pipeline
from filterd.receiver import Receiver
from filterd.recording import (
    FRAME,
    HEAD,
    MAGIC,
    NOTE,
    STATE,
    EntryParser,
    RecordHub,
    RecordingError,
    apply_state,
    frame_entry,
    json_entry,
    parse_events,
    state_entries,
)
from shared import envelope, records
from shared.decode import encode, split_path
from tests.harness.sinks import ListSink

ORIGIN = "m/b"
HOST = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {0: "root", 1000: "alice"},
    "logins": [],
    "collector_pid": 42,
    "counters": {"kernel_dropped": {1: 5}},
}
ALL = b"""<Sysmon schemaversion="4.90"><HashAlgorithms>SHA256</HashAlgorithms><EventFiltering>
<ProcessCreate onmatch="exclude"/><ProcessTerminate onmatch="exclude"/><FileCreate onmatch="exclude"/>
</EventFiltering></Sysmon>"""


# -- entries ---------------------------------------------------------------------------------------
def entries_strategy() -> st.SearchStrategy[list[bytes]]:
    frame = st.builds(
        lambda k, t, topic, body: frame_entry(k, t, topic, body),
        st.sampled_from((FRAME, STATE)),
        st.integers(0, (1 << 64) - 1),
        st.binary(max_size=20),
        st.binary(max_size=300),
    )
    note = st.builds(
        lambda k, d: json_entry(k, d),
        st.sampled_from((HEAD, NOTE)),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    )
    return st.lists(frame | note, max_size=20)


@settings(max_examples=200, deadline=None)
@given(entries_strategy(), st.lists(st.integers(1, 64), min_size=1, max_size=10))
def test_entries_survive_any_cut_into_pieces(entries: list[bytes], cuts: list[int]) -> None:
    data = MAGIC + b"".join(entries)
    p = EntryParser()
    got = []
    pos, i = 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        got += p.feed(data[pos : pos + n])
        pos, i = pos + n, i + 1
    assert p.pending == 0 and len(got) == len(entries)
    assert [
        json_entry(e.kind, e.info)
        if e.kind in (HEAD, NOTE)
        else frame_entry(e.kind, e.time_ns, e.topic, e.body)
        for e in got
    ] == [json_entry(x[0], json.loads(x[5:])) if x[0] in (HEAD, NOTE) else x for x in entries]
    assert got[0].offset == len(MAGIC) if got else True


@settings(max_examples=300, deadline=None)
@given(entries_strategy(), st.binary(min_size=1, max_size=40), st.data())
def test_garbage_is_a_recording_error_with_an_offset_never_a_crash(
    entries: list[bytes], junk: bytes, data: st.DataObject
) -> None:
    clean = MAGIC + b"".join(entries)
    at = data.draw(st.integers(0, len(clean)))
    p = EntryParser()
    try:
        p.feed(clean[:at] + junk + clean[at:])
    except RecordingError as e:
        assert 0 <= e.offset <= len(clean) + len(junk)
        assert str(e).startswith(f"at byte {e.offset}: ")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04", "no magic"),
        (MAGIC + b"\x09\x00\x00\x00\x00", "unknown entry type 9"),
        (MAGIC + bytes([NOTE]) + (2 << 20).to_bytes(4, "little"), "too long"),
        (MAGIC + json_entry(NOTE, {})[:5] + b"[]"[:0], None),  # incomplete: no error yet
        (MAGIC + bytes([NOTE, 2, 0, 0, 0]) + b"[]", "not a JSON object"),
        (MAGIC + bytes([FRAME, 3, 0, 0, 0]) + b"abc", "shorter than its stamp"),
        (MAGIC + bytes([FRAME, 9, 0, 0, 0]) + bytes(8) + b"\x05", "topic overruns"),
    ],
)
def test_parser_errors_say_what_and_where(data: bytes, reason: str | None) -> None:
    p = EntryParser()
    if reason is None:
        assert p.feed(data) == [] and p.pending > 0
        return
    with pytest.raises(RecordingError, match=reason) as e:
        p.feed(data)
    assert e.value.offset in (0, len(MAGIC))


def test_parse_events() -> None:
    assert parse_events(None) == frozenset()
    assert parse_events([11, 3]) == {3, 11}
    assert parse_events("all") >= {1, 3, 5, 9, 10, 11, 22, 23, 100}
    for bad in ("some", [1.5], [4], [16], {"a": 1}, list(range(300))):
        with pytest.raises(ValueError):
            parse_events(bad)


# -- the state group -----------------------------------------------------------------------------
class Ids:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n

    def close(self) -> None:
        pass


def exec_rec(
    pid: int, ppid: int, start: int, pstart: int, exe: str, args: bytes, snapshot: bool = False, ino: int = 0
) -> bytes:
    return encode(
        records.PROCESS_EXEC,
        (split_path(exe), split_path("/home/alice"), args),
        pid=pid,
        tid=pid,
        ppid=ppid,
        uid=1000,
        start_ns=start,
        parent_start_ns=pstart,
        end_code=0x5555 + pid,
        time_ns=start,
        flags=records.REC_F_NO_TTY | (records.REC_F_SNAPSHOT if snapshot else 0),
        exe_dev=8,
        exe_ino=ino or pid,
        exe_ctime=1,
    )


def hash_rec(pid: int) -> bytes:
    return encode(records.IMAGE_HASH, (bytes(range(32)),), exe_dev=8, exe_ino=pid, exe_ctime=1, algos=4)


def fresh() -> tuple[Pipeline, ListSink, Receiver]:
    sink = ListSink()
    p = Pipeline(load_config_bytes(ALL, "all.xml"), [sink], Ids())  # type: ignore[arg-type]
    return p, sink, Receiver([], p)


def handle(r: Receiver, entries: list[bytes]) -> None:
    for e in EntryParser().feed(MAGIC + b"".join(entries)):
        if e.kind in (FRAME, STATE):
            r.handle([e.topic, e.body])
        elif e.info.get("note") == "state":
            apply_state(r.pipeline, e.info)


def strip(xml: str) -> str:
    """What differs by nature between two pipelines: the record id and TimeCreated."""
    a, b = xml.index("<TimeCreated"), xml.index("<Correlation/>")
    return xml[:a] + xml[b:]


def test_a_pipeline_fed_the_state_logs_what_the_live_one_logs() -> None:
    live, live_sink, r = fresh()
    r.handle([envelope.TOPIC_HOST, envelope.pack_host(ORIGIN, HOST)])
    # a parent from the /proc snapshot, a forked-and-exec'd one, an image hash, and an exited one
    bash = exec_rec(10, 1, 5 * 10**9, 0, "/usr/bin/bash", b"bash\0-l\0", snapshot=True)
    r.handle([b"rec", envelope.pack_batch(ORIGIN, 0, bash, epoch=7)])
    blob = hash_rec(11) + exec_rec(11, 10, 6 * 10**9, 5 * 10**9, "/usr/bin/sleep", b"sleep\x001\0")
    r.handle([b"rec", envelope.pack_batch(ORIGIN, 1, blob, epoch=7)])
    # the collector re-measures its boot epoch: filterd keeps the first, and so must the state
    r.handle(
        [
            envelope.TOPIC_HOST,
            envelope.pack_host(ORIGIN, {**HOST, "boot_epoch_ns": HOST["boot_epoch_ns"] + 3}),
        ]
    )
    entries, counts = state_entries(live, r.last_host)
    assert counts == {"origins": 1, "processes": 2, "hashes": 1, "skipped": 0}
    assert EntryParser().feed(MAGIC + entries[0])[0].info == {
        "note": "state", "origins": {ORIGIN: {"kind_drops": {"1": 5}, "env_drops": 0}}
    }  # fmt: skip

    replay, replay_sink, r2 = fresh()
    handle(r2, entries)
    assert replay_sink.lines == []  # context only: nothing logged
    # the same next batch to both: a child of the sleep process, same image (hash known)
    nxt = envelope.pack_batch(
        ORIGIN,
        2,
        exec_rec(12, 11, 7 * 10**9, 6 * 10**9, "/usr/bin/sleep", b"sleep\x002\0", ino=11),
        epoch=7,
        first_record=1,
    )
    r.handle([b"rec", nxt])
    r2.handle([b"rec", nxt])
    created = [x for x in live_sink.lines if "<EventID>1<" in x]
    assert len(created) == 2 == len(live_sink.lines) - 1  # and the drops of HOST's counters
    assert len(replay_sink.lines) == 1
    want = created[-1]
    assert '<Data Name="ParentImage">/usr/bin/sleep</Data>' in want and "SHA256=0001" in want
    assert strip(replay_sink.lines[0]) == strip(want)
    assert replay.stats["gap_records"] == 0 and replay.stats["new_streams"] == 0


def test_no_state_batch_for_an_origin_whose_records_never_came() -> None:
    live, _, r = fresh()
    r.handle([envelope.TOPIC_HOST, envelope.pack_host(ORIGIN, HOST)])
    entries, counts = state_entries(live, r.last_host)
    assert counts["origins"] == 1 and len(entries) == 2  # the note and the host message
    assert [e.kind for e in EntryParser().feed(MAGIC + b"".join(entries))] == [NOTE, STATE]


def test_state_is_bounded() -> None:
    live, _, r = fresh()
    r.handle([envelope.TOPIC_HOST, envelope.pack_host(ORIGIN, HOST)])
    blob = b"".join(
        exec_rec(100 + i, 1, (100 + i) * 10**9, 0, "/usr/bin/x", b"x" * 1000, True) for i in range(50)
    )
    r.handle([b"rec", envelope.pack_batch(ORIGIN, 0, blob)])
    entries, counts = state_entries(live, r.last_host, max_bytes=10_000)
    assert counts["processes"] < 10 and counts["skipped"] == 50 - counts["processes"]
    assert sum(len(e) for e in entries) < 20_000


# -- record clients of a real control socket ---------------------------------------------------------
class Loop:
    """ControlServer + RecordHub polled by a thread, as filterd's main loop does."""

    def __init__(self, path: str) -> None:
        self.changes = 0
        self.states = 0
        self.hub = RecordHub(lambda: {"filterd": "test"}, self._state, self._changed)
        self.server = ControlServer(path, os.getgid(), {}, lambda on: None, self.hub)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _state(self) -> list[bytes]:
        self.states += 1
        return [json_entry(NOTE, {"note": "state", "n": self.states}), frame_entry(STATE, 1, b"host", b"ctx")]

    def _changed(self) -> None:
        self.changes += 1
        self.hub.wants([1, 2] if self.hub.active else [], [])

    def _run(self) -> None:
        while self.running:
            with self.lock:
                self.server.poll()
            time.sleep(0.002)

    def call(self, f: Callable[[], Any]) -> Any:
        with self.lock:
            return f()

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.server.close()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    lp = Loop(str(tmp_path / "filterd.ctl"))
    try:
        yield lp
    finally:
        lp.stop()


class Client:
    def __init__(self, lp: Loop, request: dict[str, Any]) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(5)
        self.s.connect(lp.server.path)
        self.s.sendall(json.dumps(request).encode() + b"\n")
        self.parser = EntryParser()
        self.queue: list[Any] = []

    def next(self) -> Any:
        while not self.queue:
            data = self.s.recv(65536)
            assert data, "connection closed"
            self.queue += self.parser.feed(data)
        return self.queue.pop(0)

    def close(self) -> None:
        self.s.close()


def wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_record_stream_state_loss_and_stop(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = loop.hub
    c = Client(loop, {"cmd": "record", "events": [11]})
    head = c.next()
    assert head.kind == HEAD and head.info["filterd"] == "test" and head.info["extra_events"] == [11]
    assert head.info["kinds"] == [1, 2]  # the subscriptions made for it are in its head already
    assert c.next().info == {"note": "state", "n": 1} and c.next().kind == STATE
    wait(lambda: len(hub.clients) == 1)
    assert hub.active and hub.extra_events() == {11}
    loop.call(lambda: hub.tap(b"rec", b"one"))
    e = c.next()
    assert (e.kind, e.topic, e.body) == (FRAME, b"rec", b"one") and e.time_ns > 0
    # a recorder that falls behind: frames beyond its buffer are dropped, counted, and noted in place
    monkeypatch.setattr(recording, "RECORD_BUFFER", 200)

    def burst() -> None:
        w = hub.clients[0].wbuf
        w += b"\0" * 150  # as if the socket were full
        for _ in range(5):
            hub.tap(b"rec", b"x" * 100)
        del w[-150:]
        hub.tap(b"rec", b"after")

    loop.call(burst)
    assert c.next().info == {"note": "lost", "frames": 5}
    assert c.next().body == b"after"
    assert hub.dropped == 5
    c.s.sendall(b"state\n")
    assert c.next().info == {"note": "state", "n": 2} and c.next().kind == STATE
    c.s.sendall(b"bogus\n" + b"y" * 5000 + b"\n")  # ignored, bounded
    loop.call(lambda: hub.tap(b"host", b"two"))
    assert c.next().body == b"two"
    c.s.sendall(b"stop\n")
    assert c.next().info == {"note": "end", "lost": 5}
    assert c.s.recv(10) == b""  # closed once everything was sent
    wait(lambda: not hub.clients and not hub.active)
    assert hub.describe() == {"clients": 0, "frames": 3, "dropped": 5}
    c.close()


def test_refusals_and_limits(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Client(loop, {"cmd": "record", "events": [4]})
    assert json.loads(c.s.makefile("rb").readline())["error"].startswith("no records make event ids [4]")
    c.close()
    monkeypatch.setattr(recording, "MAX_RECORDERS", 1)
    first = Client(loop, {"cmd": "record"})
    assert first.next().kind == HEAD
    wait(lambda: len(loop.hub.clients) == 1)
    second = Client(loop, {"cmd": "record"})
    assert "at most 1" in json.loads(second.s.makefile("rb").readline())["error"]
    second.close()
    first.close()  # hanging up ends the recording too
    wait(lambda: not loop.hub.active)
    assert loop.changes == 2


def test_a_failing_context_refuses_the_recording_and_never_reaches_the_daemon(tmp_path: Path) -> None:
    def broken() -> list[bytes]:
        raise AttributeError("no such field")

    hub = RecordHub(lambda: {}, broken, lambda: None)

    class C:
        def __init__(self) -> None:
            self.wbuf = bytearray()

    assert "cannot make the recording's context: AttributeError" in hub.start(C(), {})["error"]
    assert not hub.active
    c = C()
    hub.send_state(c)  # a later part: it starts without context, and the note says why
    assert EntryParser().feed(MAGIC + bytes(c.wbuf))[0].info["error"] == "AttributeError: no such field"
