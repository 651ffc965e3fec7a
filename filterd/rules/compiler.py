"""Per event type: which fields the rules read, which of them to memoize, and the terms and
OR sets of each event element (upstream's rule group)."""

from __future__ import annotations

from collections.abc import Sequence

from filterd import schema
from filterd.config.model import AND, OR, EventRule, Filter
from filterd.rules.orset import Entry, OrSet
from filterd.rules.terms import Check, Term, all_of, gate_of, guard_of, last_name

MEMOIZE = True  # read when a matcher is compiled; False disables the per-value memo (benchmarks, debugging)

# Fields whose values rarely repeat: memoizing their index results would only churn.
_HIGH_CARDINALITY = frozenset(
    {
        "UtcTime",
        "CreationUtcTime",
        "PreviousCreationUtcTime",
        "ProcessGuid",
        "ParentProcessGuid",
        "SourceProcessGuid",
        "TargetProcessGuid",
        "SourceProcessGUID",
        "TargetProcessGUID",
        "LogonGuid",
        "ProcessId",
        "ParentProcessId",
        "SourceProcessId",
        "TargetProcessId",
        "SourceThreadId",
        "NewThreadId",
        "CommandLine",
        "ParentCommandLine",
        "TargetFilename",
        "SourcePort",
        "TargetObject",
        "Details",
        "QueryName",
        "QueryResults",
        "BpfProgramId",
        "StartAddress",
        "Contents",
        "Hash",
    }
)


class Compiler:
    """Shared state while compiling one event type: field positions, memoizable fields, term cache."""

    def __init__(self, event_id: int, groups: Sequence[EventRule]) -> None:
        fields = schema.BY_ID[event_id].fields
        pos = {f: i for i, f in enumerate(fields) if f != "RuleName"}
        used = sorted({pos[flt.field] for g in groups for flt in g.filters() if flt.field in pos})
        self.slot_of_field = {fields[p]: p for p in used}
        self.memo_slots = frozenset(
            s for f, s in self.slot_of_field.items() if MEMOIZE and f not in _HIGH_CARDINALITY
        )
        self._terms: dict[int, Term] = {}

    def term(self, flt: Filter) -> Term:
        t = self._terms.get(id(flt))
        if t is None:
            t = Term(flt, self.slot_of_field.get(flt.field))
            self._terms[id(flt)] = t
        return t

    def or_entries(self, group: EventRule, rank: int) -> list[tuple[Entry, tuple | None]]:
        """Entries of an OR group; alternatives that can never match are left out."""
        out: list[tuple[Entry, tuple | None]] = []
        for i, item in enumerate(group.items):
            if isinstance(item, Filter):
                subs = [(0, item)]
            elif item.relation == OR:
                subs = list(enumerate(item.filters))
            else:
                terms = [self.term(flt) for flt in item.filters]
                if any(t.slot is None for t in terms):
                    continue
                guard = guard_of(terms)
                entry = Entry((rank, i, 0), False, all_of(terms), last_name(item.filters))
                out.append((entry, gate_of(guard) if guard is not None else None))
                continue
            for j, flt in subs:
                t = self.term(flt)
                if t.slot is None:
                    continue
                gate = gate_of(t)
                exact = gate is not None and t.index.exact
                out.append((Entry((rank, i, j), exact, t.check, flt.name, t), gate))
        return out

    def and_group(self, group: EventRule) -> Check | None:
        """Conjunction of per-field disjunctions and <Rule> items; None when it can never match."""
        if not group.items:
            return None
        by_slot: dict[int | None, list[Term]] = {}
        clauses: list[tuple[int, Check]] = []
        for item in group.items:
            if isinstance(item, Filter):
                by_slot.setdefault(self.term(item).slot, []).append(self.term(item))
                continue
            terms = [self.term(flt) for flt in item.filters]
            if item.relation == AND:
                if any(t.slot is None for t in terms):
                    return None
                clauses.append((len(terms), all_of(terms)))
            else:
                terms = [t for t in terms if t.slot is not None]
                if not terms:
                    return None
                clauses.append((len(terms), self.term_set(terms).as_check()))
        if None in by_slot:
            return None
        for terms in by_slot.values():
            clauses.append((len(terms), self.term_set(terms).as_check()))
        clauses.sort(key=lambda c: c[0])  # cheap clauses first; the result does not depend on order
        checks = [c for _, c in clauses]
        if len(checks) == 1:
            return checks[0]

        def check(f: Sequence[str]) -> bool:
            for c in checks:  # noqa: SIM110 - explicit loop: cheaper than all() + generator here
                if not c(f):
                    return False
            return True

        return check

    def term_set(self, terms: Sequence[Term]) -> OrSet:
        entries = []
        for n, t in enumerate(terms):
            gate = gate_of(t)
            exact = gate is not None and t.index.exact
            entries.append((Entry((n,), exact, t.check, t.filter.name, t), gate))
        return OrSet(entries, self.memo_slots)
