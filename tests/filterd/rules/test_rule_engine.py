"""The compiled matcher against the independent reference on random configs and events (hypothesis),
plus matcher properties: constants, unfiltered events, memo behaviour, sub-event fields."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterd import schema
from filterd.config.loader import load_config_bytes
from filterd.rules import rule_set
from filterd.rules.conditions import CONDITION_NAMES
from filterd.rules.exact import exact_evaluator
from tests.filterd.rules.rules_reference import reference_decide, values_for

PC_FIELDS = ("Image", "CommandLine", "User", "ParentImage")
REG_FIELDS = ("TargetObject", "Details", "NewName", "Image")
ALPHABET = "abAB/\\;- "
small = st.text(alphabet=ALPHABET, max_size=5)
names = st.sampled_from(["", "", "n1", "n2", "n3"])


def filter_xml(fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda f, c, v, n: (
            f"<{f} condition={quoteattr(c)}" + (f" name={quoteattr(n)}" if n else "") + f">{escape(v)}</{f}>"
        ),
        st.sampled_from(fields),
        st.sampled_from(CONDITION_NAMES),
        small,
        names,
    )


def item_xml(fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    rule = st.builds(
        lambda rel, n, fs: (
            "<Rule"
            + (f' groupRelation="{rel}"' if rel else "")
            + (f' name="{n}"' if n else "")
            + ">"
            + "".join(fs)
            + "</Rule>"
        ),
        st.sampled_from(["and", "or", None]),
        names,
        st.lists(filter_xml(fields), max_size=3),
    )
    return st.one_of(filter_xml(fields), filter_xml(fields), rule)


def group_xml(tag: str, fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    def build(onmatch: str, wrap: str | None, gname: str, items: list[str]) -> str:
        el = f'<{tag} onmatch="{onmatch}">' + "".join(items) + f"</{tag}>"
        if wrap is None:
            return el
        return f'<RuleGroup name="{gname}" groupRelation="{wrap}">{el}</RuleGroup>'

    return st.builds(
        build,
        st.sampled_from(["include", "exclude"]),
        st.sampled_from([None, "and", "or"]),
        st.sampled_from(["", "g1", "g2"]),
        st.lists(item_xml(fields), max_size=5),
    )


def config_xml(tag: str, fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda v, gs: (
            f'<Sysmon schemaversion="{v}"><EventFiltering>' + "".join(gs) + "</EventFiltering></Sysmon>"
        ),
        st.sampled_from(["4.1", "4.90"]),
        st.lists(group_xml(tag, fields), min_size=0, max_size=4),
    )


def events(event_id: int, fields: tuple[str, ...]) -> st.SearchStrategy[list[dict[str, str]]]:
    present = [f for f in fields if f in schema.BY_ID[event_id].fields]
    return st.lists(st.fixed_dictionaries({f: small for f in present}), min_size=1, max_size=4)


def assert_same(xml: str, event_id: int, evs: list[dict[str, str]]) -> None:
    config = load_config_bytes(xml.encode(), "random.xml")
    m = rule_set(config).matcher(event_id)
    exact = exact_evaluator(config, event_id)
    for fields in evs:
        values = values_for(event_id, {k: (v or "-") for k, v in fields.items()})
        expected = reference_decide(config, event_id, values)
        assert m.decide(values) == expected, (xml, fields)
        assert m.decide(values) == expected  # memoized path
        assert exact.decide(values) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xml=config_xml("ProcessCreate", PC_FIELDS), evs=events(1, PC_FIELDS))
def test_process_create_matches_reference(xml: str, evs: list[dict[str, str]]) -> None:
    assert_same(xml, 1, evs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xml=config_xml("RegistryEvent", REG_FIELDS), eid=st.sampled_from([12, 13, 14]), data=st.data())
def test_registry_sub_events_match_reference(xml: str, eid: int, data: st.DataObject) -> None:
    assert_same(xml, eid, data.draw(events(eid, REG_FIELDS)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xml=config_xml("NetworkConnect", ("Image", "User", "DestinationIp", "Protocol")),
    evs=events(3, ("Image", "User", "DestinationIp", "Protocol")),
)
def test_default_exclude_type_matches_reference(xml: str, evs: list[dict[str, str]]) -> None:
    assert_same(xml, 3, evs)


# --- properties that do not need random configs ---------------------------------------------------


def load(body: str):
    return load_config_bytes(
        f'<Sysmon schemaversion="4.90"><EventFiltering>{body}</EventFiltering></Sysmon>'.encode()
    )


@pytest.mark.parametrize("eid", [4, 16, 255])
def test_unfiltered_events_always_logged(eid: int) -> None:
    cfg = load('<ProcessCreate onmatch="include"/>')
    assert rule_set(cfg).matcher(eid).constant == (True, "-")
    assert rule_set(cfg).matcher(eid).decide(("x",) * len(schema.BY_ID[eid].fields)) == (True, "-")


def test_unknown_event_id() -> None:
    with pytest.raises(KeyError):
        rule_set(load("")).matcher(99)


def test_matchers_are_cached() -> None:
    cfg = load('<ProcessCreate onmatch="include"><Image>x</Image></ProcessCreate>')
    assert rule_set(cfg).matcher(1) is rule_set(cfg).matcher(1)


def test_constant_matchers() -> None:
    assert rule_set(load("")).matcher(1).constant == (True, "-")
    assert rule_set(load("")).matcher(3).constant == (False, "-")
    assert rule_set(load('<ProcessCreate onmatch="include"/>')).matcher(1).constant == (False, "-")
    assert rule_set(load('<ProcessCreate onmatch="exclude"/>')).matcher(1).constant == (True, "-")
    assert (
        rule_set(load('<ProcessCreate onmatch="include"><Image>x</Image></ProcessCreate>'))
        .matcher(1)
        .constant
        is None
    )
    # a filter on a field the sub-event lacks can never match: constant for that id only
    reg = load('<RegistryEvent onmatch="include"><Details>x</Details></RegistryEvent>')
    assert rule_set(reg).matcher(12).constant == (False, "-")
    assert rule_set(reg).matcher(13).constant is None


def test_rulename_slot_is_ignored_and_rulename_filters_never_match() -> None:
    cfg = load(
        '<ProcessCreate onmatch="include"><RuleName condition="is not">x</RuleName>'
        '<Image name="img">/bin/ls</Image></ProcessCreate>'.replace(
            "<ProcessCreate", '<RuleGroup groupRelation="or"><ProcessCreate'
        ).replace("</ProcessCreate>", "</ProcessCreate></RuleGroup>")
    )
    v = list(values_for(1, {"Image": "/bin/ls"}))
    assert rule_set(cfg).matcher(1).decide(v) == (True, "img")
    v[0] = "something"
    assert rule_set(cfg).matcher(1).decide(v) == (True, "img")
    assert rule_set(cfg).matcher(1).decide(values_for(1, {"Image": "/bin/cat"})) == (False, "-")


def test_memo_is_bounded_and_case_exact() -> None:
    cfg = load(
        '<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">'
        '<Image condition="end with">/LS</Image><User name="u">root</User></ProcessCreate></RuleGroup>'
    )
    m = rule_set(cfg).matcher(1)
    for i in range(10000):  # more distinct values than the memo keeps
        assert m.decide(values_for(1, {"Image": f"/x/{i}"})) == (False, "-")
    assert m.decide(values_for(1, {"Image": "/usr/bin/ls"})) == (True, "-")
    assert m.decide(values_for(1, {"Image": "/usr/bin/LS"})) == (True, "-")
    assert m.decide(values_for(1, {"Image": "/usr/bin/lsx", "User": "ROOT"})) == (True, "u")


def test_non_ascii_and_nul_values() -> None:
    cfg = load(
        '<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">'
        '<CommandLine condition="contains">ÉTÉ</CommandLine><Image condition="contains">a</Image>'
        "</ProcessCreate></RuleGroup>"
    )
    m = rule_set(cfg).matcher(1)
    assert m.decide(values_for(1, {"CommandLine": "x ÉtÉ y"})) == (True, "-")
    assert m.decide(values_for(1, {"CommandLine": "x été y"})) == (False, "-")  # only ASCII folds
    assert m.decide(values_for(1, {"CommandLine": "a\x00b", "Image": "/A"})) == (True, "-")
