"""`sysmonctl reload | status | stats | tail`: the running filterd, seen and steered from outside.

`tail` prints one readable line per event (like upstream's sysmonLogView), filtered by event id
(`-e 1,3`) and field values (`-f Image=/usr/bin/bash`, substring match), or the raw XML (`--xml`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lxml import etree

from .client import find_socket, request, tail


def _print_kv(title: str, items: dict[str, Any], indent: str = "  ") -> None:
    print(title)
    for k, v in items.items():
        print(f"{indent}{k:<22} {v}")


def cmd_status(args: argparse.Namespace) -> int:
    r = request(find_socket(args.control), "status")
    f = r["filterd"]
    _print_kv(
        "filterd",
        {
            "version": f["version"],
            "pid": f["pid"],
            "uid": f["uid"],
            "uptime": f"{f['uptime_s']} s",
            "config": f["config"],
            "config file": f["config_file"],
            "config hash": f["config_hash"] or "-",
            "endpoints": ", ".join(f["endpoints"]),
        },
    )
    for origin, c in r["collectors"].items():
        _print_kv(
            f"collector {c['hostname']} ({origin})",
            {"version": c["version"], "pid": c["pid"], "uptime": f"{c['uptime_s']} s"},
        )
    if not r["collectors"]:
        print("collector: no host context received yet")
    return 0


def _sum(d: dict[str, int] | None) -> int:
    return sum((d or {}).values())


def cmd_stats(args: argparse.Namespace) -> int:
    r = request(find_socket(args.control), "stats")
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    f = r["filterd"]
    rows = []
    for origin, c in r["collectors"].items():
        pub = c.get("published", {})
        rows += [
            (f"kernel emitted [{origin[:8]}]", _sum(c.get("kernel_emitted"))),
            (f"kernel dropped [{origin[:8]}]", _sum(c.get("kernel_dropped"))),
            (f"collector published [{origin[:8]}]", pub.get("records", 0)),
            (f"collector send drops [{origin[:8]}]", pub.get("records_dropped", 0)),
        ]
    rows += [
        ("filterd batches received", f.get("batches", 0)),
        ("filterd batch gaps", f.get("gap_batches", 0)),
        ("filterd records decoded", f.get("decoded", 0)),
        ("filterd malformed", f.get("MalformedFrame", 0)),
        ("events included", f.get("included", 0)),
        ("events excluded", f.get("excluded", 0)),
        ("events written", f.get("written", 0)),
    ]
    rows += [
        (f"sink {name} sent / dropped", f"{s['sent']} / {s['dropped']}") for name, s in r["sinks"].items()
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v:>12}")
    if r["rule_hits"]:
        print("\nrule hits")
        for name, n in sorted(r["rule_hits"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:>10}  {name}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    r = request(find_socket(args.control), "reload")
    if not r.get("ok"):
        print(f"reload rejected, the running config is kept: {r.get('error')}", file=sys.stderr)
        return 1
    print(f"reloaded {r['config']}: {r['hash'] or '-'}")
    return 0


def event_line(xml: str) -> tuple[int, dict[str, str], str]:
    root = etree.fromstring(xml.encode("utf-8", "surrogateescape"))
    eid = int(root.findtext("System/EventID"))
    data = {d.get("Name"): d.text or "" for d in root.find("EventData")}
    rid = root.findtext("System/EventRecordID")
    skip = {"RuleName", "UtcTime", "FileVersion", "Description", "Product", "Company", "OriginalFileName"}
    shown = " ".join(f"{k}={v}" for k, v in data.items() if k not in skip and v != "-")
    return eid, data, f"{data.get('UtcTime', '')} #{rid} [{eid}] {shown}"


def cmd_tail(args: argparse.Namespace) -> int:
    ids = {int(x) for x in args.e.split(",")} if args.e else None
    filters = [f.split("=", 1) for f in args.f]
    try:
        for xml in tail(find_socket(args.control)):
            eid, data, line = event_line(xml)
            if ids is not None and eid not in ids:
                continue
            if any(v.lower() not in data.get(k, "").lower() for k, v in filters):
                continue
            print(xml if args.xml else line, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--control", help="filterd's control socket (default: found in /run)")
        return p

    common(
        sub.add_parser("status", help="both daemons: versions, pids, uptime, config, endpoints")
    ).set_defaults(func=cmd_status)
    p = common(sub.add_parser("stats", help="per-hop counters and per-rule hit counts"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    common(sub.add_parser("reload", help="re-read the config (filterd only; validated first)")).set_defaults(
        func=cmd_reload
    )
    p = common(sub.add_parser("tail", help="follow events live"))
    p.add_argument("-e", help="event ids, e.g. 1,3")
    p.add_argument("-f", action="append", default=[], metavar="FIELD=VALUE", help="field contains value")
    p.add_argument("--xml", action="store_true", help="raw XML lines")
    p.set_defaults(func=cmd_tail)
