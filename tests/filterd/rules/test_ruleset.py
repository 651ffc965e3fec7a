"""The compiled form of a config: one RuleSet per Config, the event types it can log, FieldSizes."""

from __future__ import annotations

import gc

import pytest

from filterd import schema
from filterd.config.loader import load_config_bytes
from filterd.config.model import Config
from filterd.rules import rule_set
from filterd.rules.ruleset import trim_string


def load(xml: str) -> Config:
    return load_config_bytes(xml.encode(), "t.xml")


def wrap(body: str, top: str = "") -> str:
    return f'<Sysmon schemaversion="4.90">{top}<EventFiltering>{body}</EventFiltering></Sysmon>'


def test_one_rule_set_per_config_and_one_matcher_per_id() -> None:
    cfg = load(wrap('<ProcessCreate onmatch="include"><Image>x</Image></ProcessCreate>'))
    rs = rule_set(cfg)
    assert rule_set(cfg) is rs
    assert rs.matcher(1) is rs.matcher(1)
    other = load(wrap(""))
    assert rule_set(other) is not rs


def test_rule_set_goes_with_its_config() -> None:
    """Reloads make new configs: the old compiled rules must not be kept forever."""
    from filterd.rules import ruleset

    cfg = load(wrap('<ProcessCreate onmatch="include"><Image>x</Image></ProcessCreate>'))
    rule_set(cfg).matcher(1)
    before = len(ruleset._COMPILED)
    del cfg
    gc.collect()
    assert len(ruleset._COMPILED) == before - 1


def test_unknown_event_id() -> None:
    with pytest.raises(KeyError):
        rule_set(load(wrap(""))).matcher(99)


@pytest.mark.parametrize(
    "s,n,out",
    [
        ("ABCDEFGHIJKLMN", 5, "AB..."),
        ("ABCDEFGHIJKLMN", 2, "-"),
        ("ABCDEFGHIJKLMN", 0, ""),
        ("ABC", 3, "ABC"),
        ("ABCD", 3, "..."),
        ("ABC", 100, "ABC"),
    ],
)
def test_trim_string(s: str, n: int, out: str) -> None:
    assert trim_string(s, n) == out


def test_config_trim_applies_to_every_event_with_that_field() -> None:
    cfg = load(wrap("", top="<FieldSizes>Image:6,CommandLine:4,RuleName:3</FieldSizes>"))
    v1 = tuple(f"{f}-value" for f in schema.BY_ID[1].fields)
    t1 = rule_set(cfg).trim(1, v1)
    fields = schema.BY_ID[1].fields
    assert t1[fields.index("Image")] == "Ima..."
    assert t1[fields.index("CommandLine")] == "C..."
    assert t1[fields.index("RuleName")] == "..."
    assert t1[fields.index("User")] == "User-value"
    v5 = tuple(f"{f}-value" for f in schema.BY_ID[5].fields)
    assert rule_set(cfg).trim(5, v5)[schema.BY_ID[5].fields.index("Image")] == "Ima..."
    assert rule_set(cfg).trim(16, ("a", "b", "c")) == ("a", "b", "c")
    assert rule_set(load(wrap(""))).trim(1, list(v1)) == v1


@pytest.mark.parametrize(
    "body,enabled",
    [
        ('<ProcessCreate onmatch="include"/>', {5}),
        ('<ProcessCreate onmatch="exclude"/>', {1, 5}),
        ('<ProcessCreate onmatch="exclude"/><ProcessCreate onmatch="exclude"/>', {5}),
        ('<ProcessTerminate onmatch="include"><Image>x</Image></ProcessTerminate>', {1, 5}),
        ('<NetworkConnect onmatch="include"/>', {1, 5}),
        ('<NetworkConnect onmatch="exclude"/>', {1, 3, 5}),
        ('<NetworkConnect onmatch="include"><Image>x</Image></NetworkConnect>', {1, 3, 5}),
        ('<ImageLoad onmatch="exclude"/>', {1, 5, 7}),
        ('<RegistryEvent onmatch="exclude"/>', {1, 5, 12, 13, 14}),
    ],
)
def test_enabled_event_ids(body: str, enabled: set[int]) -> None:
    ids = rule_set(load(wrap(body))).enabled
    assert ids == frozenset(enabled)
    assert not ids & {4, 16, 255}
