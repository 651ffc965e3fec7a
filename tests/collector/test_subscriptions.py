"""The subscription parser is total and the table bounded, whatever a peer subscribes to.

A million random and boundary topics go through the real parser and table (a fast seeded
generator for the bulk, hypothesis for shrinking and properties), checked against an
independent regex oracle; then a live collector gets the hostile topics from a raw ZeroMQ
socket and keeps running and publishing.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
import uuid
from collections import Counter

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.subscriptions import (
    IGNORE_REASONS,
    MAX_ACKS,
    MAX_NEWS,
    MAX_TOPIC_BYTES,
    Ack,
    Host,
    Ignored,
    Mark,
    Records,
    Request,
    SubscriptionTable,
    WantDeleted,
    WantHash,
    WantKind,
    parse_topic,
)
from shared import envelope, records
from tests.harness.daemons import Monitor

U64 = 1 << 64
ALGOS = [name for _, name, _ in records.HASH_ORDER]
PREFIXES = [b"rec", b"host", b"want/d", b"want/k/", b"want/h/", b"mark/", b"ack/"]
NUM = re.compile(rb"0|[1-9][0-9]*")
UNICODE_DIGITS = ["²", "³", "¹", "١", "٣", "۵", "५", "๓", "᠑", "５", "𝟙", "⑦", "½", "Ⅻ", "〇"]


def oracle(topic: bytes) -> Request | Ignored:
    """The grammar of shared/envelope.py written another way: regexes, not the parser's code."""
    if len(topic) > MAX_TOPIC_BYTES:
        return Ignored("too_long")
    if topic in (b"rec", b"host"):
        return Records() if topic == b"rec" else Host()
    if topic == b"want/d":
        return WantDeleted()

    def number(raw: bytes) -> int | Ignored:
        if not NUM.fullmatch(raw):
            return Ignored("bad_number")
        return int(raw) if int(raw) < U64 else Ignored("out_of_range")

    if m := re.fullmatch(rb"want/k/(.*)", topic, re.S):
        n = number(m[1])
        if isinstance(n, Ignored):
            return n
        return WantKind(n) if n < records.MAX_BPF_KIND else Ignored("out_of_range")
    if m := re.fullmatch(rb"want/h/(.*)", topic, re.S):
        return WantHash(m[1].decode()) if m[1].decode("latin-1") in ALGOS else Ignored("unknown_algo")
    if m := re.fullmatch(rb"mark/(.*)", topic, re.S):
        n = number(m[1])
        return n if isinstance(n, Ignored) else Mark(n)
    if m := re.fullmatch(rb"ack/(.*)", topic, re.S):
        parts = m[1].split(b"/", 1)
        if len(parts) != 2:
            return Ignored("bad_number")
        e, n = number(parts[0]), number(parts[1])
        for v in (e, n):
            if isinstance(v, Ignored):
                return v
        return Ack(e, n)
    return Ignored("unknown_topic")


def topic_of(req: Request) -> bytes:
    """The one topic that means `req` (numbers are canonical)."""
    if isinstance(req, Records):
        return b"rec"
    if isinstance(req, Host):
        return b"host"
    if isinstance(req, WantDeleted):
        return b"want/d"
    if isinstance(req, WantKind):
        return b"want/k/%d" % req.kind
    if isinstance(req, WantHash):
        return b"want/h/" + req.algo.encode()
    if isinstance(req, Mark):
        return b"mark/%d" % req.token
    return b"ack/%d/%d" % (req.epoch, req.next_record)


# -- bulk: a seeded generator of hostile and boundary topics ---------------------------------
BOUNDARY_NUMBERS = [
    0,
    1,
    9,
    10,
    15,
    16,
    17,
    255,
    256,
    2**31,
    2**32,
    2**63,
    U64 - 1,
    U64,
    U64 + 1,
    10**19,
    10**20,
    10**40,
    10**100,
]


def _number_text(r: random.Random) -> bytes:
    c = r.randrange(12)
    if c == 0:
        return str(r.choice(BOUNDARY_NUMBERS)).encode()
    if c == 1:
        return str(r.randrange(records.MAX_BPF_KIND + 4)).encode()
    if c == 2:
        return b"0" * r.randrange(1, 25) + str(r.randrange(100)).encode()  # leading zeros
    if c == 3:
        return (
            r.choice([b"-", b"+", b" ", b"\t", b"\n", b"_", b"\x00", b"0x", b"0b", b"0o"])
            + str(r.randrange(U64)).encode()
        )
    if c == 4:
        return str(r.randrange(U64)).encode() + r.choice([b" ", b"\n", b"_1", b"\x00", b".0", b"e3", b"L"])
    if c == 5:
        return "".join(
            r.choice(UNICODE_DIGITS + list("0123456789")) for _ in range(r.randrange(1, 6))
        ).encode()
    if c == 6:
        return b""
    if c == 7:
        return str(r.randrange(10 ** r.randrange(1, 45))).encode()
    if c == 8:
        return bytes(r.randrange(0x30, 0x3A) for _ in range(r.randrange(18, 23)))
    if c == 9:
        return "١٢٣".encode() if r.random() < 0.5 else "²".encode("utf-16")
    return str(r.randrange(U64)).encode()


def _garbage(r: random.Random) -> bytes:
    n = r.choice([0, 1, 2, 5, 20, 44, 45, 46, 63, 64, 65, 80, 200, 1000, 10_000])
    return r.randbytes(n)


def hostile_topics(seed: int, count: int) -> list[bytes]:
    r = random.Random(seed)
    out = []
    for _ in range(count):
        c = r.randrange(10)
        if c == 0:
            topic = _garbage(r)
        elif c == 1:
            topic = r.choice(PREFIXES) + _garbage(r)
        elif c in (2, 3):
            topic = r.choice([b"want/k/", b"mark/"]) + _number_text(r)
        elif c == 4:
            topic = b"ack/" + _number_text(r) + r.choice([b"/", b"/", b"//", b"", b"\\"]) + _number_text(r)
        elif c == 5:
            algo = r.choice(ALGOS + ["IMPHASH", "sha256", "SHA-256", "MD5 ", "", "SHA1\x00", "Ｓ"])
            topic = b"want/h/" + algo.encode()
        elif c == 6:
            p = r.choice(PREFIXES)
            topic = p[: r.randrange(len(p) + 1)] + p[r.randrange(len(p)) :]  # mangled prefixes
        elif c == 7:
            topic = r.choice(PREFIXES) + r.choice([b"9", b"1/2", b"SHA256"]) * r.randrange(1, 3000)
        elif c == 8:
            topic = bytes([r.randrange(256)]) + r.choice(PREFIXES) + _number_text(r)
        else:  # valid ones too, so the table fills and drains
            topic = r.choice(
                [
                    b"rec",
                    b"host",
                    b"want/h/SHA256",
                    b"want/k/%d" % r.randrange(16),
                    b"mark/%d" % r.randrange(U64),
                    b"ack/%d/%d" % (r.randrange(3), r.randrange(5000)),
                ]
            )
        out.append(topic)
    return out


def test_a_million_hostile_topics_parse_and_stay_bounded() -> None:
    table = SubscriptionTable()
    applied = ignored = 0
    seen_reasons: Counter[str] = Counter()
    r = random.Random(7)
    for seed in range(20):
        for i, topic in enumerate(hostile_topics(seed, 50_000)):
            req = parse_topic(topic)
            assert req == oracle(topic), topic
            if not isinstance(req, Ignored):
                assert topic_of(req) == topic  # exactly one topic per value
            subscribed = r.random() < 0.7
            why = table.update(subscribed, topic, r.randrange(2))
            if why is None:
                applied += 1
            else:
                ignored += 1
                seen_reasons[why] += 1
            if i % 1000 == 0:  # the collector reads its news every tick
                news = table.take_news()
                assert len(news.marks) <= MAX_NEWS and len(news.acks) <= MAX_NEWS
        assert len(table) <= 2 * (3 + records.MAX_BPF_KIND + len(ALGOS)) + MAX_ACKS
        assert len(table.acks) <= MAX_ACKS and len(table.topics) <= len(table)
    assert applied + ignored == 1_000_000
    assert set(table.ignored) <= set(IGNORE_REASONS) and table.ignored == seen_reasons
    assert set(seen_reasons) >= set(IGNORE_REASONS) - {"news_full"}  # every path was taken
    assert table.kinds <= set(range(records.MAX_BPF_KIND)) and table.hash_algos <= set(ALGOS)
    assert table.ignored["table_full"] > 0


# -- hypothesis --------------------------------------------------------------------------------
@given(st.binary(max_size=120))
def test_any_bytes_parse(topic: bytes) -> None:
    req = parse_topic(topic)
    assert req == oracle(topic)
    assert req.reason in IGNORE_REASONS if isinstance(req, Ignored) else topic_of(req) == topic


@given(st.sampled_from(PREFIXES + [b"ack/1/", b"ack/"]), st.text(max_size=30))
def test_any_text_after_a_known_prefix_parses(prefix: bytes, text: str) -> None:
    topic = prefix + text.encode("utf-8", "surrogatepass")
    assert parse_topic(topic) == oracle(topic)


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_numbers_are_u64_only(n: int) -> None:
    ok = 0 <= n < U64
    assert parse_topic(b"mark/%d" % n) == (
        Mark(n) if ok else Ignored("bad_number" if n < 0 else "out_of_range")
    )
    assert parse_topic(b"ack/%d/0" % n) == (Ack(n, 0) if ok else parse_topic(b"mark/%d" % n))
    kind = parse_topic(b"want/k/%d" % n)
    assert kind == WantKind(n) if 0 <= n < records.MAX_BPF_KIND else isinstance(kind, Ignored)


@given(st.characters(categories=["Nd", "No", "Nl"]))
def test_only_ascii_digits_are_digits(c: str) -> None:
    req = parse_topic(b"want/k/" + c.encode())
    assert req == (WantKind(int(c)) if c in "0123456789" else Ignored("bad_number"))


POOL = [
    b"rec",
    b"host",
    b"want/d",
    b"want/k/1",
    b"want/k/2",
    b"want/k/15",
    b"want/k/16",
    b"want/h/SHA256",
    b"want/h/MD5",
    b"want/h/IMPHASH",
    b"ack/1/5",
    b"ack/1/7",
    b"ack/2/0",
    b"mark/3",
    b"want/k/01",
    b"junk",
]


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(POOL), st.integers(0, 2)), max_size=300))
def test_table_counts_like_a_model(ops: list[tuple[bool, bytes, int]]) -> None:
    """Per source reference counts; an unsubscribe never takes back what another source holds."""
    table = SubscriptionTable()
    model: Counter[tuple[int, bytes]] = Counter()
    new_rec = 0
    new_acks = []
    for subscribed, topic, source in ops:
        valid = not isinstance(parse_topic(topic), Ignored)
        why = table.update(subscribed, topic, source)
        if not valid:
            assert why == parse_topic(topic).reason
        elif topic.startswith(b"mark/"):
            assert why is None
        elif subscribed:
            assert why is None
            if topic.startswith(b"ack/") and not model[source, topic]:
                new_acks.append(parse_topic(topic))
            model[source, topic] += 1
            new_rec += topic == b"rec"
        elif model[source, topic]:
            assert why is None
            model[source, topic] -= 1
        else:
            assert why == "not_subscribed"
    held: Counter[bytes] = Counter()
    for (_, topic), n in model.items():
        if n:
            held[topic] += n
    assert table.topics == dict(held)
    assert table.kinds == {int(t[7:]) for t in held if t.startswith(b"want/k/")}
    assert table.hash_algos == {t[7:].decode() for t in held if t.startswith(b"want/h/")}
    assert table.rec_subscribers == held[b"rec"] and table.host_subscribers == held[b"host"]
    assert table.deleted_hashes == (held[b"want/d"] > 0)
    acks = {parse_topic(t) for t in held if t.startswith(b"ack/")}
    assert table.acks == {(a.epoch, a.next_record) for a in acks}
    assert table.min_ack(1) == (min(a.next_record if a.epoch == 1 else 0 for a in acks) if acks else None)
    news = table.take_news()
    assert news.rec == new_rec and news.acks == tuple((a.epoch, a.next_record) for a in new_acks)
    assert news.marks == tuple(3 for s, t, _ in ops if s and t == b"mark/3")


@settings(max_examples=50)
@given(st.lists(st.integers(0, U64 - 1), min_size=1, max_size=100, unique=True))
def test_caps_refuse_and_count(seqs: list[int]) -> None:
    table = SubscriptionTable(max_acks=8, max_news=4)
    for s in seqs:
        table.update(True, b"ack/0/%d" % s)
        table.update(True, b"mark/%d" % s)
    assert len(table) == len(table.acks) == min(len(seqs), 4)  # news cap hit before the table cap
    news = table.take_news()
    assert len(news.marks) == len(news.acks) == min(len(seqs), 4)
    assert table.ignored["news_full"] == 2 * max(0, len(seqs) - 4)
    for s in seqs:
        table.update(True, b"ack/1/%d" % s)
        table.take_news()
    assert len(table) == min(len(seqs), 4) + min(len(seqs), 4)  # the table cap: 8 in all
    assert table.ignored["table_full"] == max(0, len(seqs) - 4)


# -- live: a real collector gets the hostile topics --------------------------------------------
HOSTILE = [
    "want/k/²".encode(),
    b"want/k/-1",
    b"want/k/99999999999999999999999",
    b"want/k/1_0",
    b"want/k/ 1",
    b"want/k/",
    b"mark/-1",
    b"mark/%d" % U64,
    b"mark/%d" % (10**300),
    "mark/١".encode(),
    b"ack/-1/0",
    b"ack/1/2/3",
    b"ack/%d/0" % U64,
    b"want/h/IMPHASH",
    b"want/h/\xff\xfe",
    b"\xff" * 900,
    b"9" * 1000,
    bytes(range(256)),
]


def _host_message(sock: zmq.Socket, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            topic, body = sock.recv_multipart()
            if topic == envelope.TOPIC_HOST and envelope.unpack_host(body).context:
                return True
    return False


@pytest.mark.e2e
@pytest.mark.bpf
def test_live_collector_survives_hostile_subscriptions(monitor: Monitor) -> None:
    assert monitor.collector is not None
    ctx = zmq.Context.instance()
    x = ctx.socket(zmq.XSUB)
    x.setsockopt(zmq.LINGER, 0)
    x.setsockopt(zmq.SNDHWM, 0)  # XSUB drops what is over its send queue: queue the whole flood
    x.connect(monitor.endpoint)
    try:
        x.send(b"\x01" + envelope.TOPIC_HOST)
        assert _host_message(x, 15)  # connected and served
        r = random.Random(3)
        hostile = HOSTILE + hostile_topics(11, 20_000)
        hostile += [b"ack/%d/%d" % (r.randrange(U64), i) for i in range(MAX_ACKS + 500)]  # over the cap
        for topic in hostile:
            if len(topic) < 1000 and topic != envelope.TOPIC_RECORDS:  # batches would pile up here
                x.send(bytes([r.choice([0, 1, 1])]) + topic)
        for junk in (b"", b"\x02want/k/1", b"\xffrec"):
            x.send(junk)
        while x.poll(0):
            x.recv_multipart()
        assert _host_message(x, 15)  # still publishing to us
        assert monitor.collector.poll() is None

        marker = f"after-hostile-{uuid.uuid4().hex}"
        subprocess.run([marker], executable="/usr/bin/true", check=True)
        monitor.wait_events(lambda ls: any(marker in ln and "<EventID>1</EventID>" in ln for ln in ls))

        def published() -> dict[str, int]:
            hosts = monitor.stats().get("hosts", {})
            return next((h.get("published", {}) for h in hosts.values()), {})

        wanted = {f"bad_subscriptions_{w}" for w in ("bad_number", "out_of_range", "table_full", "bad_frame")}
        deadline = time.monotonic() + 20
        while not wanted <= set(published()):
            assert time.monotonic() < deadline, sorted(published().items())
            time.sleep(0.2)
        assert published()["bad_subscriptions"] >= len(HOSTILE)
    finally:
        x.close(0)
    # An oversized message only costs its sender the connection.
    big = ctx.socket(zmq.XSUB)
    big.setsockopt(zmq.LINGER, 0)
    big.connect(monitor.endpoint)
    big.send(b"\x01" + b"m" * 100_000)
    big.close(0)
    assert monitor.collector.poll() is None
    marker = f"after-big-{uuid.uuid4().hex}"
    subprocess.run([marker], executable="/usr/bin/true", check=True)
    monitor.wait_events(lambda ls: any(marker in ln for ln in ls))
