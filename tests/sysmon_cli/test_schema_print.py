"""`sysmon -s`: the shipped manifest, its 4.90 block against filterd/schema.py, version selection."""

from __future__ import annotations

from lxml import etree

from filterd import schema
from sysmon_cli.schema_print import manifest_blocks, select


def test_latest_is_490_and_matches_the_event_table() -> None:
    version, block = manifest_blocks()[0]
    assert version == schema.SCHEMA_VERSION == "4.90"
    root = etree.fromstring(block.encode())
    assert root.get("binaryversion") == "18"
    events = {int(e.get("value")): e for e in root.iter("event")}
    assert set(events) == {e.id for e in schema.EVENT_TYPES}
    for ev in schema.EVENT_TYPES:
        el = events[ev.id]
        assert el.get("name") == ev.name
        assert el.get("template") == ev.template
        assert el.get("rulename") == ev.rule_tag
        assert tuple(d.get("name") for d in el.iter("data")) == ev.fields, ev.name


def test_every_upstream_version_is_there() -> None:
    versions = [v for v, _ in manifest_blocks()]
    for v in ("4.90", "4.81", "4.80", "4.70", "4.60", "4.50", "4.40", "4.32", "4.22", "4.1", "4.0"):
        assert v in versions
    assert len(versions) == len(set(versions))


def test_select() -> None:
    assert select(None) == [manifest_blocks()[0][1]]
    assert len(select("all")) == len(manifest_blocks())
    assert [etree.fromstring(b.encode()).get("schemaversion") for b in select("4.8")] == ["4.81", "4.80"]
    assert select("9.9") == []


def test_blocks_are_well_formed_and_raw() -> None:
    for _, block in manifest_blocks():
        assert block.lstrip().startswith("<manifest schemaversion=")
        assert block.rstrip().endswith("</manifest>")
        etree.fromstring(block.encode())
