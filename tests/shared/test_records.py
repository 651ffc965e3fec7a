"""The single record definition: invariants, and the generated C header matches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared import records

ROOT = Path(__file__).resolve().parents[2]


def test_kinds_unique_and_bpf_kinds_fit_the_maps() -> None:
    kinds = [k.kind for k in records.KINDS]
    assert len(kinds) == len(set(kinds))
    assert all(k.kind < records.MAX_BPF_KIND for k in records.KINDS if k.origin == "bpf")
    assert all(k.kind >= records.MAX_BPF_KIND for k in records.KINDS if k.origin == "collector")


def test_layouts_are_naturally_aligned_and_8_byte_sized() -> None:
    for k in records.KINDS:
        off = 0
        for f in k.all_fields:
            size = {"u8": 1, "u16": 2, "u32": 4, "s32": 4, "u64": 8, "s64": 8}[f.ctype]
            assert off % size == 0, f"{k.name}.{f.name} at {off} is not aligned"
            off += size
        assert off == k.fixed_size and off % 8 == 0


def test_header_is_common_prefix() -> None:
    for k in records.KINDS:
        assert k.all_fields[: len(records.HEADER_FIELDS)] == records.HEADER_FIELDS


def test_generated_c_header_is_current() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_bpf_records.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_header_has_offset_asserts_for_every_field() -> None:
    text = (ROOT / "bpf" / "include" / "records.h").read_text()
    for k in records.KINDS:
        if k.origin != "bpf":
            continue
        for f in k.all_fields:
            assert f"__builtin_offsetof(struct {k.cname}, {f.name})" in text

