"""The fast matcher: upstream's decision for one event type, from the compiled terms and OR sets.

Same answer as the exact evaluator (filterd/rules/exact.py), fast: each field value is folded at
most once; index results for repetitive fields (Image, User, ...) are memoized per value;
`<Rule>` aggregates are guarded by their most selective filter; all exclude OR-groups are merged
into one test; the include side is evaluated first (when nothing includes and the fallthrough
drops, excludes need not run); a type without rules, or whose rules cannot depend on the event,
is a constant. Where RuleName could come from an earlier partial match (code-derived upstream
quirk) the matcher asks the exact evaluator.

`decide(values)` takes the rendered field strings of the event type in schema order and returns
(include?, RuleName) with RuleName "-" when there is none.
"""

from __future__ import annotations

from collections.abc import Sequence

from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, UNFILTERED_EVENT_IDS, EventRule, RuleAggregate
from filterd.rules.compiler import Compiler
from filterd.rules.exact import ExactEvaluator
from filterd.rules.orset import OrSet
from filterd.rules.terms import EXCLUDED, INCLUDED, Check, Decision


class Matcher:
    """Compiled rules of one event type. `decide(values)` -> (include?, RuleName or "-")."""

    __slots__ = ("event_id", "constant", "exact", "_exclude", "_include", "_fallthrough", "_leaky")

    def __init__(self, event_id: int, groups: Sequence[EventRule]) -> None:
        self.event_id = event_id
        comp = Compiler(event_id, groups)
        self.exact = ExactEvaluator(event_id, groups, comp)
        self._fallthrough = self.exact.fallthrough
        self._leaky = _leaky(groups)
        self._exclude: tuple[Check, ...] = ()
        self._include: tuple[tuple[str, object, object], ...] = ()
        # constant: the decision when it does not depend on the event, else None
        self.constant: Decision | None = None
        if event_id in UNFILTERED_EVENT_IDS:
            self.constant = INCLUDED
            return
        if not groups:
            self.constant = self._fallthrough
            return

        excl_or: list = []
        excl: list[Check] = []
        for g in reversed(groups):
            if g.onmatch != EXCLUDE:
                continue
            if g.relation == OR:
                excl_or.extend(comp.or_entries(g, 0))
            else:
                chk = comp.and_group(g)
                if chk is not None:
                    excl.append(chk)
        if excl_or:
            excl.insert(0, OrSet(excl_or, comp.memo_slots).as_check())
        self._exclude = tuple(excl)

        # include side, evaluation order; consecutive OR groups share one indexed set (ranked)
        incl: list[tuple[str, object, object]] = []
        pending: list = []
        rank = 0
        for g in reversed(groups):
            if g.onmatch != INCLUDE:
                continue
            if g.relation == OR:
                pending.extend(comp.or_entries(g, rank))
                rank += 1
                continue
            if pending:
                incl.append((OR, OrSet(pending, comp.memo_slots), None))
                pending = []
            chk = comp.and_group(g)
            if chk is not None:
                incl.append((AND, chk, (g, _uniform_name(g))))
        if pending:
            incl.append((OR, OrSet(pending, comp.memo_slots), None))
        self._include = tuple(incl)

        if not incl and (not excl or self._fallthrough == EXCLUDED):
            self.constant = self._fallthrough

    def decide(self, values: Sequence[str]) -> Decision:
        """(include?, RuleName) for the rendered field values of this event type in schema order."""
        if self.constant is not None:
            return self.constant
        f = values
        # Include side first: when nothing includes, the excludes cannot change a dropped event, so
        # they are only evaluated for include candidates or when the fallthrough would log.
        for kind, blk, extra in self._include:
            if kind is OR:
                e = blk.first(f)
                if e is None:
                    continue
                for chk in self._exclude:
                    if chk(f):
                        return EXCLUDED  # exclude wins
                if e.name or not self._leaky:
                    return e.result
                return self.exact.decide(values)  # RuleName may come from an earlier partial match
            if blk(f):
                for chk in self._exclude:
                    if chk(f):
                        return EXCLUDED
                group, uniform = extra
                name = uniform if uniform is not None else self.exact.group_name(group, f)
                if name:
                    return (True, name)
                return self.exact.decide(values) if self._leaky else INCLUDED
        if self._fallthrough is EXCLUDED:
            return EXCLUDED
        for chk in self._exclude:
            if chk(f):
                return EXCLUDED
        return self._fallthrough


def _uniform_name(group: EventRule) -> str | None:
    names = {flt.name for flt in group.filters()}
    return names.pop() if len(names) == 1 else None


def _leaky(groups: Sequence[EventRule]) -> bool:
    """Can a named filter match without its group deciding (so its name may surface later)?"""
    for g in groups:
        if g.relation == AND and len(g.items) > 1 and any(flt.name for flt in g.filters()):
            return True
        for item in g.items:
            if (
                isinstance(item, RuleAggregate)
                and item.relation == AND
                and len(item.filters) > 1
                and any(flt.name for flt in item.filters)
            ):
                return True
    return False
