"""`sysmonctl rules test|dump` and `sysmonctl lint`: offline tools for Sysmon configs.

Owns the command-line side of the config/rule engine:

* `rules test CONFIG EVENTS.jsonl` reads events as JSON lines (`{"EventID": 1, "Image": "...", ...}`,
  missing fields are `-`) and prints, for each, whether the config logs it and with which RuleName;
* `rules dump CONFIG` prints the rule configuration like upstream `sysmon -c`;
* `lint CONFIG` reports problems upstream accepts silently; exit 0 clean, 1 findings, 2 rejected.

sysmonctl/cli.py calls `add_subcommands(subparsers)`; every handler returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from filterd import schema
from filterd.config.dump import dump_config
from filterd.config.errors import ConfigError
from filterd.config.lint import lint_file
from filterd.config.loader import load_config
from filterd.config.model import Config
from filterd.rules import rule_set


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register `rules` (with `test` and `dump`) and `lint` on a sysmonctl subparsers object."""
    rules = subparsers.add_parser("rules", help="test or dump a Sysmon rule configuration offline")
    rsub = rules.add_subparsers(dest="rules_command", required=True)

    t = rsub.add_parser("test", help="decide JSON-lines events with a config: include/exclude and RuleName")
    t.add_argument("config", help="Sysmon XML configuration file")
    t.add_argument("events", help="events as JSON lines ('-' for stdin)")
    t.add_argument("--json", action="store_true", help="print one JSON object per event")
    t.set_defaults(func=cmd_rules_test)

    d = rsub.add_parser("dump", help="print the rule configuration like `sysmon -c`")
    d.add_argument("config", help="Sysmon XML configuration file")
    d.set_defaults(func=cmd_rules_dump)

    lint = subparsers.add_parser("lint", help="report config problems (exit 0 clean, 1 findings, 2 rejected)")
    lint.add_argument("config", help="Sysmon XML configuration file")
    lint.set_defaults(func=cmd_lint)


def _load(path: str, err: TextIO) -> Config | None:
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return None
    for w in config.warnings:
        print(f"warning: {path}: {w}", file=err)
    return config


def event_values(event: Mapping[str, object], event_id: int) -> tuple[str, ...]:
    """Rendered field values in schema order from a JSON event (flat, or with an EventData object)."""
    data = event.get("EventData")
    source: Mapping[str, object] = data if isinstance(data, Mapping) else event
    return tuple(_render(source.get(name)) for name in schema.BY_ID[event_id].fields)


def _render(v: object) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def decide_events(config: Config, lines: Iterable[str], out: TextIO, err: TextIO, as_json: bool) -> int:
    """Decide every JSON line; returns 0, or 1 when some line could not be decided."""
    status = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
            event_id = int(event["EventID"])
            if event_id not in schema.BY_ID:
                raise ValueError(f"unknown EventID {event_id}")
        except (ValueError, KeyError, TypeError) as e:
            detail = "no EventID" if isinstance(e, KeyError) else str(e)
            print(f"error: events line {lineno}: {detail}", file=err)
            status = 1
            continue
        include, rule_name = rule_set(config).matcher(event_id).decide(event_values(event, event_id))
        if as_json:
            out.write(
                json.dumps({"line": lineno, "EventID": event_id, "include": include, "RuleName": rule_name})
                + "\n"
            )
        else:
            out.write(
                f"{lineno}\tEventID={event_id}\t{'include' if include else 'exclude'}\tRuleName={rule_name}\n"
            )
    return status


def cmd_rules_test(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    config = _load(args.config, err)
    if config is None:
        return 2
    try:
        if args.events == "-":
            return decide_events(config, sys.stdin, out, err, args.json)
        with open(args.events, encoding="utf-8") as fh:
            return decide_events(config, fh, out, err, args.json)
    except OSError as e:
        print(f"error: {args.events}: {e.strerror or e}", file=err)
        return 2
    except UnicodeDecodeError as e:
        print(f"error: {args.events}: not UTF-8 ({e.reason})", file=err)
        return 2


def cmd_rules_dump(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    config = _load(args.config, err)
    if config is None:
        return 2
    out.write(dump_config(config))
    return 0


def cmd_lint(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    lines, status = lint_file(args.config)
    for line in lines:
        out.write(line + "\n")
    return status


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m sysmonctl.rules_cli ...`), same commands as in sysmonctl."""
    parser = argparse.ArgumentParser(prog="sysmonctl")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
