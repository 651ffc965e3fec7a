"""Structure-aware fuzzing of the real Pipeline: no record content may raise out of it.

Records of every kind in shared/records.py are built with struct directly (fast enough for a
million): boundary and random field values, honest and lying string lengths and record sizes,
unknown kinds, snapshot flags, and DNS payloads from a corpus of answers cut at every byte,
with compression loops, wrong and huge counts. They go through Pipeline.on_batch (and some
through Receiver.handle inside a real envelope) many to a batch, with stream numbers that are
mostly right and sometimes not. Any exception escaping fails the test; afterwards the pipeline
must still log a plain exec.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from pathlib import Path

import pytest

from filterd.config.loader import load_config_bytes
from filterd.pipeline import Pipeline
from filterd.receiver import Receiver
from filterd.state.record_id import RecordIdCounter
from shared import envelope, records
from shared.decode import encode, split_path

pytestmark = pytest.mark.slow  # ~20 s: outside CI's fast tier, inside its whole-suite run
RECORDS = 1_000_000
PER_BATCH = 1000
ORIGIN = "fuzz/origin"
ALL = b"""<Sysmon schemaversion="4.90"><HashAlgorithms>SHA1,MD5,SHA256</HashAlgorithms><EventFiltering>
<ProcessCreate onmatch="exclude"/><ProcessTerminate onmatch="exclude"/><NetworkConnect onmatch="exclude"/>
<RawAccessRead onmatch="exclude"/><ProcessAccess onmatch="exclude"/><FileCreate onmatch="exclude"/>
<FileDelete onmatch="exclude"/><DnsQuery onmatch="exclude"/><eBPFEvent onmatch="exclude"/>
</EventFiltering></Sysmon>"""
HOST = {
    "hostname": "fuzz",
    "machine_id": "3d1219c7aa",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {0: "root", 1000: "alice"},
    "logins": [["pts/0", "alice", 5]],
    "collector_pid": 42,
}
BITS = {"u8": 8, "u16": 16, "u32": 32, "s32": 32, "u64": 64, "s64": 64}
BOUNDARY = {
    c: [0, 1, 2, (1 << b) - 1, (1 << b) - 2, 1 << (b - 1), (1 << (b - 1)) - 1]
    for c, b in BITS.items()
    if c[0] == "u"
}
BOUNDARY["s32"] = [0, 1, -1, -100, 2**31 - 1, -(2**31)]
BOUNDARY["s64"] = [0, 1, -1, 2**63 - 1, -(2**63)]


# -- DNS corpus ------------------------------------------------------------------------------------
def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def _answer(
    name: str, rrs: list[tuple[int, bytes]], qd: int = 1, an: int | None = None, rcode: int = 0
) -> bytes:
    an = len(rrs) if an is None else an
    out = struct.pack(">HHHHHH", 0x1234, 0x8180 | rcode, qd, an, 0, 0) + _qname(name) + b"\0\1\0\1"
    for rtype, rdata in rrs:
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata
    return out


def dns_corpus() -> list[bytes]:
    rrs = [
        (5, b"\x03www\xc0\x0c"),
        (1, bytes([93, 184, 216, 34])),
        (28, bytes(15) + b"\1"),
        (2, b"\x02ns\xc0\x0c"),
        (12, b"\x03ptr\xc0\x0c"),
        (15, b"\0\x0a\x02mx\xc0\x0c"),
        (16, b"\x05hello"),
        (1, b"\1\2"),  # an A record of the wrong length
    ]
    full = _answer("example.com", rrs)
    out = [full[:cut] for cut in range(len(full) + 1)]  # cut at every byte
    a = _answer("a.b", [(1, bytes([1, 2, 3, 4]))])
    out += [
        a[:4] + struct.pack(">HH", qd, an) + a[8:] for qd in (0, 1, 2, 255, 65535) for an in (0, 1, 2, 65535)
    ]
    hdr = struct.pack(">HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    out += [
        hdr + b"\xc0\x0c\0\1\0\1",  # pointer to itself
        hdr + b"\x01a\xc0\x0c\0\1\0\1",  # label then back to its own start
        hdr + b"\xc0\x0e\xc0\x0c\0\1\0\1",  # two pointers at each other
        hdr + b"\xc0\xff\0\1\0\1",  # forward, past the end
        hdr + b"\x01a\0\0\1\0\1" + b"\xc0\x12" + struct.pack(">HHIH", 5, 1, 0, 2) + b"\xc0\x1b",  # CNAME loop
        hdr + (b"\x3fxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" * 8) + b"\0",
        hdr + b"\x40x\0",  # extended label
        hdr
        + b"\x01a\0\0\1\0\1"
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 1, 1, 0, 65535)
        + b"\1\2\3\4",  # rdlen lies
        _answer("x", [(1, b"\0\0\0\0")] * 40, an=65535),  # more answers announced than a packet holds
        _answer("nx.example", [], rcode=3),
    ]
    return out


# -- record generator ------------------------------------------------------------------------------
class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.structs = {k.kind: struct.Struct(k.fmt) for k in records.KINDS}
        self.dns = dns_corpus()
        self.dns_i = 0
        self.numbered = 0
        self.per_kind: Counter[int] = Counter()
        r = self.r
        paths = [
            b"",
            b"\0",
            split_path("/usr/bin/true"),
            b"a" * 255 + b"\0",
            b"\xff\xfe\x80\0",
            b"<&>\x01\x1b\0",
            r.randbytes(300),
        ]
        self.strings = {
            "exe": paths,
            "cwd": paths,
            "path": paths,
            "base": paths,
            "target_exe": paths,
            "args": [b"", b"true\0", b"\0\0\0", b"x" * 4000 + b"\0", b"\xed\xa0\x80\0", r.randbytes(64)],
            "name": [b"", b"sysmon_test\0", b"relative/x\0", b"/abs\0", b"\xff" * 16, b"\0" * 16],
            "digests": [b"", bytes(20), bytes(68), r.randbytes(50), b"\1"],
        }

    def value(self, ctype: str) -> int:
        r = self.r
        if r.random() < 0.35:
            return r.choice(BOUNDARY[ctype])
        b = BITS[ctype]
        v = r.getrandbits(b)
        return v - (1 << b) if ctype[0] == "s" and v >= 1 << (b - 1) else v

    def payload(self) -> bytes:
        self.dns_i += 1
        if self.dns_i % 4 == 0:
            return self.r.randbytes(self.r.randrange(0, 520))
        return self.dns[self.dns_i % len(self.dns)]

    def record(self, out: bytearray) -> None:
        r = self.r
        if r.random() < 0.01:  # a kind nobody defined (below 16: a kernel kind, numbered)
            kind = r.choice((0, 11, 15, 63, 66, 65535))
            out += struct.pack("<HHIQII", kind, 0, 24, 0, 1, 1)
            self.numbered += 0 < kind < records.MAX_BPF_KIND
            return
        spec = r.choice(records.KINDS)
        self.per_kind[spec.kind] += 1
        fields = spec.all_fields
        vals = [self.value(f.ctype) for f in fields]
        if spec is records.DNS_PACKET:
            strings = [self.payload()]
            vals[[f.name for f in fields].index("protocol")] = r.choice((6, 17, 17, 17))
        else:
            strings = [
                r.choice(self.strings.get(s, [b""]))[: spec.string_max.get(s, 4096) + r.choice((0, 0, 100))]
                for s in spec.strings
            ]
        n_str = len(spec.strings)
        first_len = len(fields) - n_str - sum(f.name.startswith("_pad") for f in fields)
        for i, s in enumerate(strings):
            vals[first_len + i] = len(s) if r.random() < 0.9 else r.getrandbits(16)  # lengths that lie
        size = spec.fixed_size + sum(len(s) for s in strings)
        roll = r.random()
        if roll < 0.01:
            size = r.randrange(records.HEADER_SIZE, spec.fixed_size + 1)  # shorter than its fixed part
        vals[0], vals[2] = spec.kind, size
        vals[1] = r.choice((0, 0, 0, records.REC_F_SNAPSHOT, 0xFFFF, r.getrandbits(16)))
        rec = self.structs[spec.kind].pack(*vals) + b"".join(strings)
        out += rec[:size] if size <= len(rec) else rec + bytes(size - len(rec))
        if spec.origin == "bpf" and not vals[1] & records.REC_F_SNAPSHOT:
            self.numbered += 1


class NullSink:
    def __init__(self) -> None:
        self.n = 0
        self.sent = self.dropped = 0

    def send_many(self, xmls: list[str]) -> None:
        self.n += len(xmls)

    def close(self) -> None:
        pass


def test_a_million_records_raise_nothing(tmp_path: Path) -> None:
    sink = NullSink()
    ids = RecordIdCounter(tmp_path / "eventId")
    p = Pipeline(load_config_bytes(ALL, "all.xml"), [sink], ids, state_dir=tmp_path)
    receiver = Receiver.__new__(Receiver)  # handle() only: the envelope path without sockets
    receiver.pipeline, receiver.stats = p, p.stats
    p.on_host(ORIGIN, HOST)
    g = Gen(1)
    buf = bytearray()
    made = seq = 0
    while made < RECORDS:
        buf.clear()
        first = g.numbered
        for _ in range(PER_BATCH):
            g.record(buf)
        made += PER_BATCH
        if seq % 13 == 0:  # a size past the end of the batch: the rest of it is unreadable
            buf += struct.pack("<HHIQII", 1, 0, 1 << 20, 0, 1, 1)
        if seq % 97 == 0:
            first += g.r.choice((-500, -1, 1, 10_000))  # resends and gaps
        if seq % 50 == 0:
            receiver.handle([b"rec", envelope.pack_batch(ORIGIN, seq, bytes(buf), seq, 1, max(first, 0))])
        else:
            p.on_batch(ORIGIN, seq, bytes(buf), seq, 1, max(first, 0))
        if seq % 200 == 0:
            p.tick()
        seq += 1
    assert receiver.stats["bad_content"] == 0  # nothing raised inside the pipeline either
    assert set(g.per_kind) == {k.kind for k in records.KINDS}
    bad = {k: v for k, v in p.stats.items() if k.startswith("bad_record_")}
    assert p.stats["decoded"] > RECORDS // 3 and sink.n > RECORDS // 10, p.stats
    assert bad and p.stats["UnknownKind"] and p.stats["truncated_batches"]
    dns = p.stats["unparsed_DNS_PACKET"]
    assert dns, p.stats
    before = sink.n
    p.on_batch(
        ORIGIN, seq, encode(records.PROCESS_EXEC, (split_path("/usr/bin/id"), b"", b"id\0"), pid=5), 0, 2, 0
    )
    assert sink.n == before + 1
    p.streams.close()
    ids.close()
