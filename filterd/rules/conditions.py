"""The 16 Sysmon filter conditions: one table, condition name -> compiled predicate.

Owns what a single `<Field condition="...">value</Field>` means (upstream
`rules.c MatchFilterOnSpecificRule`). Everything else (groups, include/exclude, RuleName) is in
exact.py and matcher.py. Conventions, exactly as upstream:

* comparisons are case-insensitive for ASCII letters only: the rule value is folded once at compile
  time, the field value once per event (`fold`), and predicates compare folded strings;
* `;` token lists are split without trimming; for `contains any/all` and `excludes any/all` an empty
  token is compared "unbounded", i.e. as the rest of the value string from that token on (upstream
  passes a zero length, meaning "whole string", to its bounded compare);
* `less than` / `more than` compare whole strings lexicographically after upper-case folding, by UTF-16
  code unit (upstream `WideStrcasecmp`), so "100" < "99" and "_" sorts after letters;
* `image` compares with the part after the last backslash when the value has no backslash: on Linux
  paths this is plain equality with the full path.

Besides the predicate, each condition can describe an index key (`IndexKey`) that the engine uses
to test many filters at once (dict lookups, startswith/endswith tuples, one regex for substrings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

Predicate = Callable[[str], bool]


class IndexKey(NamedTuple):
    """How a filter can be pre-selected: `family` with `keys`; `exact` when a key hit is a match.

    Families: "eq" (field == key), "base" (part after the last backslash == key), "prefix",
    "suffix", "substr". A filter with several keys matches when any key hits.
    """

    family: str
    keys: tuple[str, ...]
    exact: bool


def fold(s: str) -> str:
    """ASCII-only lower-casing, as upstream (non-ASCII letters keep their case)."""
    if s.isascii():
        return s.lower()
    # bytes.lower() only touches A-Z; surrogatepass keeps lone surrogates round-tripping.
    return s.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def _upper(s: str) -> str:
    if s.isascii():
        return s.upper()
    return s.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass")


def _wide_cmp(a: str, b: str) -> int:
    """strcasecmp with upper-case folding over UTF-16 code units: <0, 0, >0."""
    a, b = _upper(a), _upper(b)
    if not (a.isascii() and b.isascii()):
        # Python orders by code point; UTF-16 orders surrogates (non-BMP) below U+E000..U+FFFF.
        a_units = a.encode("utf-16-be", "surrogatepass")
        b_units = b.encode("utf-16-be", "surrogatepass")
        return (a_units > b_units) - (a_units < b_units)
    return (a > b) - (a < b)


def split_tokens(value: str) -> tuple[str, ...]:
    """`;` tokens, untrimmed, empty ones kept (used by `is any`)."""
    return tuple(value.split(";"))


def effective_tokens(value: str) -> tuple[str, ...]:
    """Tokens as the substring conditions see them: an empty token stands for the rest of the value."""
    out: list[str] = []
    start = 0
    for tok in value.split(";"):
        out.append(tok if tok else value[start:])
        start += len(tok) + 1
    return tuple(out)


# --- predicate builders: folded rule value -> predicate over the folded field value -------------


def _is(v: str) -> Predicate:
    return v.__eq__


def _is_not(v: str) -> Predicate:
    return v.__ne__


def _contains(v: str) -> Predicate:
    return lambda f: v in f


def _contains_any(v: str) -> Predicate:
    toks = effective_tokens(v)
    return lambda f: any(map(f.__contains__, toks))


def _is_any(v: str) -> Predicate:
    return frozenset(split_tokens(v)).__contains__


def _contains_all(v: str) -> Predicate:
    toks = effective_tokens(v)
    return lambda f: all(map(f.__contains__, toks))


def _excludes(v: str) -> Predicate:
    return lambda f: v not in f


def _excludes_any(v: str) -> Predicate:
    # Upstream code (and unit test): match when NO token is present; its help text says otherwise.
    toks = effective_tokens(v)
    return lambda f: not any(map(f.__contains__, toks))


def _excludes_all(v: str) -> Predicate:
    # Upstream code (and unit test): match when at least one token is absent.
    toks = effective_tokens(v)
    return lambda f: not all(map(f.__contains__, toks))


def _begin_with(v: str) -> Predicate:
    return lambda f: f.startswith(v)


def _end_with(v: str) -> Predicate:
    return lambda f: f.endswith(v)


def _not_begin_with(v: str) -> Predicate:
    return lambda f: not f.startswith(v)


def _not_end_with(v: str) -> Predicate:
    return lambda f: not f.endswith(v)


def _less_than(v: str) -> Predicate:
    return lambda f: _wide_cmp(f, v) < 0


def _more_than(v: str) -> Predicate:
    return lambda f: _wide_cmp(f, v) > 0


def _image(v: str) -> Predicate:
    if "\\" in v:
        return v.__eq__
    return lambda f: f[f.rfind("\\") + 1 :] == v


# --- index hints ---------------------------------------------------------------------------------

# Characters ordered from most to least common in Linux event strings (paths, command lines);
# anything not listed counts as rarest. Only a heuristic for choosing index keys: never semantics.
COMMON_CHARS = " /etaoinsrlcudmp.-_hbgfy0123456789wvk=:,x+@jqz"


def rarity(ch: str) -> int:
    """0 for the most common character in event strings, higher for rarer ones."""
    i = COMMON_CHARS.find(ch)
    return len(COMMON_CHARS) if i < 0 else i


def selectivity(key: str) -> int:
    """How unlikely `key` is to occur in an event value (higher = more selective)."""
    return sum(rarity(ch) for ch in key)


# ---------------------------------------------------------------------------------


def _ix(family: str, exact: bool = True) -> Callable[[str], IndexKey]:
    return lambda v: IndexKey(family, (v,), exact)


def _ix_image(v: str) -> IndexKey:
    return IndexKey("eq" if "\\" in v else "base", (v,), True)


def _ix_is_any(v: str) -> IndexKey:
    return IndexKey("eq", tuple(dict.fromkeys(split_tokens(v))), True)


def _ix_contains_any(v: str) -> IndexKey:
    return IndexKey("substr", tuple(dict.fromkeys(effective_tokens(v))), True)


def _ix_contains_all(v: str) -> IndexKey:
    # Any one token is a necessary condition; take the one least likely to occur in an event.
    return IndexKey("substr", (max(effective_tokens(v), key=selectivity),), False)


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of the condition table."""

    name: str
    build: Callable[[str], Predicate]  # folded rule value -> predicate(folded field value)
    index: Callable[[str], IndexKey] | None  # folded rule value -> index hint (None: test one by one)


# Upstream order (the order of the "Expected values are ..." message).
CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("is", _is, _ix("eq")),
        Condition("is not", _is_not, None),
        Condition("contains", _contains, _ix("substr")),
        Condition("contains any", _contains_any, _ix_contains_any),
        Condition("is any", _is_any, _ix_is_any),
        Condition("contains all", _contains_all, _ix_contains_all),
        Condition("excludes", _excludes, None),
        Condition("excludes any", _excludes_any, None),
        Condition("excludes all", _excludes_all, None),
        Condition("begin with", _begin_with, _ix("prefix")),
        Condition("end with", _end_with, _ix("suffix")),
        Condition("less than", _less_than, None),
        Condition("more than", _more_than, None),
        Condition("image", _image, _ix_image),
        Condition("not begin with", _not_begin_with, None),
        Condition("not end with", _not_end_with, None),
    )
}

CONDITION_NAMES: tuple[str, ...] = tuple(CONDITIONS)
DEFAULT_CONDITION = "is"

UNKNOWN_CONDITION_HELP = "Expected values are " + ", ".join(CONDITION_NAMES)


def lookup_condition(name: str | None) -> Condition | None:
    """Condition for an attribute value: absent/empty means `is`, names match case-insensitively."""
    if not name:
        return CONDITIONS[DEFAULT_CONDITION]
    return CONDITIONS.get(fold(name))


def compile_condition(condition: str, value: str) -> Predicate:
    """Predicate over the folded field value for `condition` (a canonical name) and a raw rule value."""
    return CONDITIONS[condition].build(fold(value))


def matches(condition: str, value: str, field_value: str) -> bool:
    """Convenience one-shot test (not for the hot path)."""
    return compile_condition(condition, value)(fold(field_value))
