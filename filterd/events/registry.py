"""Which record kinds feed which Sysmon events: collected from the event modules' declarations.

Why: the wiring used to be spread over hand-kept lists (the pipeline's dispatch table, the list
of events Linux emits, each record kind's event ids), and forgetting one entry failed no test.
Now each `filterd/events/<event>.py` declares, in a module-level `DECLARATIONS` tuple, what it
consumes and produces; this module imports every module of the package and derives the rest:

  Produces(event_id, kind, build)  one Sysmon event made from one record kind. One kind may feed
                                   several events (each through its own rules) and one event may
                                   come from several kinds.
  Tracks(kind, update)             a record kind that feeds filterd's state (process cache, image
                                   hashes, drain markers); it runs before the kind's builders,
                                   for every record, whatever the config logs, and what it
                                   returns (e.g. the cached process) is the builders' `state`.
  Reports(event_id)                an event filterd makes itself (service state, configuration).
  Expires(event_id, expire)        an event made later from state a builder left waiting (a DNS
                                   query never answered): Pipeline.tick() calls expire(host, now)
                                   for every host; it returns the events due and how many waiting
                                   entries were dropped for room since its last call.

Builders return the EventData by field name through `event_data(event_id)`, a constructor made
from the schema (filterd/schema.py), so a field cannot land in its neighbour's place.
tests/filterd/events/test_registry.py fails when a record kind is consumed by nothing.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from filterd import schema
from filterd.state.hosts import HostState
from shared.records import RecordKind

EventData = tuple[str, ...]  # one event's values in schema order; RuleName first, "" until the rules set it
# (host, fixed values as shared.decode returns them, tail strings, options, what the kind's
# Tracks update returned or None) -> EventData, or None when the record holds nothing that can
# be logged (counted as `unparsed_<KIND>`)
Builder = Callable[[HostState, tuple, tuple[bytes, ...], "Options", Any], EventData | None]
Update = Callable[[HostState, tuple, tuple[bytes, ...]], Any]

# CPython compiles a call with more than 15 keyword arguments into a dict and CALL_FUNCTION_EX,
# about five times slower: a constructor takes at most this many required fields.
MAX_REQUIRED_FIELDS = 15


class Options(NamedTuple):
    """What builders take from the config (the rules themselves are applied after building)."""

    hash_algorithms: tuple[str, ...] = ("SHA256",)


@dataclass(frozen=True, slots=True)
class Produces:
    event_id: int
    kind: RecordKind
    build: Builder


@dataclass(frozen=True, slots=True)
class Tracks:
    kind: RecordKind
    update: Update


@dataclass(frozen=True, slots=True)
class Reports:
    event_id: int


@dataclass(frozen=True, slots=True)
class Expires:
    event_id: int
    expire: Callable[[HostState, float], tuple[list[EventData], int]]


Declaration = Produces | Tracks | Reports | Expires


def event_data(
    event_id: int, *, groups: Mapping[str, tuple[str, ...]] | None = None, **defaults: str
) -> Callable[..., EventData]:
    """The constructor of one event type's EventData: keyword-only, one argument per schema field,
    required unless `defaults` gives it a value (RuleName defaults to "", the rules fill it); it
    returns a plain tuple in schema order, which the rules and the renderer index at no cost.

    `groups` names sets of fields passed together as one argument, a tuple made by the
    constructor's attribute of that name (`ProcessCreate.Parent(ParentImage=..., ...)`): for
    events with more than MAX_REQUIRED_FIELDS fields to fill, and for a set that is often one
    constant (an unknown parent)."""
    et = schema.BY_ID[event_id]
    groups = dict(groups or {})
    grouped = {f: (g, i) for g, fs in groups.items() for i, f in enumerate(fs)}
    unknown = (set(defaults) | set(grouped)) - set(et.fields)
    if unknown:
        raise ValueError(f"event {event_id} has no fields {sorted(unknown)}")
    defaults = {"RuleName": "", **defaults} if "RuleName" in et.fields else defaults
    required = [f for f in et.fields if f not in defaults and f not in grouped] + list(groups)
    if len(required) > MAX_REQUIRED_FIELDS:
        raise ValueError(f"event {event_id}: {len(required)} required fields, at most {MAX_REQUIRED_FIELDS}")
    params = [*required, *(f"{f}={defaults[f]!r}" for f in et.fields if f in defaults)]
    values = [f"{grouped[f][0]}[{grouped[f][1]}]" if f in grouped else f for f in et.fields]
    name = et.rule_tag or et.name
    src = [f"def {name}(*, {', '.join(params)}):", f"    return ({', '.join(values)},)"]
    for g, fs in groups.items():
        src += [f"def {g}(*, {', '.join(fs)}):", f"    return ({', '.join(fs)},)"]
    ns: dict[str, Any] = {}
    exec("\n".join(src) + "\n", ns)  # noqa: S102 - names come from the schema table, defaults are repr()ed str
    make = ns[name]
    make.__doc__ = f"EventData of event {event_id} ({et.template}) by field name."
    for g in groups:
        setattr(make, g, ns[g])
    return make


class Registry:
    """Every declaration of the event modules, checked and indexed."""

    def __init__(self, declarations: Iterable[Declaration]) -> None:
        self.produces: tuple[Produces, ...] = ()
        self.tracks: dict[int, Tracks] = {}
        self.reports: frozenset[int] = frozenset()
        self.expires: tuple[Expires, ...] = ()
        reports: set[int] = set()
        seen: set[tuple[int, int]] = set()
        for d in declarations:
            if isinstance(d, Produces):
                if d.event_id not in schema.BY_ID or schema.BY_ID[d.event_id].rule_tag is None:
                    raise ValueError(f"event {d.event_id} is not a filterable Sysmon event")
                if (d.event_id, d.kind.kind) in seen:
                    raise ValueError(f"event {d.event_id} from {d.kind.name} declared twice")
                seen.add((d.event_id, d.kind.kind))
                self.produces += (d,)
            elif isinstance(d, Tracks):
                if d.kind.kind in self.tracks:
                    raise ValueError(f"{d.kind.name} tracked twice")
                self.tracks[d.kind.kind] = d
            elif isinstance(d, Expires):
                self.expires += (d,)
            else:
                reports.add(d.event_id)
        self.reports = frozenset(reports)

    @property
    def consumed_kinds(self) -> frozenset[int]:
        return frozenset(self.tracks) | {p.kind.kind for p in self.produces}

    @property
    def linux_event_ids(self) -> frozenset[int]:
        """Events this project emits on Linux (`sysmon -? config` marks them)."""
        return frozenset(p.event_id for p in self.produces) | self.reports

    def events_of(self, kind: int) -> tuple[int, ...]:
        """The Sysmon events a record kind feeds (none: state only)."""
        return tuple(p.event_id for p in self.produces if p.kind.kind == kind)

    def kinds_for(self, event_ids: Iterable[int]) -> frozenset[int]:
        """Kernel record kinds to switch on for these events: the tracked ones always (the process
        cache needs them whatever is logged), the others when one of their events is."""
        ids = set(event_ids)
        wanted = {k for k, t in self.tracks.items() if t.kind.origin == "bpf"}
        wanted |= {p.kind.kind for p in self.produces if p.kind.origin == "bpf" and p.event_id in ids}
        return frozenset(wanted)

    def dispatch(
        self, enabled: frozenset[int], matcher: Callable[[int], object]
    ) -> dict[int, tuple[Update | None, tuple[tuple[int, Builder, Any], ...]]]:
        """kind -> (state update or None, ((event id, builder, matcher), ...) for the enabled events).
        Every consumed kind is present, so a kind missing here is one nothing handles."""
        out: dict[int, tuple[Update | None, tuple[tuple[int, Builder, Any], ...]]] = {}
        for kind in sorted(self.consumed_kinds):
            track = self.tracks.get(kind)
            builds = tuple(
                (p.event_id, p.build, matcher(p.event_id))
                for p in self.produces
                if p.kind.kind == kind and p.event_id in enabled
            )
            out[kind] = (track.update if track else None, builds)
        return out


@functools.cache
def registry() -> Registry:
    """Every module of filterd.events imported and its DECLARATIONS gathered (once: a function,
    not an import-time constant, because the event modules import this module)."""
    package = importlib.import_module("filterd.events")
    found: list[Declaration] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"filterd.events.{info.name}")
        found.extend(getattr(module, "DECLARATIONS", ()))
    return Registry(found)
