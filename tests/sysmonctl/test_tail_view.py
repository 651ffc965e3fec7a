"""sysmonctl's readable views without a daemon: tail lines and filters, the stats table."""

from __future__ import annotations

import pytest

from sysmonctl.control_cli import stats_rows
from sysmonctl.tail import Filter, event_line, parse_event

XML = (
    '<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
    "<EventID>1</EventID><Version>5</Version><EventRecordID>42</EventRecordID></System><EventData>"
    '<Data Name="RuleName">-</Data><Data Name="UtcTime">2026-11-22 13:33:41.393</Data>'
    '<Data Name="ProcessId">916</Data><Data Name="Image">/usr/bin/sleep</Data>'
    '<Data Name="FileVersion">-</Data><Data Name="CommandLine">sleep 1 &lt;x&gt;</Data>'
    '<Data Name="User">root</Data></EventData></Event>'
)


def test_event_line() -> None:
    eid, rid, fields = parse_event(XML)
    assert (eid, rid) == (1, "42")
    line = event_line(eid, rid, fields)
    assert line == (
        "2026-11-22 13:33:41.393 #42 [1 ProcessCreate] ProcessId=916 Image=/usr/bin/sleep "
        "CommandLine=sleep 1 <x> User=root"
    )
    assert event_line(eid, rid, fields, ["Image", "Nope"]).endswith("[1 ProcessCreate] Image=/usr/bin/sleep")
    assert "[255 Error]" in event_line(255, "1", {"UtcTime": "t"})


def test_filters() -> None:
    _, _, fields = parse_event(XML)
    assert Filter("1,3", []).wants_id(1) and not Filter("3", []).wants_id(1) and Filter(None, []).wants_id(7)
    assert Filter(None, ["Image=/USR/bin/sleep"]).wants(fields)  # case-insensitive, exact
    assert not Filter(None, ["Image=sleep"]).wants(fields)
    assert Filter(None, ["Image=*/sleep"]).wants(fields)
    assert Filter(None, ["Image=*/bash", "Image=*/sleep"]).wants(fields)  # same field: or
    assert not Filter(None, ["Image=*/sleep", "User=alice"]).wants(fields)  # different fields: and
    assert not Filter(None, ["Missing=*x*"]).wants(fields)
    with pytest.raises(ValueError):
        Filter(None, ["Image"])


def test_stats_rows_follow_the_hops() -> None:
    r = {
        "collectors": {
            "abc": {
                "hostname": "vm",
                "kernel_emitted": {"1": 10, "4": 0},
                "kernel_dropped": {"1": 2, "4": 0},
                "ring_records": 10,
                "published": {"batches": 3, "records": 8, "hwm_drops": 1, "records_dropped": 2},
            }
        },
        "filterd": {
            "batches": 3,
            "gap_batches": 1,
            "decoded": 8,
            "included": 5,
            "excluded": 3,
            "written": 7,
            "MalformedFrame": 1,
        },
        "sinks": {"SyslogSink": {"sent": 7, "dropped": 0}},
        "tail": {},
        "rule_hits": {},
    }
    rows = dict(stats_rows(r))
    assert rows["  kernel emitted PROCESS_EXEC"] == 10 and rows["  kernel dropped PROCESS_EXEC"] == 2
    assert not any("FILE_CREATE" in k for k in rows)  # kinds with nothing to say are left out
    assert rows["  publish hwm drops (batches)"] == 1 and rows["  published records"] == 8
    assert rows["  batches lost (sequence gaps)"] == 1 and rows["  events written"] == 7
    assert rows["  MalformedFrame"] == 1 and rows["  sink SyslogSink sent"] == 7
    labels = [k for k, _ in stats_rows(r)]
    assert (
        labels.index("  published records")
        < labels.index("  records decoded")
        < labels.index("  sink SyslogSink sent")
    )
