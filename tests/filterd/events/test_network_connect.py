"""NetworkConnect (3): address rendering as upstream's IPAddressToString, and the builder."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from filterd.events.network_connect import ip_text
from shared import records
from shared.decode import encode
from tests.filterd.events.records_at_hand import ACTOR_GUID, ACTOR_IMAGE, ACTOR_PID, at, event


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


# -- the builder, from hand-built records -----------------------------------------------------------


def test_tcp_connect_v4() -> None:
    rec = encode(
        records.NET_CONNECT, pid=ACTOR_PID, uid=1000, family=2, protocol=6, initiated=1, sport=40000,
        dport=443, saddr_lo=int.from_bytes(bytes([10, 0, 0, 5]), "little"),
        daddr_lo=int.from_bytes(bytes([93, 184, 216, 34]), "little"), time_ns=at(14),
    )  # fmt: skip
    assert event(3, rec) == {
        "RuleName": "",
        "UtcTime": "2023-11-14 22:13:34.000",
        "ProcessGuid": ACTOR_GUID,
        "ProcessId": "4242",
        "Image": ACTOR_IMAGE,
        "User": "alice",
        "Protocol": "tcp",
        "Initiated": "true",
        "SourceIsIpv6": "false",
        "SourceIp": "10.0.0.5",
        "SourceHostname": "-",
        "SourcePort": "40000",
        "SourcePortName": "-",
        "DestinationIsIpv6": "false",
        "DestinationIp": "93.184.216.34",
        "DestinationHostname": "-",
        "DestinationPort": "443",
        "DestinationPortName": "-",
    }


def test_udp_receive_v6() -> None:
    src, dst = raw(bytes(15) + b"\2"), raw(b"\xfe\x80" + bytes(13) + b"\1")
    rec = encode(
        records.NET_CONNECT, pid=ACTOR_PID, uid=0, family=10, protocol=17, initiated=0, sport=53, dport=5353,
        saddr_hi=src[0], saddr_lo=src[1], daddr_hi=dst[0], daddr_lo=dst[1],
    )  # fmt: skip
    ev = event(3, rec)
    assert ev is not None
    assert (ev["Protocol"], ev["Initiated"], ev["SourceIsIpv6"], ev["DestinationIsIpv6"]) == (
        "udp",
        "false",
        "true",
        "true",
    )
    assert (ev["SourceIp"], ev["SourcePort"]) == ("0:0:0:0:0:0:0:2", "53")
    assert (ev["DestinationIp"], ev["DestinationPort"], ev["User"]) == ("fe80:0:0:0:0:0:0:1", "5353", "root")
