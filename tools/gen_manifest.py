"""Regenerate sysmon_cli/manifest.xml: upstream's manifest.xml with a 4.90 block on top.

Why: `sysmon -s` prints upstream's raw <manifest> blocks, and the reference copy (in ../shared,
absent at run time) stops at 4.81. The 4.90 block is the 4.81 block with schemaversion 4.90,
binaryversion 18 and event 100 (eBPFEvent) from filterd/schema.py appended.
Usage: python tools/gen_manifest.py [path/to/sysmoncommon-manifest.xml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filterd import schema  # noqa: E402

SOURCE = ROOT.parent / "shared/reference/realdata/schema/sysmoncommon-manifest.xml"
TARGET = ROOT / "sysmon_cli/manifest.xml"
IN_TYPES = {
    "ProcessGuid": 'inType="win:GUID"',
    "ProcessId": 'inType="win:UInt32" outType="win:PID"',
    "BpfProgramId": 'inType="win:UInt32"',
}


def event_100() -> str:
    ev = next(e for e in schema.EVENT_TYPES if e.id == 100)
    lines = [
        f'      <event name="{ev.name}" value="{ev.id}" level="Informational" template="{ev.template}" '
        f'rulename="{ev.rule_tag}" version="{ev.version}" target="all">'
    ]
    for f in ev.fields:
        t = IN_TYPES.get(f, 'inType="win:UnicodeString" outType="xs:string"')
        lines.append(f'        <data name="{f}" {t} />')
    lines.append("      </event>")
    return "\n".join(lines) + "\n"


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    text = src.read_text()
    m = re.search(r'  <manifest schemaversion="4\.81".*?\n  </manifest>\n', text, re.S)
    if m is None:
        raise SystemExit("no 4.81 manifest block in the source")
    old, new = 'schemaversion="4.81" binaryversion="16"', 'schemaversion="4.90" binaryversion="18"'
    block = m.group(0).replace(old, new)
    block = block.replace("    </events>\n  </manifest>\n", event_100() + "    </events>\n  </manifest>\n")
    TARGET.write_text(text[: m.start()] + block + text[m.start() :])


if __name__ == "__main__":
    main()
