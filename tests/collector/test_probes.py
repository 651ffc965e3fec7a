"""The probe table and the BPF sources agree: every program has a hook entry and vice versa."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.loader import cflags
from collector.probes import HOOKS, PROBES, Probe
from shared import records

BPF = Path(__file__).resolve().parents[2] / "bpf"


def programs_in_sources() -> set[str]:
    names = set()
    for p in PROBES:
        text = (BPF / p.source).read_text()
        names |= {
            f"tracepoint__{c}__{n}" for c, n in re.findall(r"^TRACEPOINT_PROBE\((\w+), (\w+)\)", text, re.M)
        }
        names |= {f"raw_tracepoint__{n}" for n in re.findall(r"^RAW_TRACEPOINT_PROBE\((\w+)\)", text, re.M)}
    return names


def test_every_program_has_exactly_one_hook() -> None:
    fns = [h.fn_name for h in HOOKS]
    assert len(fns) == len(set(fns))
    assert set(fns) == programs_in_sources()


def test_every_bpf_kind_is_fed_by_a_hook() -> None:
    fed = {k for h in HOOKS for k in h.kinds}
    assert fed == {k.kind for k in records.KINDS if k.origin == "bpf"} | {records.SWITCH_UNLINKED_INODE}


def test_every_source_file_exists_and_is_listed() -> None:
    listed = {p.source for p in PROBES}
    assert listed == {f.name for f in BPF.glob("*.bpf.c")}


@pytest.mark.bpf
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.source)
def test_each_source_compiles_alone(probe: Probe) -> None:
    """A .bpf.c needs only bpf/include/, never another .bpf.c (the loader's order cannot hide it)."""
    from bcc import BPF as Bcc

    text = (BPF / probe.source).read_text()
    assert '#include "common.h"' in text
    prog = Bcc(text=(BPF / "include" / "common.h").read_text() + "\n" + text, cflags=cflags(64))
    try:
        assert {h.fn_name.encode() for h in probe.hooks} <= set(prog.funcs)
    finally:
        prog.cleanup()
