"""`sysmonctl tail`: a live, readable view of the events filterd writes (upstream's sysmonLogView).

One line per event: `UtcTime #EventRecordID [id Name] Field=value ...` (fields that say nothing,
"-" values and RuleName "-", are left out). Switches follow sysmonLogView where they overlap:
  -e 1,3              only these event ids
  -f Field=value      only events whose Field matches (case-insensitive; * and ? are wildcards;
                      repeat for more: the same field ORs, different fields AND)
  -E Field,Field      show only these fields
  -X / --xml          the raw XML, one event per line
Events filterd had to skip because this viewer was too slow are reported on stderr.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections import defaultdict

from lxml import etree

from filterd.schema import BY_ID

from .client import tail

QUIET = {"UtcTime", "FileVersion", "Description", "Product", "Company", "OriginalFileName"}


def parse_event(xml: str) -> tuple[int, str, dict[str, str]]:
    """(event id, EventRecordID, {field: value}) of one rendered event."""
    root = etree.fromstring(xml.encode("utf-8", "surrogateescape"))
    eid = int(root.findtext("System/EventID") or 0)
    data = root.find("EventData")
    fields = {d.get("Name"): d.text or "" for d in data} if data is not None else {}
    return eid, root.findtext("System/EventRecordID") or "", fields


def short_name(eid: int) -> str:
    e = BY_ID.get(eid)
    if e is None:
        return str(eid)
    return e.rule_tag or e.name.removeprefix("SYSMONEVENT_").replace("_", " ").title().replace(" ", "")


def event_line(eid: int, rid: str, fields: dict[str, str], only: list[str] | None = None) -> str:
    if only:
        shown = [(k, fields[k]) for k in only if k in fields]
    else:
        shown = [(k, v) for k, v in fields.items() if k not in QUIET and v != "-"]
    body = " ".join(f"{k}={v}" for k, v in shown)
    return f"{fields.get('UtcTime', '-')} #{rid} [{eid} {short_name(eid)}] {body}".rstrip()


class Filter:
    def __init__(self, ids: str | None, field_filters: list[str]) -> None:
        self.ids = {int(x) for x in ids.split(",") if x.strip()} if ids else None
        self.fields: dict[str, list[str]] = defaultdict(list)
        for f in field_filters:
            name, sep, value = f.partition("=")
            if not sep or not name:
                raise ValueError(f"-f wants Field=value, not {f!r}")
            self.fields[name].append(value.lower())

    def wants_id(self, eid: int) -> bool:
        return self.ids is None or eid in self.ids

    def wants(self, fields: dict[str, str]) -> bool:
        return all(
            any(fnmatch.fnmatchcase(fields.get(name, "").lower(), p) for p in patterns)
            for name, patterns in self.fields.items()
        )


def cmd_tail(args: argparse.Namespace) -> int:
    try:
        flt = Filter(args.e, args.f)
    except ValueError as e:
        print(f"sysmonctl tail: {e}", file=sys.stderr)
        return 2
    only = [x for x in args.E.split(",") if x] if args.E else None
    try:
        for msg in tail(args.control):
            if "dropped" in msg:
                print(f"sysmonctl tail: {msg['dropped']} events skipped (viewer too slow)", file=sys.stderr)
                continue
            xml = msg["xml"]
            eid, rid, fields = parse_event(xml)
            if not flt.wants_id(eid) or not flt.wants(fields):
                continue
            print(xml if args.xml else event_line(eid, rid, fields, only), flush=True)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tail", help="follow events live (like sysmonLogView)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("-e", metavar="IDS", help="event ids, e.g. 1,3")
    p.add_argument("-f", action="append", default=[], metavar="FIELD=VALUE", help="field filter (repeatable)")
    p.add_argument("-E", metavar="FIELDS", help="show only these fields, e.g. Image,CommandLine")
    p.add_argument("-X", "--xml", action="store_true", help="raw XML, one event per line")
    p.set_defaults(func=cmd_tail)
    return p
