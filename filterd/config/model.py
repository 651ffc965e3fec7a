"""Immutable in-memory form of a loaded Sysmon configuration.

Owns the data model shared by the loader (which builds it), the rule engine (which compiles it into
per-event-type matchers), `sysmon -c` style dumps and the linter. Everything is a frozen dataclass so
a loaded config can be handed between threads and swapped atomically on reconfiguration; the only
mutable part is a private cache of compiled matchers.

Rules are kept in upstream's "rule blob" order: event tags in manifest order, then document order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from filterd import schema

if TYPE_CHECKING:
    from filterd.rules.engine import Matcher

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
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def rules_for(self, event_id: int) -> tuple[EventRule, ...]:
        """Event elements that apply to `event_id` (all elements of its tag), blob order."""
        tag = schema.BY_ID[event_id].rule_tag
        if tag is None:
            return ()
        return tuple(r for r in self.rules if r.tag == tag)

    def matcher(self, event_id: int) -> Matcher:
        """The compiled matcher for one event id; compiled once and cached."""
        key = ("matcher", event_id)
        m = self._cache.get(key)
        if m is None:
            from filterd.rules.engine import compile_matcher

            m = compile_matcher(self, event_id)
            self._cache[key] = m
        return m

    def enabled_event_ids(self) -> frozenset[int]:
        """Ids that can produce output under this config (never 4, 16 or 255).

        An id with no rules follows the manifest default (only 1 and 5 log by default); an id with
        rules is enabled unless its rules can never include anything (e.g. a lone empty
        `onmatch="include"` element). Windows-only ids are reported too when rules enable them;
        nothing on Linux produces them.
        """
        ids = self._cache.get("enabled")
        if ids is None:
            ids = frozenset(
                e.id
                for e in schema.EVENT_TYPES
                if e.rule_tag is not None and self.matcher(e.id).constant != (False, "-")
            )
            self._cache["enabled"] = ids
        return ids

    def trim(self, event_id: int, values: Sequence[str]) -> tuple[str, ...]:
        """Apply FieldSizes to rendered values (schema order), after matching (TrimStringToNChars)."""
        plan = self._cache.get(("trim", event_id))
        if plan is None:
            fields = schema.BY_ID[event_id].fields
            plan = tuple((i, self.field_sizes[f]) for i, f in enumerate(fields) if f in self.field_sizes)
            self._cache[("trim", event_id)] = plan
        if not plan:
            return values if isinstance(values, tuple) else tuple(values)
        out = list(values)
        for i, n in plan:
            out[i] = trim_string(out[i], n)
        return tuple(out)


def trim_string(s: str, n: int) -> str:
    """Upstream TrimStringToNChars: longer than n -> "" (n == 0), "-" (n < 3), else n-3 chars + "..."."""
    if len(s) <= n:
        return s
    if n <= 0:
        return ""
    if n < 3:
        return "-"
    return s[: n - 3] + "..."
