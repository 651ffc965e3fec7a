"""Immutable in-memory form of a loaded Sysmon configuration.

Owns the data model shared by the loader (which builds it), the rule engine (filterd/rules/, which
compiles it into per-event-type matchers and depends on this module, never the reverse), `sysmon -c`
style dumps and the linter. Everything is a frozen dataclass, plain data, so a loaded config can be
handed between threads and swapped atomically on reconfiguration.

Rules are kept in upstream's "rule blob" order: event tags in manifest order, then document order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from filterd import schema

AND = "and"
OR = "or"
INCLUDE = "include"
EXCLUDE = "exclude"

# Events that bypass filtering entirely (no rule tag): always logged, never configurable.
UNFILTERED_EVENT_IDS = frozenset(e.id for e in schema.EVENT_TYPES if e.rule_tag is None)


@dataclass(frozen=True, slots=True)
class Filter:
    """One field filter, e.g. `<Image condition="end with" name="x">/bash</Image>`."""

    field: str
    condition: str  # canonical lower-case condition name (filterd.rules.conditions.CONDITIONS)
    value: str  # element text, untrimmed, original case (lower-cased only when compiled)
    name: str  # effective rule name: own `name`, else <Rule name>, else RuleGroup name; "" = none
    line: int | None = None


@dataclass(frozen=True, slots=True)
class RuleAggregate:
    """A `<Rule>` compound: its filters combined with its own relation."""

    relation: str  # AND / OR
    name: str  # the Rule's own name attribute ("" = none)
    filters: tuple[Filter, ...]
    line: int | None = None


Item = Filter | RuleAggregate


@dataclass(frozen=True, slots=True)
class EventRule:
    """One event element (`<ProcessCreate onmatch="include">`): upstream's per-event rule group."""

    tag: str  # rule tag (schema rule_tag), e.g. "ProcessCreate", "RegistryEvent"
    onmatch: str  # INCLUDE (log what matches) / EXCLUDE (drop what matches)
    relation: str  # AND / OR, combine of the items
    group_name: str  # enclosing RuleGroup name ("" = none)
    items: tuple[Item, ...]
    line: int | None = None
    position: int = 0  # document order among all event elements

    @property
    def event_ids(self) -> tuple[int, ...]:
        return tuple(e.id for e in schema.BY_RULE_TAG[self.tag])

    def filters(self) -> tuple[Filter, ...]:
        """All filters, flattened in document order."""
        out: list[Filter] = []
        for it in self.items:
            if isinstance(it, Filter):
                out.append(it)
            else:
                out.extend(it.filters)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Note:
    """A located diagnostic produced while loading: what upstream prints, or silently ignores."""

    line: int | None
    message: str
    kind: str  # "warning": upstream prints it and accepts; "ignored": upstream silently ignores


def _empty_sizes() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Config:
    """A validated configuration. Build it with filterd.config.loader, not by hand."""

    source: str  # file name as given
    schema_version: str  # "%.2f", e.g. "4.90"
    hash_algorithms: tuple[str, ...] = ("SHA256",)  # subset of SHA1, MD5, SHA256, IMPHASH in that order
    field_sizes: Mapping[str, int] = field(default_factory=_empty_sizes)  # FieldSizes option
    warnings: tuple[str, ...] = ()  # messages upstream prints but still accepts
    rules: tuple[EventRule, ...] = ()  # blob order: manifest tag order, then document order
    field_sizes_text: str | None = None  # FieldSizes option text as written (for the dump)
    hash_algorithms_text: str | None = None  # HashAlgorithms option text as written
    dns_lookup: str | None = None  # DnsLookup text; accepted, no effect on Linux
    options: Mapping[str, str] = field(default_factory=_empty_sizes)  # every accepted option's raw text
    notes: tuple[Note, ...] = ()  # located diagnostics (warnings and silently ignored content)

    def rules_for(self, event_id: int) -> tuple[EventRule, ...]:
        """Event elements that apply to `event_id` (all elements of its tag), blob order."""
        tag = schema.BY_ID[event_id].rule_tag
        if tag is None:
            return ()
        return tuple(r for r in self.rules if r.tag == tag)
