"""A literal, slow reference of upstream's matching (upstream rules.c, as pseudo-code) for the rule tests.

Written independently of filterd.rules on purpose: the compiled matcher and the exact evaluator
are both checked against this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from filterd import schema
from filterd.config.model import AND, EXCLUDE, OR, Config, EventRule, Filter
from filterd.rules.conditions import matches


def values_for(event_id: int, fields: Mapping[str, str]) -> tuple[str, ...]:
    """Schema-ordered values; unknown names are an error, missing ones are '-'."""
    names = schema.BY_ID[event_id].fields
    bad = set(fields) - set(names)
    assert not bad, f"fields {bad} not in event {event_id}"
    return tuple(fields.get(n, "-") for n in names)


def reference_decide(config: Config, event_id: int, values: Sequence[str]) -> tuple[bool, str]:
    et = schema.BY_ID[event_id]
    if et.rule_tag is None:
        return True, "-"
    groups = [r for r in config.rules if r.tag == et.rule_tag]
    if not groups:
        return et.default_include, "-"
    field_value = {f: values[i] for i, f in enumerate(et.fields) if f != "RuleName"}
    state = {"name": ""}

    def test(flt: Filter) -> bool:
        if flt.field not in field_value:
            return False  # field not part of this concrete event type
        r = matches(flt.condition, flt.value, field_value[flt.field])
        if r and flt.name:
            state["name"] = flt.name
        return r

    def match_group(g: EventRule) -> bool:
        if not g.items:
            return False
        seen: set[str] = set()
        for i, item in enumerate(g.items):
            if isinstance(item, Filter):
                if item.field in seen:
                    continue
                r = test(item)
                if r:
                    seen.add(item.field)
            else:
                r = match_rule(item.filters, item.relation)
            if g.relation == OR and r:
                return True
            if g.relation == AND and not r:
                later_same = (
                    any(isinstance(o, Filter) and o.field == item.field for o in g.items[i + 1 :])
                    if isinstance(item, Filter)
                    else False
                )
                if later_same:
                    continue
                return False
        return g.relation == AND

    def match_rule(filters: Sequence[Filter], relation: str) -> bool:
        for flt in filters:
            r = test(flt)
            if relation == OR and r:
                return True
            if relation == AND and not r:
                return False
        return relation == AND

    order = [g for g in reversed(groups) if g.onmatch == EXCLUDE] + [
        g for g in reversed(groups) if g.onmatch != EXCLUDE
    ]
    for g in order:
        if match_group(g):
            if g.onmatch == EXCLUDE:
                return False, "-"
            return True, state["name"] or "-"
    if len(groups) == 1:
        return groups[0].onmatch == EXCLUDE, "-"
    return False, "-"


def probe_events(config: Config, event_id: int, limit: int = 24) -> list[tuple[str, ...]]:
    """Events that make the config's own rules fire, built from the config's data only (not by
    the engine): a neutral event; per filter (at most `limit`, spread over the config) an event
    whose field holds that filter's value; per `<Rule>` and per AND element, an event holding all
    its filters' values (values of one field joined by a space)."""
    et = schema.BY_ID[event_id]
    neutral = ("-",) * len(et.fields)
    if et.rule_tag is None:
        return [neutral]

    def probe_value(f: Filter) -> str:
        parts = f.value.split(";")
        # `contains all`: every part in one value; `is any`/`contains any`: the first alternative
        return " ".join(parts) if f.condition.endswith(" all") else parts[0]

    def event(filters: Sequence[Filter]) -> tuple[str, ...]:
        fields: dict[str, list[str]] = {}
        for f in filters:
            if f.field in et.fields and f.field != "RuleName":
                fields.setdefault(f.field, []).append(probe_value(f))
        return values_for(event_id, {k: " ".join(v) for k, v in fields.items()})

    groups = [r for r in config.rules if r.tag == et.rule_tag]
    filters = [f for g in groups for f in g.filters()]
    sets: list[Sequence[Filter]] = [[f] for f in filters]
    sets += [item.filters for g in groups for item in g.items if not isinstance(item, Filter)]
    sets += [g.filters() for g in groups if g.relation == AND]
    if len(sets) > limit:
        step = len(sets) / limit
        sets = [sets[int(i * step)] for i in range(limit)]
    return [neutral, *(event(fs) for fs in sets)]
