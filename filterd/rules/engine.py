"""Rule engine: include/exclude precedence, AND/OR combination and RuleName, compiled per event type.

Owns how a Config's event elements decide one event (upstream `rules.c
MatchFilterGroup` / `FilterEventRules`). Two implementations of the same semantics live here:

* `ExactEvaluator` walks the rules literally as upstream does (exclude groups in reverse document
  order, then include groups in reverse document order; OR stops at the first match, AND at the
  first failure; plain filters on the same field are OR-ed inside an AND group; the rule name is the
  last non-empty name of any filter that matched on the way, partial matches included). It is the
  executable specification and the slow path for rare RuleName corner cases.
* `Matcher` (what `Config.matcher(id)` returns) gets the same answer fast: filters are indexed per
  field (dict lookups for `is`/`is any`/`image`, startswith/endswith tuples, one prefix-trie regex
  for substrings) and turned into generated straight-line code, so hundreds of filters cost a handful
  of C-level calls; each field value is folded at most once; index results for repetitive fields
  (Image, User, ...) are memoized per value; `<Rule>` aggregates are guarded by their most selective
  filter; all exclude OR-groups are merged into one test; the include side is evaluated first (when
  nothing includes and the fallthrough drops, excludes need not run); a type without rules, or whose
  rules cannot depend on the event, is a constant. Where RuleName could come from an earlier
  partial match (code-derived upstream quirk) the matcher asks the exact evaluator.

`decide(values)` takes the rendered field strings of the event type in schema order and returns
(include?, RuleName) with RuleName "-" when there is none.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence

from filterd import schema
from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, Config, EventRule, Filter, RuleAggregate
from filterd.rules.conditions import CONDITIONS, IndexKey, fold, selectivity

Decision = tuple[bool, str]
Check = Callable[[Sequence[str]], bool]  # over the raw rendered values, schema order

EXCLUDED: Decision = (False, "-")
INCLUDED: Decision = (True, "-")

_FAMILY_RANK = {"eq": 0, "base": 1, "suffix": 2, "prefix": 3, "substr": 4}
_never: Check = lambda f: False  # noqa: E731


# --- compiled terms ------------------------------------------------------------------------------


class _Term:
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
            self.check: Check = _never
        else:
            pred = self.pred

            def check(v: Sequence[str]) -> bool:
                s = v[slot]
                return pred(s.lower() if s.isascii() else fold(s))

            self.check = check


def _all_of(terms: Sequence[_Term]) -> Check:
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


def _last_name(filters: Sequence[Filter]) -> str:
    for flt in reversed(filters):
        if flt.name:
            return flt.name
    return ""


# --- indexed disjunction -------------------------------------------------------------------------


class _Entry:
    """One alternative of an OR set: a filter, one filter of an OR <Rule>, or a whole AND <Rule>."""

    __slots__ = ("key", "exact", "check", "name", "result", "term")

    def __init__(
        self, key: tuple[int, ...], exact: bool, check: Check, name: str, term: _Term | None = None
    ) -> None:
        self.key = key  # evaluation order (lower = evaluated first upstream)
        self.exact = exact  # a gate hit is already a match
        self.check = check  # full test
        self.name = name  # RuleName this alternative sets when it decides ("" = none)
        self.result: Decision = (True, name) if name else INCLUDED
        self.term = term  # the single filter when the entry is one filter (lets generated code inline it)


_by_key = operator.attrgetter("key")


def _trie_regex(words: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any of `words` (non-empty), factored by common prefixes for speed.

    None when the trie is too deep to turn into a regex (adversarial literals); callers then fall
    back to testing the words one by one.
    """
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def pattern(node: dict, depth: int) -> str:
        if depth > _MAX_TRIE_BRANCH_DEPTH:
            raise RecursionError
        out: list[str] = []
        while "" not in node:  # once a word ends here, whatever follows is not needed for "contains"
            keys = sorted(node)
            if len(keys) == 1:  # follow single-child chains iteratively
                out.append(re.escape(keys[0]))
                node = node[keys[0]]
                continue
            out.append("(?:" + "|".join(re.escape(ch) + pattern(node[ch], depth + 1) for ch in keys) + ")")
            break
        return "".join(out)

    try:
        return re.compile(pattern(root, 0))
    except (RecursionError, re.error, OverflowError):
        return None


_MAX_TRIE_BRANCH_DEPTH = 100


def _verify(f: Sequence[str], es: Sequence[_Entry]) -> bool:
    for e in es:  # noqa: SIM110 - explicit loop: cheaper than any() + generator here
        if e.check(f):
            return True
    return False


def _store(memo: dict, s: str, r: object) -> object:
    if len(memo) >= _MEMO_CAP:  # bounded: start over rather than track recency
        memo.clear()
    memo[s] = r
    return r


def _resolve(c: list[_Entry], f: Sequence[str], generic: Sequence[_Entry]) -> _Entry | None:
    c.extend(generic)
    c.sort(key=_by_key)
    for e in c:
        if e.exact or e.check(f):
            return e
    return None


def _substr_search(keys: Sequence[str]) -> Callable[[str], object]:
    """A callable whose result is truthy when any of `keys` is a substring of its argument."""
    if "" in keys:
        return lambda s: True
    rx = _trie_regex(keys)
    if rx is None:
        words = tuple(keys)
        return lambda s: any(map(s.__contains__, words))
    return rx.search


_MEMO_CAP = 4096  # distinct values remembered per field before the memo is reset
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


def _when(cond: str | None, stmt_or_test: str, then: str | None = None) -> str:
    """`if cond: stmt` / `if cond and test: then`, dropping a None condition."""
    if then is None:
        return stmt_or_test if cond is None else f"if {cond}: {stmt_or_test}"
    test = stmt_or_test if cond is None else f"{cond} and {stmt_or_test}"
    return f"if {test}: {then}"


def _codegen(name: str, src: list[str], consts: dict[str, object]) -> Callable:
    """Compile generated source; constants become closure variables (fast LOAD_DEREF, no globals)."""
    params = ", ".join(consts)
    body = "\n".join("    " + line for line in src)
    code = f"def _make({params}):\n{body}\n    return {name}\n"
    ns: dict[str, object] = {}
    exec(code, ns)  # noqa: S102 - generated from our own templates; rule values are passed as constants
    return ns["_make"](**consts)  # type: ignore[operator]


class _OrSet:
    """A disjunction of entries over the raw values, tested with per-field indexes.

    `any(f)` answers "does any entry match"; `first(f)` returns the matching entry with the lowest
    key (upstream's evaluation order), or None. Both are generated as straight-line Python (one block
    per field) because call overhead dominates at this scale; rule values are only ever passed in as
    constants, never written into the source. For fields whose values repeat (Image, User, ...; see
    `memo_slots`) the per-field index result is memoized in a small bounded dict keyed by the value.
    """

    def __init__(
        self,
        entries: list[tuple[_Entry, tuple[str, int, tuple[str, ...]] | None]],
        memo_slots: frozenset[int] = frozenset(),
    ) -> None:
        per: dict[int, dict[str, dict[str, list[_Entry]]]] = {}
        generic: list[_Entry] = []
        for entry, gate in entries:
            if gate is None:
                generic.append(entry)
                continue
            family, slot, keys = gate
            table = per.setdefault(slot, {}).setdefault(family, {})
            for k in keys:
                lst = table.setdefault(k, [])
                if entry not in lst:
                    lst.append(entry)
        self.generic = sorted(generic, key=_by_key)
        self.size = len(entries)
        self.memo_slots = memo_slots
        slots = sorted(per)
        for slot in slots:  # families of a field cheapest first
            per[slot] = dict(sorted(per[slot].items(), key=lambda kv: _FAMILY_RANK[kv[0]]))
        self.any: Check = self._gen_any(slots, per)
        collect = self._gen_first(slots, per)
        has_match = self.any

        def first(f: Sequence[str]) -> _Entry | None:
            # Collecting every candidate is costly; most events match nothing, which any() proves fast.
            return collect(f) if has_match(f) else None

        self.first: Callable[[list[str]], _Entry | None] = first

    # Each generator writes, per field, statements over `s` (the folded value). `hit` is what to do
    # on an exact match, `cand` how to add candidate entries (a tuple-valued expression).

    @staticmethod
    def _family_lines(
        const: Callable[[object], str],
        family: str,
        table: dict[str, list[_Entry]],
        mode: str,
        hit: str,
        on_cand: Callable[[str, str], str],
    ) -> list[str]:
        """Statements testing one index family on `s`: `hit` runs on an exact match (any-mode only),
        `on_cand(cond, var)` builds the statement taking candidate entries `var` when `cond` holds."""
        lines: list[str] = []
        if mode == "any":
            exact = [k for k, es in table.items() if any(e.exact for e in es)]
            rest = {k: [e for e in es if not e.exact] for k, es in table.items()}
            rest = {k: tuple(es) for k, es in rest.items() if es}
        else:
            exact, rest = [], {k: tuple(es) for k, es in table.items()}
        if family in ("eq", "base"):
            var = "s"
            if family == "base":
                lines.append("b = s[s.rfind('\\\\') + 1:]")
                var = "b"
            if exact:
                lines.append(f"if {var} in {const(frozenset(exact))}: {hit}")
            if rest:
                lines.append(f"h = {const(rest)}.get({var})")
                lines.append(on_cand("h is not None", "h"))
        elif family in ("prefix", "suffix"):
            meth = "startswith" if family == "prefix" else "endswith"
            if exact:
                lines.append(f"if s.{meth}({const(tuple(exact))}): {hit}")
            if rest:
                keys = const(tuple(rest))
                lines.append(f"if s.{meth}({keys}):")
                lines.append(f"    for k in filter(s.{meth}, {keys}):")
                lines.append("        " + on_cand(None, f"{const(rest)}[k]"))
        else:
            # one regex over every key of the field; most values match none of them
            lines.append(f"if {const(_substr_search(exact + list(rest)))}(s):")
            if exact and rest:
                lines.append(f"    if {const(_substr_search(exact))}(s): {hit}")
            elif exact:
                lines.append(f"    {hit}")
            if rest:
                lines.append(f"    for k in filter(s.__contains__, {const(tuple(rest))}):")
                lines.append("        " + on_cand(None, f"{const(rest)}[k]"))
        return lines

    def _gen(self, mode: str, slots: list[int], per: dict) -> Callable:
        consts: dict[str, object] = {
            "_verify": _verify,
            "_resolve": _resolve,
            "_store": _store,
            "_fold": fold,
        }

        def const(obj: object) -> str:
            name = f"K{len(consts)}"
            consts[name] = obj
            return name

        helpers: list[str] = []
        body: list[str] = ["c = ()"]
        for slot in slots:
            body.append(f"s = f[{slot}]")
            if slot in self.memo_slots:
                # memoized: a per-field function computes the field's result once per distinct raw value
                memo = const({})
                fn = f"_field{slot}"
                helpers.append(f"def {fn}(raw):")
                helpers.append("    s = raw.lower() if raw.isascii() else _fold(raw)")
                helpers.append("    r = ()")
                for family, table in per[slot].items():
                    for line in self._family_lines(
                        const,
                        family,
                        table,
                        mode,
                        f"return _store({memo}, raw, True)",
                        lambda cond, v: _when(cond, f"r = r + {v}"),
                    ):
                        helpers.append("    " + line)
                helpers.append(f"    return _store({memo}, raw, r)")
                body.append(f"r = {memo}.get(s)")
                body.append(f"if r is None: r = {fn}(s)")
                if mode == "any":
                    body.append("if r is True: return True")
                    body.append("if r and _verify(f, r): return True")
                else:
                    body.append("if r: c = c + r")
                continue
            body.append("s = s.lower() if s.isascii() else _fold(s)")
            for family, table in per[slot].items():
                if mode == "any":
                    body.extend(
                        self._family_lines(
                            const,
                            family,
                            table,
                            mode,
                            "return True",
                            lambda cond, v: _when(cond, f"_verify(f, {v})", "return True"),
                        )
                    )
                else:
                    body.extend(
                        self._family_lines(
                            const, family, table, mode, "", lambda cond, v: _when(cond, f"c = c + {v}")
                        )
                    )
        if mode == "any":
            for e in self.generic:
                body.append(f"if {self._generic_test(const, e)}: return True")
            body.append("return False")
        else:
            body.append("if not c:")
            for e in self.generic:
                body.append(f"    if {self._generic_test(const, e)}: return {const(e)}")
            body.append("    return None")
            body.append(f"return _resolve(list(c), f, {const(tuple(self.generic))})")
        src = helpers + ["def _run(f):"] + ["    " + line for line in body]
        return _codegen("_run", src, consts)

    @staticmethod
    def _generic_test(const: Callable[[object], str], e: _Entry) -> str:
        if e.term is not None and e.term.slot is not None:
            return f"{const(e.term.pred)}(_fold(f[{e.term.slot}]))"
        return f"{const(e.check)}(f)"

    def _gen_any(self, slots: list[int], per: dict) -> Check:
        return self._gen("any", slots, per)

    def _gen_first(self, slots: list[int], per: dict) -> Callable[[list[str]], _Entry | None]:
        return self._gen("first", slots, per)

    def as_check(self) -> Check:
        """A plain predicate; a one-entry set becomes that entry's own check."""
        if self.size == 1 and len(self.generic) == 1:
            return self.generic[0].check
        return self.any


def _gate_of(term: _Term) -> tuple[str, int, tuple[str, ...]] | None:
    if term.index is None or term.slot is None:
        return None
    return (term.index.family, term.slot, term.index.keys)


def _guard(terms: Sequence[_Term]) -> _Term | None:
    """The most selective indexable filter of an AND aggregate (a necessary condition)."""
    best, best_rank = None, None
    for t in terms:
        if t.index is None:
            continue
        rank = (_FAMILY_RANK[t.index.family], not t.index.exact, -min(selectivity(k) for k in t.index.keys))
        if best_rank is None or rank < best_rank:
            best, best_rank = t, rank
    return best


# --- per event type compilation -------------------------------------------------------------------


class _Compiler:
    """Shared state while compiling one event type: field positions, memoizable fields, term cache."""

    def __init__(self, event_id: int, groups: Sequence[EventRule]) -> None:
        fields = schema.BY_ID[event_id].fields
        pos = {f: i for i, f in enumerate(fields) if f != "RuleName"}
        used = sorted({pos[flt.field] for g in groups for flt in g.filters() if flt.field in pos})
        self.slot_of_field = {fields[p]: p for p in used}
        self.memo_slots = frozenset(
            s for f, s in self.slot_of_field.items() if MEMOIZE and f not in _HIGH_CARDINALITY
        )
        self._terms: dict[int, _Term] = {}

    def term(self, flt: Filter) -> _Term:
        t = self._terms.get(id(flt))
        if t is None:
            t = _Term(flt, self.slot_of_field.get(flt.field))
            self._terms[id(flt)] = t
        return t

    def or_entries(self, group: EventRule, rank: int) -> list[tuple[_Entry, tuple | None]]:
        """Entries of an OR group; alternatives that can never match are left out."""
        out: list[tuple[_Entry, tuple | None]] = []
        for i, item in enumerate(group.items):
            if isinstance(item, Filter):
                subs = [(0, item)]
            elif item.relation == OR:
                subs = list(enumerate(item.filters))
            else:
                terms = [self.term(flt) for flt in item.filters]
                if any(t.slot is None for t in terms):
                    continue
                guard = _guard(terms)
                entry = _Entry((rank, i, 0), False, _all_of(terms), _last_name(item.filters))
                out.append((entry, _gate_of(guard) if guard is not None else None))
                continue
            for j, flt in subs:
                t = self.term(flt)
                if t.slot is None:
                    continue
                gate = _gate_of(t)
                exact = gate is not None and t.index.exact
                out.append((_Entry((rank, i, j), exact, t.check, flt.name, t), gate))
        return out

    def and_group(self, group: EventRule) -> Check | None:
        """Conjunction of per-field disjunctions and <Rule> items; None when it can never match."""
        if not group.items:
            return None
        by_slot: dict[int | None, list[_Term]] = {}
        clauses: list[tuple[int, Check]] = []
        for item in group.items:
            if isinstance(item, Filter):
                by_slot.setdefault(self.term(item).slot, []).append(self.term(item))
                continue
            terms = [self.term(flt) for flt in item.filters]
            if item.relation == AND:
                if any(t.slot is None for t in terms):
                    return None
                clauses.append((len(terms), _all_of(terms)))
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

    def term_set(self, terms: Sequence[_Term]) -> _OrSet:
        entries = []
        for n, t in enumerate(terms):
            gate = _gate_of(t)
            exact = gate is not None and t.index.exact
            entries.append((_Entry((n,), exact, t.check, t.filter.name, t), gate))
        return _OrSet(entries, self.memo_slots)


# --- the exact (reference) evaluator --------------------------------------------------------------


class ExactEvaluator:
    """Upstream's algorithm, step by step; slow but the specification (and RuleName fallback)."""

    def __init__(self, event_id: int, groups: Sequence[EventRule], compiler: _Compiler | None = None) -> None:
        self.event_id = event_id
        self.groups = tuple(groups)
        comp = compiler or _Compiler(event_id, groups)
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
    def _plan(group: EventRule, comp: _Compiler) -> list[tuple]:
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
        if self.event_id in _UNFILTERED:
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


_UNFILTERED = frozenset(e.id for e in schema.EVENT_TYPES if e.rule_tag is None)


# --- the fast matcher --------------------------------------------------------------------------------


class Matcher:
    """Compiled rules of one event type. `decide(values)` -> (include?, RuleName or "-")."""

    __slots__ = ("event_id", "constant", "exact", "_exclude", "_include", "_fallthrough", "_leaky")

    def __init__(self, event_id: int, groups: Sequence[EventRule]) -> None:
        self.event_id = event_id
        comp = _Compiler(event_id, groups)
        self.exact = ExactEvaluator(event_id, groups, comp)
        self._fallthrough = self.exact.fallthrough
        self._leaky = _leaky(groups)
        self._exclude: tuple[Check, ...] = ()
        self._include: tuple[tuple[str, object, object], ...] = ()
        # constant: the decision when it does not depend on the event, else None
        self.constant: Decision | None = None
        if event_id in _UNFILTERED:
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
            excl.insert(0, _OrSet(excl_or, comp.memo_slots).as_check())
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
                incl.append((OR, _OrSet(pending, comp.memo_slots), None))
                pending = []
            chk = comp.and_group(g)
            if chk is not None:
                incl.append((AND, chk, (g, _uniform_name(g))))
        if pending:
            incl.append((OR, _OrSet(pending, comp.memo_slots), None))
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


def compile_matcher(config: Config, event_id: int) -> Matcher:
    """Compile the rules of `config` for `event_id` (use Config.matcher, which caches)."""
    if event_id not in schema.BY_ID:
        raise KeyError(f"unknown event id {event_id}")
    return Matcher(event_id, config.rules_for(event_id))


def exact_evaluator(config: Config, event_id: int) -> ExactEvaluator:
    """The literal (slow) evaluator for `event_id`, for tests and `sysmonctl rules test --explain`."""
    if event_id not in schema.BY_ID:
        raise KeyError(f"unknown event id {event_id}")
    return ExactEvaluator(event_id, config.rules_for(event_id))
