"""A disjunction of filters tested with per-field indexes, turned into generated straight-line code.

Why generated code: hundreds of filters must cost a handful of C-level calls (dict lookups for
`is`/`is any`/`image`, startswith/endswith tuples, one prefix-trie regex for substrings), and at
this scale Python's call overhead dominates. Rule values only ever enter the generated code as
constants (closure variables), never as source text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence

from filterd.rules.conditions import fold
from filterd.rules.terms import FAMILY_RANK, INCLUDED, Check, Decision, Term

_MAX_TRIE_BRANCH_DEPTH = 100  # deeper literal tries are tested word by word (no regex)
_MEMO_CAP = 4096  # distinct values remembered per field before the memo is reset


class Entry:
    """One alternative of an OR set: a filter, one filter of an OR <Rule>, or a whole AND <Rule>."""

    __slots__ = ("key", "exact", "check", "name", "result", "term")

    def __init__(
        self, key: tuple[int, ...], exact: bool, check: Check, name: str, term: Term | None = None
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


def _verify(f: Sequence[str], es: Sequence[Entry]) -> bool:
    for e in es:  # noqa: SIM110 - explicit loop: cheaper than any() + generator here
        if e.check(f):
            return True
    return False


def _store(memo: dict, s: str, r: object) -> object:
    if len(memo) >= _MEMO_CAP:  # bounded: start over rather than track recency
        memo.clear()
    memo[s] = r
    return r


def _resolve(c: list[Entry], f: Sequence[str], generic: Sequence[Entry]) -> Entry | None:
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


class OrSet:
    """A disjunction of entries over the raw values, tested with per-field indexes.

    `any(f)` answers "does any entry match"; `first(f)` returns the matching entry with the lowest
    key (upstream's evaluation order), or None. Both are generated as straight-line Python (one block
    per field) because call overhead dominates at this scale; rule values are only ever passed in as
    constants, never written into the source. For fields whose values repeat (Image, User, ...; see
    `memo_slots`) the per-field index result is memoized in a small bounded dict keyed by the value.
    """

    def __init__(
        self,
        entries: list[tuple[Entry, tuple[str, int, tuple[str, ...]] | None]],
        memo_slots: frozenset[int] = frozenset(),
    ) -> None:
        per: dict[int, dict[str, dict[str, list[Entry]]]] = {}
        generic: list[Entry] = []
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
            per[slot] = dict(sorted(per[slot].items(), key=lambda kv: FAMILY_RANK[kv[0]]))
        self.any: Check = self._gen_any(slots, per)
        collect = self._gen_first(slots, per)
        has_match = self.any

        def first(f: Sequence[str]) -> Entry | None:
            # Collecting every candidate is costly; most events match nothing, which any() proves fast.
            return collect(f) if has_match(f) else None

        self.first: Callable[[list[str]], Entry | None] = first

    # Each generator writes, per field, statements over `s` (the folded value). `hit` is what to do
    # on an exact match, `cand` how to add candidate entries (a tuple-valued expression).

    @staticmethod
    def _family_lines(
        const: Callable[[object], str],
        family: str,
        table: dict[str, list[Entry]],
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
    def _generic_test(const: Callable[[object], str], e: Entry) -> str:
        if e.term is not None and e.term.slot is not None:
            return f"{const(e.term.pred)}(_fold(f[{e.term.slot}]))"
        return f"{const(e.check)}(f)"

    def _gen_any(self, slots: list[int], per: dict) -> Check:
        return self._gen("any", slots, per)

    def _gen_first(self, slots: list[int], per: dict) -> Callable[[list[str]], Entry | None]:
        return self._gen("first", slots, per)

    def as_check(self) -> Check:
        """A plain predicate; a one-entry set becomes that entry's own check."""
        if self.size == 1 and len(self.generic) == 1:
            return self.generic[0].check
        return self.any
