"""`sysmon -c` style dump of a loaded configuration (reference §3.6, upstream dumpConfiguration.c).

Owns the text layout only; used by `sysmonctl rules dump` and later by `sysmon -c`. Layout, from the
upstream baselines (SysmonForLinux test/rulestest/baseline/*.rules):

     - Field Sizes:                     CommandLine:100,Image:20        (only when set)

    Rule configuration (version 4.90):
     - ProcessCreate                      onmatch: include   combine rules using 'Or'
        Image                          filter: is           value: '/usr/bin/ls'
        Compound Rule DetectSuspiciousProcess   combine using And
                Image                          filter: begin with   value: '/tmp'

Rules are listed in upstream's blob order (manifest order of event tags, then document order);
consecutive event elements with the same tag and onmatch share one header; RuleGroup names are not
printed; values are printed with their original case; `No rules installed` when there are none.

An unnamed compound rule prints upstream's aggregation id, which is not a plain count of `<Rule>`
elements: see `aggregation_ids`.
"""

from __future__ import annotations

from filterd import schema
from filterd.config.model import AND, Config, Filter, RuleAggregate

_OPTION_FMT = " - {:<33}{}"  # value column 36, as in the upstream baselines


def dump_config(config: Config) -> str:
    """The dump text, newline-terminated."""
    lines: list[str] = []
    if config.field_sizes_text is not None and config.field_sizes:
        lines.append(_OPTION_FMT.format("Field Sizes:", config.field_sizes_text))
        lines.append("")
    if not config.rules:
        lines.append("No rules installed")
        return "\n".join(lines) + "\n"
    lines.append(f"Rule configuration (version {config.schema_version}):")
    previous: tuple[str, str] | None = None
    for rule, ids in zip(config.rules, aggregation_ids(config), strict=True):
        if (rule.tag, rule.onmatch) != previous:
            combine = "And" if rule.relation == AND else "Or"
            lines.append(f" - {rule.tag:<34} onmatch: {rule.onmatch:<10}combine rules using '{combine}'")
            previous = (rule.tag, rule.onmatch)
        next_id = iter(ids)
        for item in rule.items:
            if isinstance(item, Filter):
                lines.append("\t" + _filter_line(item))
                continue
            number = next(next_id)
            label = item.name[:32] if item.name else f"{number:04d}"
            combine = "And" if item.relation == AND else "Or"
            lines.append(f"\tCompound Rule {label}   combine using {combine}")
            lines.extend("\t    " + _filter_line(flt) for flt in item.filters)
    return "\n".join(lines) + "\n"


def aggregation_ids(config: Config) -> list[tuple[int, ...]]:
    """Upstream's AggregationId of every `<Rule>` of every event element (one tuple per rule, in order).

    Why not 1, 2, 3...: xml.cpp ApplyConfigurationFile tries an element of a tag shared by several
    event ids (RegistryEvent 12/13/14, PipeEvent 17/18, WmiEvent 19/20/21) as each id of the series in
    manifest order, keeping the first whose field list holds every field used. Each try walks the
    children in order and takes `++aggregationId` for every `<Rule>` it reaches, and a try that meets
    an unknown field is undone (UndoEventAdd) without giving the ids back. So a RegistryEvent element
    with `Details` filters (event 13 only) burns one id for every `<Rule>` before, and including, the
    first one that mentions `Details` when tried as event 12.

    An element no single id of its series can hold (upstream drops it with "Incorrect field") keeps
    the ids of its last try, walked to the end, so the numbers stay increasing.
    """
    counter = 0
    out: list[tuple[int, ...]] = []
    for rule in config.rules:
        series = schema.BY_RULE_TAG[rule.tag]
        ids: list[int] = []
        for n, event_type in enumerate(series):
            last = n == len(series) - 1
            ids = []
            fits = True
            for item in rule.items:
                if isinstance(item, RuleAggregate):
                    counter += 1
                    ids.append(counter)
                fits = _fits(item, event_type.fields)
                if not fits and not last:
                    break
            if fits:
                break
        out.append(tuple(ids))
    return out


def _fits(item: Filter | RuleAggregate, fields: tuple[str, ...]) -> bool:
    if isinstance(item, Filter):
        return item.field in fields
    return all(flt.field in fields for flt in item.filters)


def _filter_line(flt: Filter) -> str:
    return f"{flt.field:<30} filter: {flt.condition:<12} value: '{flt.value}'"
