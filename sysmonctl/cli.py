"""sysmonctl entry point: subcommands are registered by the modules that implement them."""

from __future__ import annotations

import argparse
import sys

from . import control_cli, keys, record, replay, rules_cli
from . import run as run_mod
from .client import ControlError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sysmonctl", description="Control and inspect the Sysmon monitor.")
    sub = p.add_subparsers(dest="command", required=True)
    run_mod.add_subcommand(sub)
    for register in (control_cli.add_subcommands, keys.add_subcommands, rules_cli.add_subcommands,
                     record.add_subcommands, replay.add_subcommands):  # fmt: skip
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ControlError as e:
        print(f"sysmonctl: {e}", file=sys.stderr)
        return 2
