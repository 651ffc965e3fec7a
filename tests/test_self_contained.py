"""The suite runs from a plain clone: no test or benchmark reads the team's reference folder that sits
beside our own checkouts (a user's clone has nothing there), and every data file the tests read lives
in tests/data/ with its origin in tests/data/SOURCES.md. .ci/run also runs the suite from a copy of the
repository with nothing beside it, which catches a path these patterns miss."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SCANNED = ("tests", "bench")

# Each way a path to the sibling folder has been built here; written so that this file does not match.
OUTSIDE = [
    re.compile(rb"\.\./shared"),
    re.compile(rb"/work/share[d]"),
    re.compile(rb"shared/referenc[e]"),
    re.compile(rb"""["']\.\.["']\s*[/,]\s*["']shared["']"""),  # a pathlib join or os.path.join
    re.compile(rb"""parents?(\[\d+\])?\s*/\s*["']shared["'/]"""),  # from the repository root's parent
    re.compile(rb"""["']shared["']\s*/\s*["']reference["']"""),
]


def _files(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.mark.parametrize("top", SCANNED)
def test_nothing_reads_the_folder_beside_the_checkout(top: str) -> None:
    hits = []
    for path in _files(ROOT / top):
        data = path.read_bytes()
        for pattern in OUTSIDE:
            for m in pattern.finditer(data):
                line = data.count(b"\n", 0, m.start()) + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0).decode(errors='replace')}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_the_patterns_catch_the_old_spellings() -> None:
    for text in (  # "SH" stands for the folder's name, so that this file itself stays clean
        'SHARED = ROOT / "../SH/reference"',
        'SHARED = Path(__file__).resolve().parents[3] / ".." / "SH"',
        'SOURCE = ROOT.parent / "SH/reference/realdata/schema/x.xml"',
        'ROOT.parent / "SH" / "reference"',
        'os.path.join(ROOT, "..", "SH")',
        "see /work/SH/reference/captured",
    ):
        assert any(p.search(text.replace("SH", "shared").encode()) for p in OUTSIDE), text


def test_every_data_file_has_a_recorded_origin() -> None:
    listed = set(re.findall(r"`([^`\s]+)`", (DATA / "SOURCES.md").read_text()))
    files = [str(p.relative_to(DATA)) for p in _files(DATA)]
    assert len(files) > 300
    missing = [
        f
        for f in files
        if f not in ("SOURCES.md", ".gitattributes")
        and not any(f == entry or (entry.endswith("/") and f.startswith(entry)) for entry in listed)
    ]
    assert not missing, f"not in tests/data/SOURCES.md: {missing}"
