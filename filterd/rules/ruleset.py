"""The compiled form of one Config: a matcher per event type, the event types it can log, FieldSizes.

Why apart from the Config: the config is plain data (loaded, dumped, linted, compared); compiling
is the rule engine's job and depends on the config, never the reverse (docs/architecture.md).
`rule_set(config)` compiles once per Config object: filterd's pipeline, its subscriptions and
`sysmonctl rules` all ask for the same one.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from filterd import schema
from filterd.config.model import Config, EventRule
from filterd.rules.matcher import Matcher
from filterd.rules.terms import EXCLUDED

_COMPILED: weakref.WeakKeyDictionary[Config, RuleSet] = weakref.WeakKeyDictionary()


class RuleSet:
    """Matchers are compiled on first use (a config names few of the 30 event types)."""

    def __init__(self, config: Config) -> None:
        # the config's data, not the config: the cache in rule_set() must not keep its key alive
        self._by_tag: dict[str, list[EventRule]] = {}
        for r in config.rules:
            self._by_tag.setdefault(r.tag, []).append(r)
        self._field_sizes = config.field_sizes
        self._matchers: dict[int, Matcher] = {}
        self._trims: dict[int, tuple[tuple[int, int], ...]] = {}
        self._enabled: frozenset[int] | None = None

    def matcher(self, event_id: int) -> Matcher:
        """The compiled matcher for one event id (KeyError for an id the schema does not know)."""
        m = self._matchers.get(event_id)
        if m is None:
            if event_id not in schema.BY_ID:
                raise KeyError(f"unknown event id {event_id}")
            tag = schema.BY_ID[event_id].rule_tag
            groups = self._by_tag.get(tag, []) if tag is not None else []
            m = self._matchers[event_id] = Matcher(event_id, tuple(groups))
        return m

    @property
    def enabled(self) -> frozenset[int]:
        """Ids that can produce output under this config (never 4, 16 or 255).

        An id with no rules follows the manifest default (only 1 and 5 log by default); an id with
        rules is enabled unless its rules can never include anything (e.g. a lone empty
        `onmatch="include"` element). Windows-only ids are reported too when rules enable them;
        nothing on Linux produces them.
        """
        if self._enabled is None:
            self._enabled = frozenset(
                e.id
                for e in schema.EVENT_TYPES
                if e.rule_tag is not None and self.matcher(e.id).constant != EXCLUDED
            )
        return self._enabled

    def trim(self, event_id: int, values: Sequence[str]) -> tuple[str, ...]:
        """Apply FieldSizes to rendered values (schema order), after matching (TrimStringToNChars)."""
        plan = self._trims.get(event_id)
        if plan is None:
            sizes = self._field_sizes
            fields = schema.BY_ID[event_id].fields
            plan = self._trims[event_id] = tuple((i, sizes[f]) for i, f in enumerate(fields) if f in sizes)
        if not plan:
            return values if isinstance(values, tuple) else tuple(values)
        out = list(values)
        for i, n in plan:
            out[i] = trim_string(out[i], n)
        return tuple(out)


def rule_set(config: Config) -> RuleSet:
    """The RuleSet of `config`, compiled once and kept as long as the config lives."""
    rs = _COMPILED.get(config)
    if rs is None:
        rs = _COMPILED[config] = RuleSet(config)
    return rs


def trim_string(s: str, n: int) -> str:
    """Upstream TrimStringToNChars: longer than n -> "" (n == 0), "-" (n < 3), else n-3 chars + "..."."""
    if len(s) <= n:
        return s
    if n <= 0:
        return ""
    if n < 3:
        return "-"
    return s[: n - 3] + "..."
