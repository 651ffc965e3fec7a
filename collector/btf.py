"""Kernel struct field offsets from the running kernel's BTF, through libbpf's btf API (ctypes).

Why: there are no headers for the running kernel, and layouts differ between builds, so the BPF
programs get every offset they use from a map filled here (shared/offsets.py lists them).
Anonymous unions/structs are searched recursively (mm_struct keeps its fields in one).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

from shared.offsets import OFFSET_MISSING, OFFSETS, REQUIRED

from .errors import OffsetError

BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_TYPE_TAG = 18


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size_or_type", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32), ("offset", ctypes.c_uint32)]


def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
    lib.btf__parse.restype = ctypes.c_void_p
    lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__find_by_name_kind.restype = ctypes.c_int32
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    lib.btf__free.argtypes = [ctypes.c_void_p]
    return lib


class KernelBtf:
    """A loaded BTF blob; member_offset() answers 'where is struct.member' in bytes."""

    def __init__(self, path: str | None = None) -> None:
        self._lib = _libbpf()
        self._btf = self._lib.btf__parse(path.encode(), None) if path else self._lib.btf__load_vmlinux_btf()
        if not self._btf:
            raise OffsetError(f"cannot load kernel BTF ({path or '/sys/kernel/btf/vmlinux'})")

    def close(self) -> None:
        if self._btf:
            self._lib.btf__free(self._btf)
            self._btf = None

    def _type(self, type_id: int) -> _BtfType:
        return self._lib.btf__type_by_id(self._btf, type_id).contents

    def _strip(self, type_id: int) -> int:
        """Follow typedef/const/volatile to the underlying type."""
        while True:
            t = self._type(type_id)
            kind = (t.info >> 24) & 0x1F
            if kind not in (
                BTF_KIND_TYPEDEF,
                BTF_KIND_VOLATILE,
                BTF_KIND_CONST,
                BTF_KIND_RESTRICT,
                BTF_KIND_TYPE_TAG,
            ):
                return type_id
            type_id = t.size_or_type

    def _members(self, type_id: int) -> list[tuple[str, int, int]]:
        t = self._lib.btf__type_by_id(self._btf, type_id)
        vlen = t.contents.info & 0xFFFF
        kind_flag = t.contents.info >> 31
        base = ctypes.cast(t, ctypes.c_void_p).value + ctypes.sizeof(_BtfType)
        members = (_BtfMember * vlen).from_address(base)
        out = []
        for m in members:
            bit_off = m.offset & 0xFFFFFF if kind_flag else m.offset
            name = self._lib.btf__name_by_offset(self._btf, m.name_off).decode()
            out.append((name, m.type, bit_off))
        return out

    def _find(self, type_id: int, member: str) -> int | None:
        """Bit offset of `member` inside type_id, looking through anonymous members."""
        for name, mtype, bit_off in self._members(type_id):
            if name == member:
                return bit_off
            if not name:
                inner = self._strip(mtype)
                kind = (self._type(inner).info >> 24) & 0x1F
                if kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                    found = self._find(inner, member)
                    if found is not None:
                        return bit_off + found
        return None

    def member_offset(self, struct_name: str, member: str) -> int | None:
        type_id = self._lib.btf__find_by_name_kind(self._btf, struct_name.encode(), BTF_KIND_STRUCT)
        if type_id < 0:
            return None
        bits = self._find(type_id, member)
        if bits is None or bits % 8:
            return None
        return bits // 8


def resolve_offsets(btf_path: str | None = None) -> dict[str, int]:
    """Every OFFSETS entry -> byte offset (OFFSET_MISSING when absent and optional)."""
    btf = KernelBtf(btf_path)
    try:
        result: dict[str, int] = {}
        for name, struct_name, members in OFFSETS:
            off = None
            for member in members.split("|"):
                off = btf.member_offset(struct_name, member)
                if off is not None:
                    break
            if off is None:
                if name in REQUIRED:
                    raise OffsetError(f"BTF has no field {struct_name}.{members} (needed for {name})")
                off = OFFSET_MISSING
            result[name] = off
        return result
    finally:
        btf.close()


def pack_offsets(offsets: dict[str, int]) -> bytes:
    """The `struct sysmon_offsets` value for the BPF map, in OFFSETS order."""
    return struct.pack("<" + "I" * len(OFFSETS), *(offsets[name] for name, _, _ in OFFSETS))
