"""Fuzzing the loader with mutated real configs: it never crashes, it always ends in a usable Config
(matchers, dump and lint work) or a ConfigError naming the file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from filterd import schema
from filterd.config.dump import dump_config
from filterd.config.errors import ConfigError
from filterd.config.lint import lint_config
from filterd.config.loader import load_config_bytes
from filterd.rules import rule_set
from filterd.rules.conditions import CONDITION_NAMES
from tests.filterd.rules.rules_reference import probe_events, reference_decide

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"  # tests/data/SOURCES.md
SEEDS = [
    "linux/mstic/main.xml",
    "linux/blogs/korean-blog-sysmon-config.xml",
    "linux/sysmonforlinux/onlyProcCreate.xml",
    "sysmoncommon-unittests/reg-subrules.xml",
    "sysmoncommon-unittests/longnames.xml",
    "sysmoncommon-unittests/utf16-utf16bom-utf16enc.xml",
    "sysmoncommon-unittests/include_powershell.xml",
    "windows/swiftonsecurity-sysmonconfig-export.xml",
]
MUTATIONS_PER_SEED = 60

TOKENS = (
    [
        b"<",
        b">",
        b"&",
        b"&amp;",
        b'"',
        b"'",
        b"</Rule>",
        b"<Rule>",
        b'<Rule groupRelation="and">',
        b'onmatch="include"',
        b'onmatch="exclude"',
        b'default="include"',
        b'condition="is"',
        b'schemaversion="3.0"',
        b'schemaversion="9.99"',
        b'<RuleGroup groupRelation="or">',
        b"</RuleGroup>",
        b"<Image>",
        b"</Image>",
        b"<CheckRevocation/>",
        b"<FieldSizes>Image:3</FieldSizes>",
        b"<!--",
        b"-->",
        b'<!DOCTYPE x [<!ENTITY a "b">]>',
        b"\x00",
        b"\xff\xfe",
        b"\xef\xbb\xbf",
        b"\xe9",
        b";",
        b"\\",
        b"<HashAlgorithms>md5</HashAlgorithms>",
        b'name="' + b"n" * 300 + b'"',
    ]
    + [f'condition="{c}"'.encode() for c in CONDITION_NAMES]
    + [b'condition="Contains"', b'condition="bogus"']
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(data) + 1)
        if op == 0:  # delete a span
            data = data[:i] + data[i + rng.randint(1, 40) :]
        elif op == 1:  # insert a grammar token
            data = data[:i] + rng.choice(TOKENS) + data[i:]
        elif op == 2:  # duplicate a span
            j = min(len(data), i + rng.randint(1, 200))
            data = data[:j] + data[i:j] + data[j:]
        elif op == 3:  # flip a byte
            if data:
                k = rng.randrange(len(data))
                data = data[:k] + bytes([rng.randrange(256)]) + data[k + 1 :]
        elif op == 4:  # swap two condition names
            a, b = rng.sample(CONDITION_NAMES, 2)
            data = data.replace(f'"{a}"'.encode(), f'"{b}"'.encode(), 1)
        else:  # truncate
            data = data[:i]
    return data


@pytest.mark.parametrize("rel", SEEDS)
def test_mutated_configs_never_crash(rel: str) -> None:
    original = (CONFIGS / rel).read_bytes()
    rng = random.Random(rel)
    outcomes = {"accepted": 0, "rejected": 0}
    for n in range(MUTATIONS_PER_SEED):
        data = mutate(original, rng)
        name = f"{rel}#{n}"
        try:
            cfg = load_config_bytes(data, name, reject_windows_options=bool(n % 2))
        except ConfigError as e:
            outcomes["rejected"] += 1
            assert str(e).startswith(name + ":"), str(e)
            assert e.message and "\n" not in str(e), repr(str(e))  # one clear line
            continue
        outcomes["accepted"] += 1
        rules = rule_set(cfg)
        for et in schema.EVENT_TYPES:  # a mutated config still decides as the reference does
            m = rules.matcher(et.id)
            for values in [("x/Y\\z",) * len(et.fields), *probe_events(cfg, et.id, limit=4)]:
                assert m.decide(values) == reference_decide(cfg, et.id, values), (name, et.id, values)
        dump_config(cfg)
        lint_config(cfg)
    assert outcomes["accepted"] and outcomes["rejected"], outcomes  # both paths are exercised
