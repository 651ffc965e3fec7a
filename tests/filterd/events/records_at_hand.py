"""Hand-built records and a known host for the event builder tests.

Every expected value in those tests is written out by hand from the inputs here (times from
BOOT_EPOCH_NS, names from USERS, the actor's GUID preset), never taken from rendered output.
`event()` runs a record through the registry's declarations exactly as the pipeline does
(the kind's tracker, then the event's builder) and returns the EventData by field name.
"""

from __future__ import annotations

from filterd import schema
from filterd.events.registry import Options, registry
from filterd.state.hosts import HostState
from filterd.state.process_cache import Process
from shared.decode import decode

ORIGIN = "m/b"
BOOT_EPOCH_NS = 1_700_000_000 * 10**9  # 2023-11-14 22:13:20 UTC
MACHINE_ID = "3d1219c7aa"  # machine_id_from() takes its first 32 bits: 0x3d1219c7
USERS = {0: "root", 1000: "alice", 1001: "bob"}
ACTOR_PID, ACTOR_START = 4242, 2 * 10**9
ACTOR_GUID = "{11111111-2222-3333-4444-555555555555}"
ACTOR_IMAGE = "/usr/bin/actor"
DEFAULT_OPTIONS = Options()


def at(seconds: float) -> int:
    """A CLOCK_BOOTTIME timestamp `seconds` after boot (kernel records carry these)."""
    return int(seconds * 10**9)


def host() -> HostState:
    """A host that knows one running process, the actor (pid 4242, its GUID preset)."""
    h = HostState(ORIGIN)
    h.update({"hostname": "h1", "machine_id": MACHINE_ID, "boot_epoch_ns": BOOT_EPOCH_NS, "users": USERS})
    h.cache.put(
        Process(
            pid=ACTOR_PID,
            start_ns=ACTOR_START,
            start_s=1_700_000_002,
            machine_id=h.machine_id,
            image=ACTOR_IMAGE,
            command_line="actor --run",
            cwd="/srv",
            uid=1000,
            end_code=0xAC,
            _guid=ACTOR_GUID,
        )
    )
    return h


def event(
    event_id: int, rec: bytes, h: HostState | None = None, opts: Options = DEFAULT_OPTIONS
) -> dict[str, str] | None:
    """The EventData `event_id` gets from `rec`, by field name (None: the builder made none)."""
    h = h or host()
    spec, v, strings = decode(rec)
    reg = registry()
    [p] = [p for p in reg.produces if p.event_id == event_id and p.kind is spec]
    track = reg.tracks.get(spec.kind)
    state = track.update(h, v, strings) if track else None
    values = p.build(h, v, strings, opts, state)
    if values is None:
        return None
    fields = schema.BY_ID[event_id].fields
    assert type(values) is tuple and len(values) == len(fields)
    assert all(type(x) is str for x in values), values
    return dict(zip(fields, values, strict=True))
