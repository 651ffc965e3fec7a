"""`sysmonctl reload | reopen | status | stats | tail`: the running filterd, seen and steered from outside.

All of them go through filterd's control socket (root and the sysmon group only); what filterd
knows of the collectors comes from their host contexts, so `status` and `stats` cover both
daemons without touching the root side. `tail` lives in tail.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared.records import BY_KIND

from . import tail as tail_mod
from .client import request


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _print_kv(title: str, items: dict[str, Any]) -> None:
    print(title)
    for k, v in items.items():
        print(f"  {k:<16} {v}")


def cmd_status(args: argparse.Namespace) -> int:
    r = request(args.control, "status")
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    f = r["filterd"]
    _print_kv(
        "filterd",
        {
            "version": f["version"],
            "pid": f["pid"],
            "user": f"uid {f['uid']}",
            "uptime": _duration(f["uptime_s"]),
            "config": f["config"],
            "config file": f["config_file"],
            "config hash": f["config_hash"] or "-",
            "endpoints": ", ".join(f["endpoints"]),
            "control socket": f.get("control_socket", "-"),
            "json output": f.get("json") or "-",
            "sandbox": f.get("sandbox", "-"),
        },
    )
    for origin, c in r["collectors"].items():
        _print_kv(
            f"collector on {c['hostname']} (origin {origin})",
            {"version": c["version"], "pid": c["pid"], "uptime": _duration(c["uptime_s"])},
        )
    if not r["collectors"]:
        print("collector: no host context received yet (is sysmon-collector running?)")
    return 0


def _kind_name(k: str) -> str:
    kind = BY_KIND.get(int(k))
    return kind.name if kind else f"kind {k}"


def stats_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """The per-hop counters in the order an event meets them: kernel, collector, filterd, sinks."""
    rows: list[tuple[str, Any]] = []
    for origin, c in r["collectors"].items():
        rows.append((f"collector on {c.get('hostname', '-')} ({origin})", ""))
        emitted, dropped = c.get("kernel_emitted", {}), c.get("kernel_dropped", {})
        for k in sorted({*emitted, *dropped}, key=int):
            if emitted.get(k) or dropped.get(k):
                name = _kind_name(k)
                rows.append((f"  kernel emitted {name}", emitted.get(k, 0)))
                rows.append((f"  kernel dropped {name}", dropped.get(k, 0)))
        pub = c.get("published", {})
        rows += [
            ("  ring buffer records read", c.get("ring_records", 0)),
            ("  published batches", pub.get("batches", 0)),
            ("  published records", pub.get("records", 0)),
            ("  publish hwm drops (batches)", pub.get("hwm_drops", 0)),
            ("  publish dropped records", pub.get("records_dropped", 0)),
            ("  hash failures", c.get("hash_failures", 0)),
        ]
        remote = {k.removeprefix("remote_"): v for k, v in pub.items() if k.startswith("remote_")}
        rows += [(f"  remote {k}", v) for k, v in remote.items()]
    f = r["filterd"]
    rows.append(("filterd", ""))
    for key, label in (
        ("batches", "batches received"),
        ("gap_batches", "batches lost (sequence gaps)"),
        ("kernel_dropped", "kernel drops reported"),
        ("decoded", "records decoded"),
        ("included", "events included"),
        ("excluded", "events excluded"),
        ("written", "events written"),
    ):
        rows.append((f"  {label}", f.get(key, 0)))
    shown = {"batches", "gap_batches", "kernel_dropped", "decoded", "included", "excluded", "written"}
    rows += [(f"  {k}", v) for k, v in sorted(f.items()) if k not in shown and v]  # errors and rarities
    for name, s in r["sinks"].items():
        rows += [(f"  sink {name} sent", s["sent"]), (f"  sink {name} dropped", s["dropped"])]
    if r.get("tail", {}).get("clients"):
        t = r["tail"]
        rows.append((f"  tail ({t['clients']} clients) sent / dropped", f"{t['sent']} / {t['dropped']}"))
    return rows


def cmd_stats(args: argparse.Namespace) -> int:
    r = request(args.control, "stats")
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    rows = stats_rows(r)
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v:>12}" if v != "" else k)
    if r["rule_hits"]:
        print("rule hits (events included, by RuleName)")
        for name, n in sorted(r["rule_hits"].items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {n:>12}  {name}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    r = request(args.control, "reload")
    if not r.get("ok"):
        print(f"sysmonctl: reload rejected, the running config is kept: {r.get('error')}", file=sys.stderr)
        return 1
    print(f"reloaded {r['config']}: {r['hash'] or '-'}")
    return 0


def cmd_reopen(args: argparse.Namespace) -> int:
    """For logrotate's postrotate: filterd opens its JSON file again (SIGHUP means reload)."""
    r = request(args.control, "reopen")
    if not r.get("ok"):
        print(f"sysmonctl: reopen failed, the old file is still written: {r.get('error')}", file=sys.stderr)
        return 1
    if not args.quiet:
        print("reopened " + ", ".join(r["reopened"]) if r["reopened"] else "no output file to reopen")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--control", help="filterd's control socket (default: found in /run)")
        return p

    p = common(sub.add_parser("status", help="both daemons: versions, pids, uptime, config, endpoints"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = common(sub.add_parser("stats", help="per-hop counters and per-rule hit counts"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    p = common(sub.add_parser("reload", help="re-read the config (filterd only; validated first)"))
    p.set_defaults(func=cmd_reload)
    p = common(sub.add_parser("reopen", help="open the JSON output file again (after logrotate renamed it)"))
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when it worked")
    p.set_defaults(func=cmd_reopen)
    common(tail_mod.add_parser(sub))
