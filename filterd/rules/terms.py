"""One filter compiled for one event type (`Term`), and the shared vocabulary of the rule engine.

A term knows its field's position in the event's values (schema order), its predicate over the
folded value, and the index key (filterd/rules/conditions.py) that lets an OR set find it by
lookup instead of by test. Everything else in filterd/rules/ is built from terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from filterd.config.model import Filter
from filterd.rules.conditions import CONDITIONS, IndexKey, fold, selectivity

Decision = tuple[bool, str]
Check = Callable[[Sequence[str]], bool]  # over the raw rendered values, schema order

EXCLUDED: Decision = (False, "-")
INCLUDED: Decision = (True, "-")

FAMILY_RANK = {"eq": 0, "base": 1, "suffix": 2, "prefix": 3, "substr": 4}
never: Check = lambda f: False  # noqa: E731


class Term:
    """A filter compiled for one event type: field position (`slot`), predicate, index hint.

    `check(values)` tests the raw rendered values (schema order), folding the one it reads.
    """

    __slots__ = ("filter", "slot", "pred", "index", "check")

    def __init__(self, flt: Filter, slot: int | None) -> None:
        self.filter = flt
        self.slot = slot
        cond = CONDITIONS[flt.condition]
        value = fold(flt.value)
        self.pred = cond.build(value)
        self.index: IndexKey | None = cond.index(value) if cond.index else None
        if slot is None:  # field absent from this concrete event type (or RuleName): NoMatch
            self.check: Check = never
        else:
            pred = self.pred

            def check(v: Sequence[str]) -> bool:
                s = v[slot]
                return pred(s.lower() if s.isascii() else fold(s))

            self.check = check


def all_of(terms: Sequence[Term]) -> Check:
    checks = [t.check for t in terms]
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        c1, c2 = checks
        return lambda f: c1(f) and c2(f)

    def check(f: Sequence[str]) -> bool:
        for c in checks:  # noqa: SIM110 - explicit loop: cheaper than all() + generator here
            if not c(f):
                return False
        return True

    return check


def last_name(filters: Sequence[Filter]) -> str:
    for flt in reversed(filters):
        if flt.name:
            return flt.name
    return ""


def gate_of(term: Term) -> tuple[str, int, tuple[str, ...]] | None:
    if term.index is None or term.slot is None:
        return None
    return (term.index.family, term.slot, term.index.keys)


def guard_of(terms: Sequence[Term]) -> Term | None:
    """The most selective indexable filter of an AND aggregate (a necessary condition)."""
    best, best_rank = None, None
    for t in terms:
        if t.index is None:
            continue
        rank = (FAMILY_RANK[t.index.family], not t.index.exact, -min(selectivity(k) for k in t.index.keys))
        if best_rank is None or rank < best_rank:
            best, best_rank = t, rank
    return best
