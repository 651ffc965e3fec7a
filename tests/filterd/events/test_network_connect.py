"""Address rendering as upstream's IPAddressToString."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from filterd.events.network_connect import ip_text


def raw(b: bytes) -> tuple[int, int]:
    return int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")


def test_ipv4_and_uncompressed_ipv6() -> None:
    assert ip_text(2, 0, int.from_bytes(bytes([127, 0, 0, 1]), "little")) == "127.0.0.1"
    assert ip_text(10, *raw(bytes(15) + b"\1")) == "0:0:0:0:0:0:0:1"
    assert ip_text(10, *raw(bytes(10) + b"\xff\xff\x7f\0\0\1")) == "0:0:0:0:0:ffff:7f00:1"


@given(st.binary(min_size=16, max_size=16))
def test_ipv6_groups_round_trip(b: bytes) -> None:
    text = ip_text(10, *raw(b))
    assert len(text.split(":")) == 8
    assert ipaddress.IPv6Address(text).packed == b
