"""Upstream's rule algorithm (rules.c `MatchFilterGroup` / `FilterEventRules`), step by step.

The executable specification: exclude groups in reverse document order, then include groups in
reverse document order; OR stops at the first match, AND at the first failure; plain filters on
the same field are OR-ed inside an AND group; the rule name is the last non-empty name of any
filter that matched on the way, partial matches included. Slow; the fast matcher
(filterd/rules/matcher.py) asks it only for rare RuleName corner cases.
"""

from __future__ import annotations

from collections.abc import Sequence

from filterd import schema
from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, UNFILTERED_EVENT_IDS, Config, EventRule, Filter
from filterd.rules.compiler import Compiler
from filterd.rules.terms import EXCLUDED, INCLUDED, Check, Decision


class ExactEvaluator:
    """Upstream's algorithm, step by step; slow but the specification (and RuleName fallback)."""

    def __init__(self, event_id: int, groups: Sequence[EventRule], compiler: Compiler | None = None) -> None:
        self.event_id = event_id
        self.groups = tuple(groups)
        comp = compiler or Compiler(event_id, groups)
        self._plans = {id(g): self._plan(g, comp) for g in self.groups}
        self._order = [g for g in reversed(self.groups) if g.onmatch == EXCLUDE] + [
            g for g in reversed(self.groups) if g.onmatch == INCLUDE
        ]
        if not self.groups:
            self.fallthrough = INCLUDED if schema.BY_ID[event_id].default_include else EXCLUDED
        elif len(self.groups) == 1:
            self.fallthrough = INCLUDED if self.groups[0].onmatch == EXCLUDE else EXCLUDED
        else:
            self.fallthrough = EXCLUDED

    @staticmethod
    def _plan(group: EventRule, comp: Compiler) -> list[tuple]:
        """Per item: ("f", field, check, name, later-same-field?) or ("r", relation, [(check, name)])."""
        plan: list[tuple] = []
        items = group.items
        for idx, item in enumerate(items):
            if isinstance(item, Filter):
                later = any(isinstance(o, Filter) and o.field == item.field for o in items[idx + 1 :])
                plan.append(("f", item.field, comp.term(item).check, item.name, later))
            else:
                plan.append(("r", item.relation, [(comp.term(flt).check, flt.name) for flt in item.filters]))
        return plan

    def decide(self, values: Sequence[str]) -> Decision:
        if self.event_id in UNFILTERED_EVENT_IDS:
            return INCLUDED
        f = values
        name = [""]
        for g in self._order:
            if self._match(self._plans[id(g)], g.relation, f, name):
                if g.onmatch == EXCLUDE:
                    return EXCLUDED
                return (True, name[0] or "-")
        return self.fallthrough

    def group_name(self, group: EventRule, f: Sequence[str]) -> str:
        """Name left by evaluating `group` alone (used when it decided an include)."""
        name = [""]
        self._match(self._plans[id(group)], group.relation, f, name)
        return name[0]

    @staticmethod
    def _match(plan: list[tuple], relation: str, f: Sequence[str], name: list[str]) -> bool:
        if not plan:
            return False
        seen: set[str] = set()
        for step in plan:
            if step[0] == "f":
                _, field, check, fname, later = step
                if field in seen:
                    continue  # same field already matched in this group
                r = check(f)
                if r:
                    if fname:
                        name[0] = fname
                    seen.add(field)
            else:
                r = ExactEvaluator._match_rule(step[2], step[1], f, name)
            if relation == OR:
                if r:
                    return True
            elif not r:
                if step[0] == "f" and step[4]:
                    continue  # a later filter on the same field may still satisfy this field
                return False
        return relation == AND

    @staticmethod
    def _match_rule(
        filters: list[tuple[Check, str]], relation: str, f: Sequence[str], name: list[str]
    ) -> bool:
        for check, fname in filters:
            r = check(f)
            if r and fname:
                name[0] = fname
            if relation == OR:
                if r:
                    return True
            elif not r:
                return False
        return relation == AND


def exact_evaluator(config: Config, event_id: int) -> ExactEvaluator:
    """The literal (slow) evaluator for `event_id`, for tests and `sysmonctl rules test --explain`."""
    if event_id not in schema.BY_ID:
        raise KeyError(f"unknown event id {event_id}")
    return ExactEvaluator(event_id, config.rules_for(event_id))
