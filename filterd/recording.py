"""Recording the raw stream filterd receives, for `sysmonctl record` and `sysmonctl replay`.

Why: "what would this config have logged?" can only be answered from the records themselves,
before any rule saw them. filterd copies every frame it receives (topic + msgpack body, as the
collector sent it) to the `record` clients of its control socket; sysmonctl writes them to a
compressed file, and `sysmonctl replay` runs a fresh Pipeline over them with another config.

The byte stream (the same on the control socket and, compressed, in the file) is MAGIC followed
by entries, each `<u8 type><u32 length><payload>`:
  HEAD   JSON: who recorded (filterd version, host, config), the subscriptions in force
  FRAME  `<u64 arrival time ns><u8 topic length>topic body`: a frame as it arrived
  STATE  the same layout: context made by filterd where a recording (or a file of it) starts:
         the last host message of every origin (with the boot epoch filterd keeps) and a batch
         of snapshot records for the image hashes and processes filterd knows, so a replay
         knows the parents and hashes of processes that started before the recording
  NOTE   JSON {"note": ...}: "state" (a state group follows; the kernel drop counters already
         seen, so a replay reports only new drops), "wants" (subscriptions changed), "lost"
         (filterd dropped frames for this client: it was too slow; the recording is incomplete
         there), "end" (the recorder stopped cleanly)

filterd never blocks or grows for a recorder: frames go into the client's bounded buffer
(RECORD_BUFFER); what does not fit is dropped and counted, and a "lost" note goes in before
the next frame that fits, so a replay says where and how much is missing.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from filterd.events.registry import registry
from shared import envelope, records
from shared.decode import encode, split_path

if TYPE_CHECKING:
    from filterd.pipeline import Pipeline

MAGIC = b"SYSMREC\x01"
HEAD, FRAME, STATE, NOTE = 1, 2, 3, 4
ENTRY_NAMES = {HEAD: "head", FRAME: "frame", STATE: "state", NOTE: "note"}
FORMAT = 1
_ENTRY = struct.Struct("<BI")  # type, payload length
_STAMP = struct.Struct("<QB")  # arrival time (ns since the epoch), topic length
MAX_PAYLOAD = (1 << 28) + 4096  # above the largest frame filterd accepts (receiver.MAX_MESSAGE_BYTES)
MAX_JSON = 1 << 20

RECORD_BUFFER = 8 << 20  # bytes queued per record client before frames are dropped
STATE_MAX = 8 << 20  # bytes of process and hash context per state group (more is cut, counted)
MAX_RECORDERS = 4
STATE_BATCH = 512  # records per synthetic batch, as the collector cuts them
ALL_EVENTS = frozenset(p.event_id for p in registry().produces if p.kind.origin == "bpf")


class RecordingError(Exception):
    """A recording that cannot be read on from `offset` (of the decompressed stream)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class Entry(NamedTuple):
    kind: int
    offset: int  # where the entry starts in the decompressed stream
    time_ns: int = 0
    topic: bytes = b""
    body: bytes = b""
    info: dict[str, Any] = {}


def frame_entry(kind: int, time_ns: int, topic: bytes, body: bytes) -> bytes:
    return (
        _ENTRY.pack(kind, _STAMP.size + len(topic) + len(body))
        + _STAMP.pack(time_ns, len(topic))
        + topic
        + body
    )


def json_entry(kind: int, obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, sort_keys=True).encode()
    return _ENTRY.pack(kind, len(data)) + data


class EntryParser:
    """Cuts entries out of a byte stream that arrives in pieces of any size; raises
    RecordingError at the first byte that cannot be a recording."""

    def __init__(self, offset: int = 0) -> None:
        self.buf = bytearray()
        self.offset = offset  # stream offset of buf[0]
        self.magic = False

    @property
    def pending(self) -> int:
        """Bytes of an entry begun but not complete."""
        return len(self.buf)

    def feed(self, data: bytes) -> list[Entry]:
        self.buf += data
        out: list[Entry] = []
        pos = 0
        buf = self.buf
        if not self.magic:
            if len(buf) < len(MAGIC):
                if not MAGIC.startswith(bytes(buf)):
                    raise RecordingError(self.offset, "not a sysmon recording (no magic)")
                return out
            if buf[: len(MAGIC)] != MAGIC:
                raise RecordingError(self.offset, "not a sysmon recording (no magic)")
            self.magic = True
            pos = len(MAGIC)
        try:
            while len(buf) - pos >= _ENTRY.size:
                kind, n = _ENTRY.unpack_from(buf, pos)
                at = self.offset + pos
                if kind not in ENTRY_NAMES:
                    raise RecordingError(at, f"unknown entry type {kind}")
                if n > (MAX_JSON if kind in (HEAD, NOTE) else MAX_PAYLOAD):
                    raise RecordingError(at, f"{ENTRY_NAMES[kind]} entry of {n} bytes is too long")
                end = pos + _ENTRY.size + n
                if end > len(buf):
                    break
                payload = bytes(buf[pos + _ENTRY.size : end])
                out.append(_entry(kind, at, payload))
                pos = end
        finally:
            del buf[:pos]
            self.offset += pos
        return out


def _entry(kind: int, at: int, payload: bytes) -> Entry:
    if kind in (HEAD, NOTE):
        try:
            info = json.loads(payload)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise RecordingError(at, f"{ENTRY_NAMES[kind]} entry is not a JSON object")
        return Entry(kind, at, info=info)
    if len(payload) < _STAMP.size:
        raise RecordingError(at, f"{ENTRY_NAMES[kind]} entry shorter than its stamp")
    t, tlen = _STAMP.unpack_from(payload)
    if _STAMP.size + tlen > len(payload):
        raise RecordingError(at, f"{ENTRY_NAMES[kind]} entry's topic overruns it")
    return Entry(kind, at, t, payload[_STAMP.size : _STAMP.size + tlen], payload[_STAMP.size + tlen :])


# -- the context a recording starts with --------------------------------------------------------
def _path_string(path: str, trunc_flag: int) -> tuple[bytes, int]:
    """A cached path back into the kernel walk's layout (join_path's inverse, '+' included)."""
    flag = 0
    if path.startswith("+"):
        path, flag = path[1:], trunc_flag
    return split_path(path), flag


def process_record(proc: Any) -> bytes:
    """A PROCESS_EXEC snapshot record that makes the pipeline cache `proc` as filterd has it."""
    exe, f_exe = _path_string(proc.image, records.REC_F_EXE_TRUNC)
    cwd, f_cwd = _path_string(proc.cwd, records.REC_F_CWD_TRUNC)
    args = proc.command_line.encode("utf-8", "surrogateescape")[: records.ARGS_MAX_BYTES - 1]
    if len(exe) > records.PATH_MAX_BYTES or len(cwd) > records.PATH_MAX_BYTES:
        raise ValueError("path too long")
    return encode(
        records.PROCESS_EXEC,
        (exe, cwd, args),
        flags=records.REC_F_SNAPSHOT | records.REC_F_NO_TTY | f_exe | f_cwd,
        time_ns=proc.start_ns,
        pid=proc.pid,
        tid=proc.pid,
        uid=proc.uid,
        start_ns=proc.start_ns,
        end_code=proc.end_code,
    )


def hash_record(identity: tuple[int, int, int], algos: int, digests: bytes) -> bytes:
    dev, ino, ctime = identity
    return encode(records.IMAGE_HASH, (digests,), exe_dev=dev, exe_ino=ino, exe_ctime=ctime, algos=algos)


def _processes(cache: Any) -> list[Any]:
    # ProcessCache has no public iteration; its dict is the one source of what filterd knows
    procs = getattr(cache, "_by_pid", None)
    return sorted(procs.values(), key=lambda p: p.start_ns) if isinstance(procs, dict) else []


def state_entries(
    pipeline: Pipeline, last_host: dict[str, bytes], max_bytes: int = STATE_MAX
) -> tuple[list[bytes], dict[str, int]]:
    """The entries that let a replay start here: a "state" note, then per origin its last host
    message and its image hashes and processes as unnumbered snapshot records, in a batch placed
    at the stream's current position (no gap, no duplicate). Returns (entries, counts)."""
    now = time.time_ns()
    counts = {"origins": 0, "processes": 0, "hashes": 0, "skipped": 0}
    streams: dict[str, Any] = {}
    for origin in last_host:
        s = pipeline.streams.streams.get(origin)
        if s is not None:
            streams[origin] = {"kind_drops": {str(k): v for k, v in s.kind_drops.items()},
                               "env_drops": s.env_drops}  # fmt: skip
    out = [json_entry(NOTE, {"note": "state", "origins": streams})]
    size = 0
    for origin, body in last_host.items():
        h = pipeline.hosts.get(origin)
        if h is None:
            continue
        try:
            msg = envelope.unpack_host(body)
        except Exception:  # noqa: BLE001  stored only after it was accepted; never fatal here
            continue
        ctx = dict(msg.context)
        if h.boot_epoch_ns:
            ctx["boot_epoch_ns"] = h.boot_epoch_ns  # the one filterd kept (GUIDs, UtcTime)
        out.append(frame_entry(STATE, now, envelope.TOPIC_HOST, envelope.pack_host(origin, ctx)))
        counts["origins"] += 1
        s = pipeline.streams.streams.get(origin)
        if s is None or not s.known:
            continue  # nothing of it was handled yet, so nothing is known of it either
        recs = [hash_record(k, a, d) for k, (a, d) in list(h.image_hashes.items())]
        counts["hashes"] += len(recs)
        for p in _processes(h.cache):
            try:
                rec = process_record(p)
            except (ValueError, struct.error, UnicodeError):
                counts["skipped"] += 1
                continue
            if size + len(rec) > max_bytes:
                counts["skipped"] += 1
                continue
            size += len(rec)
            recs.append(rec)
            counts["processes"] += 1
        for i in range(0, len(recs), STATE_BATCH):
            body = envelope.pack_batch(
                origin, max(0, s.next_seq - 1), b"".join(recs[i : i + STATE_BATCH]), s.env_drops, s.epoch,
                s.next_record,
            )  # fmt: skip
            out.append(frame_entry(STATE, now, envelope.TOPIC_RECORDS, body))
    return out, counts


def apply_state(pipeline: Pipeline, info: dict[str, Any]) -> None:
    """The kernel drop counters the live filterd had already reported when the state was made:
    the replay then reports only drops that happened during the recording."""
    origins = info.get("origins")
    if not isinstance(origins, dict):
        return
    for origin, st in origins.items():
        if not isinstance(origin, str) or not isinstance(st, dict):
            continue
        s = pipeline.streams.get(origin)
        kinds = st.get("kind_drops")
        if isinstance(kinds, dict):
            s.kind_drops = {
                int(k): v for k, v in kinds.items() if isinstance(k, str) and k.isdecimal() and type(v) is int
            }
        if type(st.get("env_drops")) is int:
            s.env_drops = st["env_drops"]


def parse_events(value: Any) -> frozenset[int]:
    """The `events` of a record request: "all", or a list of Sysmon event ids. Raises ValueError."""
    if value is None:
        return frozenset()
    if value == "all":
        return ALL_EVENTS
    if not isinstance(value, list) or len(value) > 256 or not all(type(v) is int for v in value):
        raise ValueError('"events" must be "all" or a list of event ids')
    unknown = sorted(set(value) - ALL_EVENTS)
    if unknown:
        raise ValueError(f"no records make event ids {unknown} (known: {sorted(ALL_EVENTS)})")
    return frozenset(value)


# -- the filterd side -------------------------------------------------------------------------
class RecordHub:
    """Feeds every `record` client of the control socket (filterd/control.py), from the main
    loop. `head()` describes the daemon, `state()` makes the state group (state_entries), and
    `changed()` is called when the clients or the events they ask for change (the daemon then
    installs `tap` in the receiver and subscribes to what they want)."""

    def __init__(
        self,
        head: Callable[[], dict[str, Any]],
        state: Callable[[], list[bytes]],
        changed: Callable[[], None],
    ) -> None:
        self.head = head
        self.state = state
        self.changed = changed
        self.clients: list[Any] = []  # filterd.control._Client
        self.events: dict[int, frozenset[int]] = {}  # id(client) -> extra events it asked for
        self.kinds: tuple[int, ...] = ()
        self.hashes: tuple[str, ...] = ()
        self.frames = 0  # frames queued, over all clients
        self.dropped = 0  # frames dropped because a client was too slow
        self.started = 0

    def extra_events(self) -> frozenset[int]:
        return frozenset().union(*self.events.values()) if self.events else frozenset()

    def start(self, c: Any, req: dict[str, Any]) -> dict[str, Any] | None:
        """A new record client: None when it is streaming, else the error reply."""
        if len(self.clients) >= MAX_RECORDERS:
            return {"ok": False, "error": f"at most {MAX_RECORDERS} recordings at once"}
        try:
            events = parse_events(req.get("events"))
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        try:
            state = self.state()
        except Exception as e:  # noqa: BLE001  a recording must never stop the daemon
            return {"ok": False, "error": f"cannot make the recording's context: {type(e).__name__}: {e}"}
        c.record = True
        self.events[id(c)] = events
        self.started += 1
        self.changed()  # subscribes to the extra events; wants() notes them in the other recordings
        head = {"format": FORMAT, **self.head(), "kinds": list(self.kinds), "hashes": list(self.hashes)}
        c.wbuf += MAGIC + json_entry(HEAD, {**head, "extra_events": sorted(events)})
        for e in state:
            c.wbuf += e
        self.clients.append(c)
        return None

    @property
    def active(self) -> bool:
        """Some client records (or is being set up): the receiver must call tap()."""
        return bool(self.events)

    def send_state(self, c: Any) -> None:
        """The state group, whole, whatever the buffer holds (it is bounded by STATE_MAX)."""
        try:
            state = self.state()
        except Exception as e:  # noqa: BLE001  the part then starts without context, and says why
            state = [json_entry(NOTE, {"note": "state", "error": f"{type(e).__name__}: {e}"})]
        for e in state:
            c.wbuf += e

    def wants(self, kinds: Iterable[int], hashes: Iterable[str]) -> None:
        """The daemon's subscriptions now; a change is noted in every recording."""
        kinds, hashes = tuple(sorted(kinds)), tuple(sorted(hashes))
        if (kinds, hashes) == (self.kinds, self.hashes):
            return
        self.kinds, self.hashes = kinds, hashes
        self.note({"note": "wants", "kinds": list(kinds), "hashes": list(hashes)})

    def note(self, obj: dict[str, Any]) -> None:
        e = json_entry(NOTE, obj)
        for c in self.clients:
            c.wbuf += e

    def tap(self, topic: bytes, body: bytes) -> None:
        """Receiver hook: one frame as it arrived, to every client that has room."""
        size = _ENTRY.size + _STAMP.size + len(topic) + len(body)
        head = _ENTRY.pack(FRAME, size - _ENTRY.size) + _STAMP.pack(time.time_ns(), len(topic))
        for c in self.clients:
            if len(c.wbuf) + size > RECORD_BUFFER:
                c.dropped += 1
                self.dropped += 1
                continue
            self.catch_up(c)
            c.wbuf += head
            c.wbuf += topic
            c.wbuf += body
            self.frames += 1

    def catch_up(self, c: Any) -> None:
        """Note the frames a client lost, before anything after them."""
        if c.dropped > c.reported:
            c.wbuf += json_entry(NOTE, {"note": "lost", "frames": c.dropped - c.reported})
            c.reported = c.dropped

    def request(self, c: Any, line: bytes) -> None:
        """A line from a record client: "state" (a new file begins) or "stop"."""
        if line == b"state":
            self.catch_up(c)
            self.send_state(c)
        elif line == b"stop":
            self.catch_up(c)
            c.wbuf += json_entry(NOTE, {"note": "end", "lost": c.dropped})
            self.remove(c)
            c.done = True  # the control server closes it once everything is sent

    def remove(self, c: Any) -> None:
        if c in self.clients:
            self.clients.remove(c)
        if self.events.pop(id(c), None) is not None:
            self.changed()

    def describe(self) -> dict[str, int]:
        return {"clients": len(self.clients), "frames": self.frames, "dropped": self.dropped}
