"""Host contexts come off the wire: every field is checked, none can raise or poison later events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filterd.render.timefmt import utc_time
from filterd.state.hosts import HostState

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-5, 5) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["hostname", "machine_id", "boot_epoch_ns", "users", "logins", "collector_pid", "collector_version",
        "uptime_s", "counters", "progress", "heartbeat_s"]  # fmt: skip


@given(st.dictionaries(st.sampled_from(KEYS), values))
def test_any_context_is_taken_field_by_field(ctx: dict) -> None:
    h = HostState("o")
    h.update(ctx)
    assert h.ready and isinstance(h.hostname, str) and isinstance(h.counters, dict)
    assert all(type(k) is int and isinstance(v, str) for k, v in h.users.items())
    utc_time(2**64 - 1 + h.boot_epoch_ns)  # every kernel time stays printable
    h.user_name(0)
    h.logon_guid(1, 0, "x")


def test_good_context() -> None:
    h = HostState("o")
    h.update({"hostname": "h1", "users": {0: "root", "1000": "alice"}, "logins": [["pts/0", "alice", 5]],
              "boot_epoch_ns": 7, "collector_pid": 42})  # fmt: skip
    assert (h.hostname, h.users, h.logins, h.boot_epoch_ns, h.collector_pid) == (
        "h1", {0: "root", 1000: "alice"}, {("pts/0", "alice"): 5}, 7, 42)  # fmt: skip
    h.update({"boot_epoch_ns": 2**63})
    assert h.boot_epoch_ns == 7 and h.bad_fields == 0  # the first epoch is kept
    h2 = HostState("o")
    h2.update({"boot_epoch_ns": 2**63, "collector_pid": -1, "users": {"x": "y"}, "logins": [["a"]]})
    assert (h2.boot_epoch_ns, h2.collector_pid, h2.users, h2.logins) == (0, 0, {}, {})
    assert h2.bad_fields == 4


@given(st.dictionaries(st.integers(0, 3) | st.text(max_size=4), values, max_size=6))
def test_counters_can_always_be_dumped_as_json(counters: dict) -> None:
    import json

    h = HostState("o")
    h.update({"counters": counters})
    json.dumps({"hostname": "h", **h.counters}, allow_nan=False)
