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
"""

from __future__ import annotations

from filterd.config.model import AND, Config, Filter

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
    compound_no = 0
    for rule in config.rules:
        if (rule.tag, rule.onmatch) != previous:
            combine = "And" if rule.relation == AND else "Or"
            lines.append(f" - {rule.tag:<34} onmatch: {rule.onmatch:<10}combine rules using '{combine}'")
            previous = (rule.tag, rule.onmatch)
        for item in rule.items:
            if isinstance(item, Filter):
                lines.append("\t" + _filter_line(item))
                continue
            compound_no += 1
            label = item.name[:32] if item.name else f"{compound_no:04d}"
            combine = "And" if item.relation == AND else "Or"
            lines.append(f"\tCompound Rule {label}   combine using {combine}")
            lines.extend("\t    " + _filter_line(flt) for flt in item.filters)
    return "\n".join(lines) + "\n"


def _filter_line(flt: Filter) -> str:
    return f"{flt.field:<30} filter: {flt.condition:<12} value: '{flt.value}'"
