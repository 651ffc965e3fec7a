"""`sysmonctl lint`: findings about a config that upstream Sysmon accepts silently.

Owns the checks that go beyond upstream validation, each reported with a line number:

* load notes: what upstream prints and keeps going on (unknown field, missing onmatch) and what it
  silently ignores (unknown elements, unknown option stopping option parsing, DnsLookup, ...);
* rules for Windows-only event types (never fire on Linux);
* filters on fields that have a constant value on Linux (FileVersion ... OriginalFileName, IntegrityLevel,
  host and port names, FileDelete Hashes/IsExecutable/Archived, CallTrace, GrantedAccess), with
  whether the filter then always or never matches;
* `image` values that can never match a Linux path, filters on RuleName;
* duplicate filters and filters shadowed by an earlier filter on the same field (they can never be
  the one that decides, so their RuleName never shows);
* include filters that can never log because an exclude filter covers them (exclude wins);
* event types with several `onmatch="exclude"` elements and no include (upstream then drops every
  event that matches none of them) and lone empty `onmatch="include"` elements (log nothing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from filterd import schema
from filterd.config.errors import ConfigError
from filterd.config.loader import load_config
from filterd.config.model import AND, EXCLUDE, INCLUDE, OR, Config, EventRule, Filter, RuleAggregate
from filterd.rules.conditions import compile_condition, effective_tokens, fold, split_tokens

# Field values that never vary on Linux (upstream's Linux event manifest), per event id.
LINUX_CONSTANT_FIELDS: dict[int, dict[str, str]] = {
    1: {
        "FileVersion": "-",
        "Description": "-",
        "Product": "-",
        "Company": "-",
        "OriginalFileName": "-",
        "IntegrityLevel": "no level",
    },
    3: {"SourceHostname": "-", "DestinationHostname": "-", "SourcePortName": "-", "DestinationPortName": "-"},
    10: {"CallTrace": "-", "GrantedAccess": "0x0"},
    23: {"Hashes": "-", "IsExecutable": "-", "Archived": "-"},
}


@dataclass(frozen=True, slots=True)
class Finding:
    line: int | None
    code: str
    message: str

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line is not None else file
        return f"{where}: {self.code}: {self.message}"


def lint_config(config: Config) -> list[Finding]:
    """All findings for a loaded config, sorted by line."""
    out: list[Finding] = []
    out.extend(_notes(config))
    by_tag: dict[str, list[EventRule]] = {}
    for rule in config.rules:
        by_tag.setdefault(rule.tag, []).append(rule)
    from filterd.events.registry import registry  # what Linux emits: declared by the event modules

    emitted = registry().linux_event_ids
    for tag, rules in by_tag.items():
        ids = [e.id for e in schema.BY_RULE_TAG[tag]]
        linux_ids = [i for i in ids if i in emitted]
        if not linux_ids:
            for r in rules:
                out.append(
                    Finding(
                        r.line,
                        "windows-only-event",
                        f"<{tag}> rules never fire on Linux (Windows-only event type)",
                    )
                )
            continue
        for r in rules:
            out.extend(_filter_checks(r, linux_ids))
            out.extend(_redundancy(r))
        out.extend(_group_checks(tag, rules))
        out.extend(_conflicts(rules))
    out.sort(key=lambda f: (f.line or 0, f.code))
    return out


def lint_file(path: str | os.PathLike[str]) -> tuple[list[str], int]:
    """(output lines, exit code): 0 clean, 1 findings, 2 rejected config."""
    name = os.fspath(path)
    try:
        config = load_config(name)
    except ConfigError as e:
        return [f"{e} [rejected]"], 2
    findings = lint_config(config)
    return [f.format(name) for f in findings], (1 if findings else 0)


# --- individual checks ------------------------------------------------------------------------------

_NOTE_CODES = (
    ("Incorrect field", "unknown-field"),
    ("Error: You need to specifiy the onmatch", "missing-onmatch"),
    ("Error: Can't specify onmatch and default", "onmatch-and-default"),
    ("unknown element", "unknown-element"),
    ("unknown option", "unknown-option"),
    ("Option not implemented on Linux", "windows-only-option"),
)


def _notes(config: Config) -> Iterable[Finding]:
    for note in config.notes:
        code = next((c for prefix, c in _NOTE_CODES if note.message.startswith(prefix)), None)
        if code is None:
            code = "upstream-warning" if note.kind == "warning" else "ignored"
        msg = note.message
        if note.kind == "warning":
            msg = f"upstream prints '{msg}' and accepts the file"
        yield Finding(note.line, code, msg)


def _filters(rule: EventRule) -> Iterable[Filter]:
    yield from rule.filters()


def _filter_checks(rule: EventRule, linux_ids: Sequence[int]) -> Iterable[Finding]:
    for flt in _filters(rule):
        if flt.field == "RuleName":
            yield Finding(flt.line, "rulename-filter", "a filter on RuleName never matches (no value yet)")
            continue
        consts = {LINUX_CONSTANT_FIELDS.get(i, {}).get(flt.field) for i in linux_ids} - {None}
        if len(consts) == 1:
            value = consts.pop()
            hit = compile_condition(flt.condition, flt.value)(fold(value))
            yield Finding(
                flt.line,
                "constant-field",
                f"{flt.field} is always '{value}' on Linux: "
                f"this filter {'always' if hit else 'never'} matches",
            )
        if flt.condition == "image" and "\\" not in flt.value and "/" not in flt.value:
            yield Finding(
                flt.line,
                "image-on-linux",
                f"condition 'image' compares '{flt.value}' with the whole Linux path (no backslash): "
                f"it never matches '/…/{flt.value}'; use 'end with' '/{flt.value}'",
            )


def _containers(rule: EventRule) -> Iterable[tuple[str, list[Filter]]]:
    """Filter lists whose members are alternatives (OR) for the same field."""
    plain = [it for it in rule.items if isinstance(it, Filter)]
    yield (rule.relation if rule.relation == OR else "and-group", plain)
    for it in rule.items:
        if isinstance(it, RuleAggregate):
            yield (it.relation, list(it.filters))


def _redundancy(rule: EventRule) -> Iterable[Finding]:
    for kind, filters in _containers(rule):
        for i, later in enumerate(filters):
            for earlier in filters[:i]:
                if earlier.field != later.field:
                    continue
                if _key(earlier) == _key(later):
                    yield Finding(
                        later.line, "duplicate-filter", f"duplicate of the filter at line {earlier.line}"
                    )
                    break
                if kind != AND and _implies(later, earlier):
                    yield Finding(
                        later.line,
                        "shadowed-filter",
                        f"shadowed by the filter at line {earlier.line}: everything it matches, that one "
                        f"matches first, so this filter never decides (and its RuleName never shows)",
                    )
                    break


def _group_checks(tag: str, rules: list[EventRule]) -> Iterable[Finding]:
    excludes = [r for r in rules if r.onmatch == EXCLUDE]
    if len(excludes) >= 2 and len(excludes) == len(rules):
        lines = ", ".join(str(r.line) for r in excludes)
        yield Finding(
            excludes[-1].line,
            "several-exclude-groups",
            f'{len(excludes)} onmatch="exclude" <{tag}> elements (lines {lines}) and no include: upstream '
            f"then drops every {tag} event that matches none of them, i.e. logs nothing; merge them",
        )
    if len(rules) == 1 and rules[0].onmatch == INCLUDE and not rules[0].items:
        yield Finding(
            rules[0].line, "logs-nothing", f'an empty onmatch="include" <{tag}> logs no {tag} event'
        )


def _conflicts(rules: list[EventRule]) -> Iterable[Finding]:
    """Include filters entirely covered by an exclude filter that excludes on its own."""
    covering: list[Filter] = []
    for r in rules:
        if r.onmatch != EXCLUDE:
            continue
        if r.relation == OR:
            covering.extend(it for it in r.items if isinstance(it, Filter))
            for it in r.items:
                if isinstance(it, RuleAggregate) and (it.relation == OR or len(it.filters) == 1):
                    covering.extend(it.filters)
        elif len(r.items) == 1 and isinstance(r.items[0], Filter):
            covering.append(r.items[0])
    if not covering:
        return
    for r in rules:
        if r.onmatch != INCLUDE:
            continue
        for it in r.items:
            candidates = [it] if isinstance(it, Filter) else list(it.filters)
            if isinstance(it, RuleAggregate) and it.relation == OR:
                continue  # one alternative being excluded does not make the whole rule dead
            for flt in candidates:
                cover = next((c for c in covering if c.field == flt.field and _implies(flt, c)), None)
                if cover is not None:
                    what = "filter" if isinstance(it, Filter) else "<Rule>"
                    yield Finding(
                        flt.line,
                        "include-excluded",
                        f"this include {what} can never log: everything it matches is excluded by the filter "
                        f"at line {cover.line} (exclude wins)",
                    )
                    break


# --- filter algebra (sound, incomplete) -------------------------------------------------------------


def _key(f: Filter) -> tuple[str, str, str]:
    return (f.field, f.condition, fold(f.value))


def _implies(a: Filter, b: Filter) -> bool:
    """True when every value matching `a` also matches `b` (same field assumed)."""
    ca, va = a.condition, fold(a.value)
    cb, vb = b.condition, fold(b.value)
    if (ca, va) == (cb, vb):
        return True
    # `a` as a set of exact values, when it is one
    exact_a: tuple[str, ...] | None = None
    if ca == "is":
        exact_a = (va,)
    elif ca == "is any":
        exact_a = split_tokens(va)
    elif ca == "image" and "\\" in va:
        exact_a = (va,)
    if exact_a is not None:
        pred = compile_condition(cb, b.value)
        return all(pred(v) for v in exact_a)
    if cb == "contains":
        if ca in ("contains", "begin with", "end with"):
            return vb in va
        if ca == "contains all":
            return any(vb in t for t in effective_tokens(va))
    if cb == "contains any":
        toks = effective_tokens(vb)
        if ca in ("contains", "begin with", "end with"):
            return any(t in va for t in toks)
    if cb == "begin with" and ca == "begin with":
        return va.startswith(vb)
    if cb == "end with" and ca == "end with":
        return va.endswith(vb)
    return False
