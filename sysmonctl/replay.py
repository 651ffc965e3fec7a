"""`sysmonctl replay FILE [--config X]`: what config X would have logged from a recording.

The recording (`sysmonctl record`) holds the frames filterd received, so the replay runs the real
filterd code over them: the receiver's frame handling, then the pipeline (streams, process
cache, event builders, rules, FieldSizes, renderer), built from config X (default: the built-in
config). Every part of the recording is read, oldest first. Events are printed on stdout as XML
(one per line, as syslog gets them) or JSON lines; the summary goes to stderr: events written by
type, included and excluded per event type, hits per RuleName, and everything that makes the
answer incomplete: frames the recorder lost, parts rotated away, losses the live monitor had
(its event 255 reports, recomputed), record kinds or hash algorithms that config X needs but
the recording does not hold, and a damaged or cut file (exit status 1).

Nothing is written anywhere else: no sockets, no state directory, an EventRecordID counter that
starts at 0 in memory. What differs from the live log by nature: EventRecordID, TimeCreated (the
replay's clock), Execution ProcessID (the live collector's pid is kept), and events 4 and 16,
which filterd makes itself and a replay does not print.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from filterd.config.errors import ConfigError
from filterd.config.loader import default_config, load_config_bytes
from filterd.config.model import Config
from filterd.pipeline import REGISTRY, Pipeline
from filterd.receiver import Receiver
from filterd.recording import FRAME, HEAD, STATE, apply_state
from filterd.render.json_event import encode_line, render_json
from filterd.rules import rule_set
from filterd.schema import BY_ID
from shared import records

from .record import RecordingFileError, parts, read_part

OWN_EVENTS = (4, 16, 255)  # made by filterd, not decided by the config
_DESCRIPTION = re.compile(r'<Data Name="(ID|Description)">([^<]*)</Data>')


class RecordIds:
    """EventRecordID for a replay: from 0, in memory (filterd's persistent counter is not touched)."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value - 1

    def peek(self) -> int:
        return self.value

    def close(self) -> None:
        pass


class Clock:
    """The pipeline's clock: the arrival time of the frame being replayed (loss summaries and
    collector liveness see the recording's time, not how fast it is replayed)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Out:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written: Counter[int] = Counter()
        self.reports: list[tuple[str, str]] = []  # event 255: (ID, Description)
        self.broken = False
        self.sent = 0
        self.dropped = 0

    def emit(self, line: bytes) -> None:
        if self.broken:
            return
        try:
            self.out.write(line)
        except BrokenPipeError:  # `| head`: stop printing, keep counting
            self.broken = True

    def close(self) -> None:
        if not self.broken:
            try:
                self.out.flush()
            except BrokenPipeError:
                self.broken = True


class XmlOut(_Out):
    def send_many(self, xmls: Sequence[str]) -> None:
        for xml in xmls:
            a = xml.find("<EventID>")
            eid = int(xml[a + 9 : xml.index("<", a + 9)]) if a >= 0 else 0
            if eid in OWN_EVENTS:
                if eid == 255:
                    d = dict(_DESCRIPTION.findall(xml))
                    self.reports.append((d.get("ID", "-"), html.unescape(d.get("Description", "-"))))
                continue
            self.written[eid] += 1
            try:
                data = xml.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                data = xml.encode("utf-8", "replace")
            self.emit(data + b"\n")


class JsonOut(_Out):
    """A ValueSink: renders from the values (send_events), never from XML."""

    def send_events(self, events: Iterable[tuple[Any, ...]]) -> None:
        for etype, values, header, record_id, now_ns in events:
            if etype.id in OWN_EVENTS:
                if etype.id == 255:
                    self.reports.append((values[1], values[2]))
                continue
            self.written[etype.id] += 1
            self.emit(encode_line(render_json(etype, values, header, record_id, now_ns)))


class Summary:
    """What the recording says about itself, gathered while it is replayed."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.frames = 0
        self.state_frames = 0
        self.lost = 0  # frames filterd dropped for the recorder
        self.kinds: set[int] | None = None  # record kinds subscribed throughout
        self.hashes: set[str] | None = None
        self.first_ns = 0
        self.last_ns = 0
        self.recording = ""
        self.parts: list[int] = []
        self.ended = False
        self.head: dict[str, Any] = {}
        self.damage = ""

    def wants(self, kinds: Any, hashes: Any) -> None:
        k = {x for x in kinds if type(x) is int} if isinstance(kinds, list) else set()
        h = {x for x in hashes if isinstance(x, str)} if isinstance(hashes, list) else set()
        self.kinds = k if self.kinds is None else self.kinds & k
        self.hashes = h if self.hashes is None else self.hashes & h


def load(path: str | None) -> Config:
    if not path:
        return default_config()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror}") from None
    return load_config_bytes(data, path)


def replay(
    path: str,
    config_path: str | None = None,
    fmt: str = "xml",
    out: BinaryIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Replay the recording at `path` through config `config_path`; 0, or 1 if the recording is
    damaged (everything before the damage is replayed), 2 if the config or file is unusable."""
    out = out if out is not None else sys.stdout.buffer
    err = err if err is not None else sys.stderr
    try:
        config = load(config_path)
    except ConfigError as e:
        print(f"sysmonctl replay: {e}", file=err)
        return 2
    sink: _Out = JsonOut(out) if fmt == "json" else XmlOut(out)
    clock = Clock()
    pipeline = Pipeline(config, [sink], RecordIds(), state_dir=None, clock=clock)  # type: ignore[arg-type]
    receiver = Receiver([], pipeline)  # no endpoints: no socket; handle() is the live frame path
    summary = Summary()
    files = parts(path)
    try:
        for part in files:
            summary.files.append(str(part))
            for e in read_part(part):
                _entry(e, pipeline, receiver, clock, summary, err)
    except RecordingFileError as e:
        summary.damage = str(e)
    finally:
        receiver.close()
    loss = getattr(pipeline, "loss", None)
    if loss is not None:
        loss.flush(force=True)  # summaries still waiting for their interval
    sink.close()
    report(summary, pipeline, sink, config, config_path, err)
    return 1 if summary.damage else 0


def _entry(
    e: Any, pipeline: Pipeline, receiver: Receiver, clock: Clock, summary: Summary, err: TextIO
) -> None:
    if e.kind in (FRAME, STATE):
        clock.now = e.time_ns / 1e9
        summary.first_ns = summary.first_ns or e.time_ns
        summary.last_ns = max(summary.last_ns, e.time_ns)
        if e.kind == FRAME:
            summary.frames += 1
        else:
            summary.state_frames += 1
        receiver.handle([e.topic, e.body])
        pipeline.tick()
        return
    info = e.info
    if e.kind == HEAD:
        rec, part = info.get("recording"), info.get("part")
        if summary.recording and rec != summary.recording:
            print(f"sysmonctl replay: warning: {summary.files[-1]} belongs to another recording", file=err)
        summary.recording = rec if isinstance(rec, str) else ""
        if type(part) is int:
            summary.parts.append(part)
        if not summary.head:
            summary.head = info
        summary.wants(info.get("kinds"), info.get("hashes"))
        return
    note = info.get("note")
    if note == "state":
        apply_state(pipeline, info)
    elif note == "wants":
        summary.wants(info.get("kinds"), info.get("hashes"))
    elif note == "lost":
        n = info.get("frames")
        summary.lost += n if type(n) is int else 0
    elif note == "end":
        summary.ended = True


def report(
    summary: Summary, pipeline: Pipeline, sink: _Out, config: Config, config_path: str | None, err: TextIO
) -> None:
    def say(text: str) -> None:
        print(text, file=err)

    span = (summary.last_ns - summary.first_ns) / 1e9
    say(f"sysmonctl replay: {len(summary.files)} file(s), {summary.frames} frames over {span:.1f} s, "
        f"config {config_path or '(built-in)'}")  # fmt: skip
    names = {eid: _name(eid) for eid in {*sink.written, *(e for e, _ in getattr(pipeline, "decisions", {}))}}
    total = sum(sink.written.values())
    detail = ", ".join(f"{names[k]} ({k}) {n}" for k, n in sorted(sink.written.items()))
    say(f"  events written: {total}" + (f": {detail}" if detail else ""))
    decisions = getattr(pipeline, "decisions", {})
    ids = sorted({eid for eid, _ in decisions})
    for eid in ids:
        say(f"  {names[eid]} ({eid}): {decisions.get((eid, True), 0)} included, "
            f"{decisions.get((eid, False), 0)} excluded")  # fmt: skip
    say(f"  included {pipeline.stats['included']}, excluded {pipeline.stats['excluded']}")
    if pipeline.rule_hits:
        say("  rule hits (events included, by RuleName)")
        for name, n in sorted(pipeline.rule_hits.items(), key=lambda kv: (-kv[1], kv[0])):
            say(f"    {n:>10}  {name}")
    warn = "sysmonctl replay: warning: "
    if summary.parts and summary.parts[0] > 0:
        say(f"{warn}the recording's first {summary.parts[0]} part(s) were rotated away; it starts later")
    gaps = [b for a, b in zip(summary.parts, summary.parts[1:], strict=False) if b != a + 1]
    if gaps:
        say(f"{warn}parts of the recording are missing (before part {', '.join(map(str, gaps))})")
    if summary.lost:
        say(f"{warn}the recording is incomplete: filterd dropped {summary.lost} frames for the recorder "
            "(it was too slow); events in them are missing here")  # fmt: skip
    waiting = [h for h in pipeline.hosts.values() if getattr(h, "parked", None)]
    if waiting:
        n = sum(len(h.parked) for h in waiting)
        say(f"{warn}{n} batch(es) of {len(waiting)} origin(s) never got their host context (the "
            "recording starts without it?): their records were not replayed")  # fmt: skip
    for ident, text in sink.reports:
        say(f"{warn}the monitor reported {ident}: {text}")
    _missing(summary, config, say)
    if summary.damage:
        say(f"sysmonctl replay: {summary.damage}; the events before that point were replayed")
    elif not summary.ended and summary.files:
        say(f"{warn}the recording has no end mark (recorder killed?); it was replayed as far as it goes")


def _name(eid: int) -> str:
    e = BY_ID.get(eid)
    return (e.rule_tag or e.name) if e is not None else f"event {eid}"


def _missing(summary: Summary, config: Config, say: Any) -> None:
    """Record kinds and hash algorithms config X needs that were not recorded throughout."""
    kinds, hashes = summary.kinds, summary.hashes
    if kinds is None:
        return
    enabled = rule_set(config).enabled
    for k in records.KINDS:
        if k.origin != "bpf" or k.kind in kinds:
            continue
        need = sorted(e for e in REGISTRY.events_of(k.kind) if e in enabled)
        if need:
            say(f"sysmonctl replay: warning: config logs event(s) {need} but the recording has no "
                f"{k.name} records (the running config did not ask for them: record with --events "
                f"{','.join(map(str, need))})")  # fmt: skip
    if 1 in enabled and hashes is not None:
        absent = [a for a in config.hash_algorithms if a != "IMPHASH" and a not in hashes]
        if absent:
            say(f"sysmonctl replay: warning: Hashes lack {', '.join(absent)}: the recording has "
                f"{', '.join(sorted(hashes)) or 'no hashes'}")  # fmt: skip


def cmd_replay(args: argparse.Namespace) -> int:
    if not Path(args.file).exists() and parts(args.file) == [Path(args.file)]:
        print(f"sysmonctl replay: {args.file}: no such recording", file=sys.stderr)
        return 2
    return replay(args.file, args.config, args.format)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="what a config would have logged from a recording (`sysmonctl record`), with rule hits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the recording (its rotated parts FILE.N ... are read too)")
    p.add_argument("--config", help="Sysmon XML config to replay with (default: the built-in one)")
    p.add_argument("--format", choices=("xml", "json"), default="xml", help="event output on stdout")
    p.set_defaults(func=cmd_replay)
