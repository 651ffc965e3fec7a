"""filterd.guid: Sysmon GUIDs checked against real emitted values and the reference algorithm."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.guid import ZERO_GUID, logon_guid, machine_id_from, process_guid

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "captured"  # tests/data/SOURCES.md
MACHINE = 0x3D1219C7  # /etc/machine-id prefix of the capture host


def _reference(machine_id: int, seconds: int, key: int) -> str:
    """Upstream's GUID layout, written out by hand."""
    b = struct.pack("<IIQ", machine_id, seconds & 0xFFFFFFFF, key)
    d1, d2, d3 = struct.unpack("<IHH", b[:8])
    return "{%08x-%04x-%04x-%s-%s}" % (d1, d2, d3, b[8:10].hex(), b[10:16].hex())  # noqa: UP031


def test_captured_process_guids() -> None:
    # event-01-processcreate-cp.xml: cp, and its parent dash
    assert process_guid(MACHINE, 0x6B02BA90, 0x000056323D77BD79) == "{3d1219c7-ba90-6b02-79bd-773d32560000}"
    assert process_guid(MACHINE, 0x6B02BA90, 0x000055B2C49BCBB9) == "{3d1219c7-ba90-6b02-b9cb-9bc4b2550000}"
    # exited process the cache never saw: end_code 0
    assert process_guid(MACHINE, 0x6B02BA90, 0) == "{3d1219c7-ba90-6b02-0000-000000000000}"


def test_known_logon_guids() -> None:
    assert logon_guid(MACHINE, 0, 0, 0) == "{3d1219c7-0000-0000-0000-000000000000}"  # captured event 1
    assert logon_guid(0x810F3998, 0, 1, 1000) == "{810f3998-0000-0000-e803-000001000000}"  # SigmaHQ #2152
    assert logon_guid(0x3E748DCD, 0x693465F1, 2, 1000) == "{3e748dcd-65f1-6934-e803-000002000000}"
    assert logon_guid(0xD65774DE, 0, 0xFFFFFFFF, 0xFFFFFFFF) == "{d65774de-0000-0000-ffff-ffffffffffff}"


def test_zero_guid() -> None:
    assert ZERO_GUID == "{00000000-0000-0000-0000-000000000000}"
    assert process_guid(0, 0, 0) == ZERO_GUID


def test_every_captured_guid_has_machine_prefix_and_shape() -> None:
    files = sorted(CAPTURED.glob("*"))
    assert len(files) == 15, f"test data missing under {CAPTURED}"
    text = "".join(p.read_text() for p in files)
    guids = set(re.findall(r"\{[0-9a-f-]{36}\}", text)) - {"{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"}
    assert guids
    for g in guids:
        m, s_lo, s_hi, k1, k2 = g[1:-1].split("-")
        if g == ZERO_GUID:
            continue
        assert int(m, 16) == MACHINE
        key = int.from_bytes(bytes.fromhex(k1 + k2), "little")
        seconds = int(s_hi + s_lo, 16)
        assert process_guid(MACHINE, seconds, key) == g


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_matches_reference_algorithm(machine_id: int, seconds: int, key: int) -> None:
    assert process_guid(machine_id, seconds, key) == _reference(machine_id, seconds, key)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1))
def test_logon_key_layout(machine_id: int, seconds: int, tty: int, uid: int) -> None:
    assert logon_guid(machine_id, seconds, tty, uid) == _reference(machine_id, seconds, (tty << 32) | uid)


def test_out_of_range_inputs_wrap_like_c() -> None:
    assert process_guid(-1, 2**32 + 5, -1) == _reference(0xFFFFFFFF, 5, 2**64 - 1)


# -- machine id -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("3d1219c7c4c5404aaa1f6d2a48adfda4\n", 0x3D1219C7),
    ("ffffffff00000000", 0xFFFFFFFF),
    ("", 0),
    ("not-hex!", 0),
    ("abc", 0xABC),
    ("12zz3456", 0x12),
    ("  1a2b3c4", 0x1A2B3C),  # whitespace counts towards the 8 chars
    ("0x123456789", 0x123456),
    ("-1", 0xFFFFFFFF),
    ("0xzz", 0),
])
def test_machine_id_from(text: str, expected: int) -> None:
    assert machine_id_from(text) == expected


_libc_name = ctypes.util.find_library("c")


@pytest.mark.skipif(_libc_name is None, reason="no libc")
@given(st.text(st.sampled_from("0123456789abcdefABCDEFxX+- \tgz\n"), max_size=12))
def test_machine_id_from_matches_c_strtol(text: str) -> None:
    libc = ctypes.CDLL(_libc_name)
    libc.strtol.restype = ctypes.c_long
    libc.strtol.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    expected = libc.strtol(text[:8].encode(), None, 16) & 0xFFFFFFFF
    assert machine_id_from(text) == expected


def test_machine_id_of_this_host_if_readable() -> None:
    try:
        content = Path("/etc/machine-id").read_text()
    except OSError:
        pytest.skip("no /etc/machine-id")
    assert machine_id_from(content) == int(content[:8], 16)
