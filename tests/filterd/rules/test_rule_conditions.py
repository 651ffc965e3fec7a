"""The 16 conditions: hypothesis properties against a literal reference written here from the
upstream rules.c, plus the edge cases the upstream unit tests pin down."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.rules.conditions import (
    CONDITION_NAMES,
    CONDITIONS,
    UNKNOWN_CONDITION_HELP,
    compile_condition,
    fold,
    lookup_condition,
    matches,
)

# --- reference implementation (deliberately naive) --------------------------------------------------


def ascii_lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def ascii_upper(s: str) -> str:
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in s)


def utf16_units(s: str) -> list[int]:
    b = s.encode("utf-16-be", "surrogatepass")
    return [b[i] << 8 | b[i + 1] for i in range(0, len(b), 2)]


def wide_strcasecmp(a: str, b: str) -> int:
    ua, ub = utf16_units(ascii_upper(a)), utf16_units(ascii_upper(b))
    for x, y in zip(ua, ub, strict=False):
        if x != y:
            return -1 if x < y else 1
    return (len(ua) > len(ub)) - (len(ua) < len(ub))


def quirk_tokens(v: str) -> list[str]:
    """Walk the value like upstream: each token runs to the next ';'; a zero-length one is compared
    unbounded, i.e. as everything from its start to the end of the value."""
    out, i = [], 0
    while True:
        j = v.find(";", i)
        end = len(v) if j < 0 else j
        out.append(v[i:end] if end > i else v[i:])
        if j < 0:
            return out
        i = j + 1


def reference(cond: str, value: str, field: str) -> bool:
    f, v = ascii_lower(field), ascii_lower(value)
    if cond == "is":
        return f == v
    if cond == "is not":
        return f != v
    if cond == "contains":
        return v in f
    if cond == "contains any":
        return any(t in f for t in quirk_tokens(v))
    if cond == "is any":
        return any(f == t for t in v.split(";"))
    if cond == "contains all":
        return all(t in f for t in quirk_tokens(v))
    if cond == "excludes":
        return v not in f
    if cond == "excludes any":  # code: match when NO token is present
        return not any(t in f for t in quirk_tokens(v))
    if cond == "excludes all":  # code: match when at least one token is absent
        return not all(t in f for t in quirk_tokens(v))
    if cond == "begin with":
        return f[: len(v)] == v
    if cond == "not begin with":
        return f[: len(v)] != v
    if cond == "end with":
        return len(v) <= len(f) and f[len(f) - len(v) :] == v
    if cond == "not end with":
        return not (len(v) <= len(f) and f[len(f) - len(v) :] == v)
    if cond == "less than":
        return wide_strcasecmp(field, value) < 0
    if cond == "more than":
        return wide_strcasecmp(field, value) > 0
    if cond == "image":
        if "\\" in v:
            return f == v
        return f.split("\\")[-1] == v
    raise AssertionError(cond)


# --- properties ------------------------------------------------------------------------------------

ALPHABET = "aAbBzZ_;\\/ -.é\u00c9\u0130\ue000\U0001f600"
short = st.text(alphabet=ALPHABET, max_size=10)


@st.composite
def value_and_field(draw: st.DrawFn) -> tuple[str, str]:
    value = draw(short)
    kind = draw(st.sampled_from(["random", "around", "swapcase", "tokens"]))
    if kind == "random":
        field = draw(short)
    elif kind == "around":
        field = draw(short) + value + draw(short)
    elif kind == "swapcase":
        field = draw(short) + value.swapcase() + draw(short)
    else:
        toks = value.split(";")
        field = draw(short).join(draw(st.permutations(toks)))
    return value, field


@pytest.mark.parametrize("cond", CONDITION_NAMES)
@settings(max_examples=250, deadline=None)
@given(vf=value_and_field())
def test_condition_matches_reference(cond: str, vf: tuple[str, str]) -> None:
    value, field = vf
    assert matches(cond, value, field) == reference(cond, value, field)


@given(s=st.text(max_size=20))
def test_fold_is_ascii_only(s: str) -> None:
    assert fold(s) == ascii_lower(s)


def test_table_is_the_upstream_list() -> None:
    assert CONDITION_NAMES == (
        "is",
        "is not",
        "contains",
        "contains any",
        "is any",
        "contains all",
        "excludes",
        "excludes any",
        "excludes all",
        "begin with",
        "end with",
        "less than",
        "more than",
        "image",
        "not begin with",
        "not end with",
    )
    assert "Expected values are " + ", ".join(CONDITION_NAMES) == UNKNOWN_CONDITION_HELP
    assert set(CONDITIONS) == set(CONDITION_NAMES)


@pytest.mark.parametrize(
    "name,canonical",
    [
        (None, "is"),
        ("", "is"),
        ("Contains", "contains"),
        ("BEGIN WITH", "begin with"),
        ("Is Any", "is any"),
        ("contains ", None),
        ("startswith", None),
        ("İs", None),
    ],
)
def test_lookup_condition(name: str | None, canonical: str | None) -> None:
    c = lookup_condition(name)
    assert (c.name if c else None) == canonical


# --- upstream unit-test edge cases ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cond,value,field,expected",
    [
        # case-insensitive for ASCII only
        ("is", "/USR/BIN/LS", "/usr/bin/ls", True),
        ("is", "É", "é", False),
        ("contains", "ˆ", "xxˆxx", True),
        # less/more than compare strings, upper-case folding
        ("less than", "99", "100", True),
        ("more than", "99", "100", False),
        ("less than", "abc", "abc", False),
        ("more than", "abc", "abc", False),
        ("less than", "a", "_", False),  # '_' (0x5F) sorts after 'A' (0x41) once upper-cased
        ("more than", "a", "_", True),
        ("less than", "\ue000", "\U0001f600", True),  # UTF-16: a surrogate unit sorts below U+E000
        # is any: tokens compared whole; empty tokens never match a non-empty field
        ("is any", "bash;ls", "LS", True),
        ("is any", "bash;ls", "l", False),
        ("is any", "", "-", False),
        ("is any", ";;;;", "-", False),
        ("is any", "a;", "", True),
        # token lists are not trimmed
        ("contains any", "foo; bar", "bar", False),
        ("contains any", "foo; bar", "x bar", True),
        # excludes any / excludes all as the code does them
        ("excludes any", "foo;bar", "foo", False),
        ("excludes any", "foo;bar", "baz", True),
        ("excludes all", "foo;bar", "foo", True),
        ("excludes all", "foo;bar", "foobar", False),
        ("excludes all", "foo;bar", "baz", True),
        # empty-token quirk: compared as the rest of the value
        ("contains all", "a;;b", "ab", False),
        ("contains all", "a;;b", "a;b", True),
        ("contains any", "x;", "anything", True),
        # image: basename after the last backslash, else the whole value; on Linux that is the full path
        ("image", "cmd.exe", "C:\\Windows\\System32\\CMD.EXE", True),
        ("image", "c:\\windows\\system32\\cmd.exe", "C:\\Windows\\System32\\CMD.EXE", True),
        ("image", "system32\\cmd.exe", "C:\\Windows\\System32\\CMD.EXE", False),
        ("image", "bash", "/usr/bin/bash", False),
        ("image", "/usr/bin/bash", "/usr/bin/bash", True),
        # end with / begin with
        ("end with", "longer than field", "field", False),
        ("begin with", "", "x", True),
        ("not end with", "sh", "/bin/bash", False),
        ("not begin with", "/tmp", "/usr/bin/x", True),
    ],
)
def test_condition_edge_cases(cond: str, value: str, field: str, expected: bool) -> None:
    assert matches(cond, value, field) is expected
    assert reference(cond, value, field) is expected


def test_compiled_predicate_takes_folded_field() -> None:
    pred = compile_condition("contains", "BIN")
    assert pred(fold("/USR/BIN/LS"))
    assert not pred("/USR/BIN/LS")  # the caller folds the field value
