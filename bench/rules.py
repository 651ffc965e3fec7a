"""Rule-engine benchmark: decisions per second per config and event type, on one core.

Configs: the largest real ones in tests/data/configs (sysmon-modular, SwiftOnSecurity,
the 1 MB "omega" config, MSTIC's merged Linux config, the Korean blog's Linux config). The Windows
ones carry Windows-only options that SysmonForLinux refuses; they are loaded with those options
ignored (`reject_windows_options=False`) so that their rules can be measured.

Events: every real Sysmon-for-Linux event (ProcessCreate, ProcessTerminate, NetworkConnect,
FileCreate, FileDelete, RawAccessRead) in tests/data/captured and in any --events DIR (third-party
samples whose licences keep them out of this repository; the captures hold no RawAccessRead),
decoded into the rendered field values the engine sees. Each matcher is timed over the whole set
of its type, repeatedly, for --seconds; the figure is the best of --rounds.
The decisions are also checked against the literal (slow) evaluator before timing.

Prints a table and writes bench/results/rules.json. Run: python bench/rules.py
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from filterd import schema  # noqa: E402
from filterd.config.loader import load_config  # noqa: E402
from filterd.rules import compiler, rule_set  # noqa: E402
from filterd.rules.exact import exact_evaluator  # noqa: E402

DATA = ROOT / "tests" / "data"  # origins: tests/data/SOURCES.md
CONFIGS = {
    "sysmon-modular": "configs/windows/sysmon-modular-sysmonconfig.xml",
    "sysmon-modular+filedelete": "configs/windows/sysmon-modular-sysmonconfig-with-filedelete.xml",
    "swiftonsecurity": "configs/windows/swiftonsecurity-sysmonconfig-export.xml",
    "omega": "configs/sysmoncommon-unittests/sysmonconfig-export-omega.xml",
    "mstic-main": "configs/linux/mstic/main.xml",
    "korean-blog": "configs/linux/blogs/korean-blog-sysmon-config.xml",
}
EVENT_IDS = (1, 5, 3, 11, 23, 9)
TARGET = ("sysmon-modular", 1, 200_000)  # target: >= 200k ProcessCreate decisions/s with sysmon-modular


def real_events(sources: list[Path]) -> dict[int, list[tuple[str, ...]]]:
    """Rendered field values (schema order) of every real event, deduplicated, by event id."""
    out: dict[int, dict[tuple[str, ...], None]] = {}
    for src in sources:
        for path in sorted(src.rglob("*")):
            if not path.is_file() or path.suffix not in (".log", ".xml", ".txt"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in re.finditer(r"<Event[\s>].*?</Event>", text, re.S):
                xml = match.group(0).replace(
                    ' xmlns="http://schemas.microsoft.com/win/2004/08/events/event"', ""
                )
                try:
                    ev = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, recover=True))
                except etree.XMLSyntaxError:
                    continue
                if ev is None or ev.findtext("System/EventID") is None:
                    continue
                eid = int(ev.findtext("System/EventID"))
                if eid not in EVENT_IDS:
                    continue
                data = {d.get("Name"): (d.text or "-").strip() or "-" for d in ev.iter("Data")}
                values = tuple(data.get(f, "-") for f in schema.BY_ID[eid].fields)
                out.setdefault(eid, {})[values] = None
    return {eid: list(vals) for eid, vals in out.items()}


def measure(decide, events: list[tuple[str, ...]], seconds: float, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            for v in events:
                decide(v)
            n += len(events)
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="timing window per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per cell (best is kept)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rules.json"))
    ap.add_argument(
        "--events",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="more files of real events (.log/.xml/.txt) to add to tests/data/captured",
    )
    args = ap.parse_args(argv)

    sources = [DATA / "captured", *args.events]
    if missing := [str(d) for d in sources if not d.is_dir()]:
        print(f"event directories not found: {missing}", file=sys.stderr)
        return 2
    events = real_events(sources)
    results: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "events": {str(k): len(v) for k, v in sorted(events.items())},
        "configs": {},
    }
    header = f"{'config':<28}{'load ms':>9}" + "".join(f"{'id ' + str(i):>12}" for i in EVENT_IDS)
    print(f"events per type: {results['events']}")
    print(header)
    print("-" * len(header))
    for name, rel in CONFIGS.items():
        t0 = time.perf_counter()
        config = load_config(DATA / rel, reject_windows_options=False)
        for eid in EVENT_IDS:
            rule_set(config).matcher(eid)
        load_ms = (time.perf_counter() - t0) * 1000
        row: dict = {
            "file": rel,
            "load_and_compile_ms": round(load_ms, 1),
            "decisions_per_s": {},
            "included": {},
        }
        cells = []
        for eid in EVENT_IDS:
            evs = events.get(eid, [])
            m = rule_set(config).matcher(eid)
            exact = exact_evaluator(config, eid)
            decisions = [m.decide(v) for v in evs]
            if decisions != [exact.decide(v) for v in evs]:
                print(
                    f"MISMATCH between compiled and literal evaluation: {name} event {eid}", file=sys.stderr
                )
                return 1
            rate = measure(m.decide, evs, args.seconds, args.rounds) if evs else 0.0
            row["decisions_per_s"][str(eid)] = round(rate)
            row["included"][str(eid)] = sum(1 for inc, _ in decisions if inc)
            cells.append(f"{rate / 1000:>11,.0f}k" if evs else f"{'-':>12}")
        results["configs"][name] = row
        print(f"{name:<28}{load_ms:>9,.0f}" + "".join(cells))
    cfg, eid, target = TARGET
    got = results["configs"][cfg]["decisions_per_s"][str(eid)]
    # The same cell with the per-value memo off: every Image/User/... lookup is recomputed, as for a
    # stream where no value ever repeats (the cycled event set above repeats them every round).
    compiler.MEMOIZE = False
    try:
        cold = rule_set(load_config(DATA / CONFIGS[cfg], reject_windows_options=False)).matcher(eid)
        cold_rate = round(measure(cold.decide, events[eid], args.seconds, args.rounds))
    finally:
        compiler.MEMOIZE = True
    results["target"] = {
        "config": cfg,
        "event_id": eid,
        "decisions_per_s": target,
        "measured": got,
        "measured_without_memo": cold_rate,
        "met": got >= target,
    }
    print(
        f"\ntarget: >= {target:,} ProcessCreate decisions/s with {cfg}: {got:,} -> "
        f"{'met' if got >= target else 'NOT met'} (without the per-value memo: {cold_rate:,})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
