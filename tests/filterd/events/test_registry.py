"""The event registry: every record kind consumed, every emitted event built, the derived lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from filterd import schema
from filterd.events.registry import (
    MAX_REQUIRED_FIELDS,
    Produces,
    Registry,
    Reports,
    Tracks,
    event_data,
    registry,
)
from shared import records

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_record_kind_is_consumed() -> None:
    """A kind nobody consumes would be decoded and dropped: counted, but never logged."""
    missing = [k.name for k in records.KINDS if k.kind not in registry().consumed_kinds]
    assert missing == []


def test_every_event_in_the_readme_table_has_a_builder() -> None:
    text = README.read_text()
    table = text[text.index("## Events") : text.index("## Compatibility")]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == set(registry().linux_event_ids)


def test_linux_events_are_filterable_schema_events_or_filterd_s_own() -> None:
    reg = registry()
    assert reg.reports == {4, 16}
    for p in reg.produces:
        assert schema.BY_ID[p.event_id].rule_tag is not None


def test_kinds_for_events() -> None:
    reg = registry()
    process = {records.PROCESS_EXEC.kind, records.PROCESS_EXIT.kind, records.PROCESS_FORK.kind}
    assert reg.kinds_for(set()) == process  # the cache needs them whatever is logged
    assert reg.kinds_for({1, 5}) == process
    assert reg.kinds_for({11, 23}) == process | {records.FILE_CREATE.kind, records.FILE_DELETE.kind}
    assert reg.kinds_for({22, 3}) == process | {records.DNS_PACKET.kind, records.NET_CONNECT.kind}
    assert records.IMAGE_HASH.kind not in reg.kinds_for({1})  # the collector's own: asked with want/h/


def test_one_kind_feeds_two_events_each_through_its_own_rules() -> None:
    """What FileDelete (23) and FileDeleteDetected (26) from one FILE_DELETE will need."""

    def b23(*a: object) -> tuple[str, ...]:
        return ("23",)

    def b26(*a: object) -> tuple[str, ...]:
        return ("26",)

    reg = Registry([Produces(23, records.FILE_DELETE, b23), Produces(26, records.FILE_DELETE, b26)])
    table = reg.dispatch(frozenset({23, 26}), lambda eid: f"matcher {eid}")
    assert table[records.FILE_DELETE.kind] == (None, ((23, b23, "matcher 23"), (26, b26, "matcher 26")))
    only26 = reg.dispatch(frozenset({26}), lambda eid: f"matcher {eid}")
    assert only26[records.FILE_DELETE.kind] == (None, ((26, b26, "matcher 26"),))
    none = reg.dispatch(frozenset(), lambda eid: None)
    assert none[records.FILE_DELETE.kind] == (None, ())  # still handled: decoded, not counted as unknown
    assert reg.kinds_for({26}) == {records.FILE_DELETE.kind}
    assert reg.events_of(records.FILE_DELETE.kind) == (23, 26)


def test_declarations_are_checked() -> None:
    def b(*a: object) -> None:
        return None

    with pytest.raises(ValueError, match="not a filterable"):
        Registry([Produces(4, records.FILE_CREATE, b)])
    with pytest.raises(ValueError, match="declared twice"):
        Registry([Produces(11, records.FILE_CREATE, b), Produces(11, records.FILE_CREATE, b)])
    with pytest.raises(ValueError, match="tracked twice"):
        Registry([Tracks(records.MARKER, b), Tracks(records.MARKER, b)])
    assert Registry([Reports(4)]).linux_event_ids == {4}


def test_event_data_is_by_name_in_schema_order() -> None:
    make = event_data(11)
    fields = schema.BY_ID[11].fields
    values = make(**{f: f.lower() for f in fields if f != "RuleName"})
    assert values == ("", *(f.lower() for f in fields[1:]))
    with pytest.raises(TypeError):
        make(UtcTime="t")  # a field left out is an error, not an empty value
    with pytest.raises(TypeError):
        make(**{f: "x" for f in fields if f != "RuleName"}, Bogus="x")
    with pytest.raises(ValueError, match="no fields"):
        event_data(11, Bogus="x")
    with pytest.raises(ValueError, match="at most"):
        event_data(1)  # 22 fields to fill: more than a fast keyword call takes
    assert MAX_REQUIRED_FIELDS == 15


def test_event_data_groups() -> None:
    make = event_data(5, groups={"Who": ("ProcessGuid", "User")})
    got = make(UtcTime="t", ProcessId="1", Image="i", Who=make.Who(ProcessGuid="g", User="u"))
    assert got == ("", "t", "g", "1", "i", "u")
