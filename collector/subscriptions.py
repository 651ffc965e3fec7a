"""Subscription topics -> typed requests, and the reference-counted table of what is wanted.

Why a module of its own: subscriptions are the only bytes the root collector takes from the
other side (shared/envelope.py lists the topics), so the parser is total: every byte string
becomes a typed request or an ignore reason from the fixed set IGNORE_REASONS, and nothing
raises. Numbers are canonical ASCII decimal (no sign, no leading zero, at most 20 digits,
below 2**64): `str.isdigit()` accepts "²" and int() does not, int() accepts "-1", " 1", "1_0"
and 2**64, none of which a filterd sends. The table is bounded: kinds, algorithms, `rec` and
`host` have a small fixed value space, ack seqs are capped (MAX_ACKS, refusals counted), mark
requests are one-shot (never stored) and the news of one read is capped too.

Counts are kept per source (one per XPUB socket), so an unsubscribe arriving on the remote
socket can only take back what was subscribed on that socket, never a local filterd's wants.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from shared import envelope, records

MAX_TOPIC_BYTES = 64  # the longest valid topic, b"ack/" + 20 digits + b"/" + 20 digits, is 45 bytes
MAX_DIGITS = 20  # len(str(2**64 - 1))
MAX_ACKS = 1024  # distinct (source, ack) subscriptions held; a filterd holds one
MAX_NEWS = 1024  # new marks, new acks, per read (take_news)
U64 = 1 << 64

IGNORE_REASONS = (
    "too_long",  # topic over MAX_TOPIC_BYTES
    "unknown_topic",  # no known prefix
    "bad_number",  # not canonical ASCII decimal (sign, unicode digit, leading zero, empty, too long)
    "out_of_range",  # u64 overflow, or a kind >= records.MAX_BPF_KIND
    "unknown_algo",  # not a records.HASH_ORDER name (IMPHASH included: not computed here)
    "not_subscribed",  # unsubscribe of a topic this source does not hold
    "table_full",  # MAX_ACKS reached
    "news_full",  # MAX_NEWS new marks or acks since the last take_news()
)


class _Request:
    """A value: equal to another of the same class with the same fields, hashable, immutable by
    convention. What @dataclass(frozen=True) gave, without importing dataclasses (inspect, ast
    and dis: about 1 MB of the collector's memory)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._values()!r}"


class Records(_Request):
    """b"rec": record batches; each new subscriber wants a /proc snapshot and the hashes again."""

    __slots__ = ()


class Host(_Request):
    """b"host": host context messages."""

    __slots__ = ()


class WantDeleted(_Request):
    """b"want/d": hash deleted files that still run as some process's image."""

    __slots__ = ()


class WantKind(_Request):
    __slots__ = ("kind",)

    def __init__(self, kind: int) -> None:
        self.kind = kind  # 0 <= kind < records.MAX_BPF_KIND


class WantHash(_Request):
    __slots__ = ("algo",)

    def __init__(self, algo: str) -> None:
        self.algo = algo  # a records.HASH_ORDER name


class Mark(_Request):
    __slots__ = ("token",)

    def __init__(self, token: int) -> None:
        self.token = token  # u64


class Ack(_Request):
    """b"ack/<epoch>/<n>": every record of stream `epoch` before record number `n` is written."""

    __slots__ = ("epoch", "next_record")

    def __init__(self, epoch: int, next_record: int) -> None:
        self.epoch = epoch  # u64
        self.next_record = next_record  # u64


class Ignored(_Request):
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason  # one of IGNORE_REASONS


Request = Records | Host | WantDeleted | WantKind | WantHash | Mark | Ack

_RECORDS, _HOST, _WANT_DELETED = Records(), Host(), WantDeleted()
_IGNORED = {r: Ignored(r) for r in IGNORE_REASONS}
_ALGOS = {name.encode(): name for _, name, _ in records.HASH_ORDER}
_KINDS = [WantKind(k) for k in range(records.MAX_BPF_KIND)]


def _number(raw: bytes) -> int | Ignored:
    """A u64 in canonical ASCII decimal (bytes.isdigit() is ASCII-only, unlike str.isdigit())."""
    if not raw.isdigit() or (raw[0] == 0x30 and len(raw) > 1):  # b"".isdigit() is False
        return _IGNORED["bad_number"]
    if len(raw) > MAX_DIGITS:
        return _IGNORED["out_of_range"]
    n = int(raw)
    return n if n < U64 else _IGNORED["out_of_range"]


def _want_kind(n: int) -> WantKind | Ignored:
    return _KINDS[n] if n < records.MAX_BPF_KIND else _IGNORED["out_of_range"]


def _ack(raw: bytes) -> Ack | Ignored:
    epoch, slash, n = raw.partition(b"/")
    e = _number(epoch) if slash else _IGNORED["bad_number"]
    if isinstance(e, Ignored):
        return e
    r = _number(n)  # a second "/" lands here and fails
    return r if isinstance(r, Ignored) else Ack(e, r)


_NUMBERED = ((envelope.WANT_KIND, _want_kind), (envelope.MARK, Mark))


def parse_topic(topic: bytes) -> Request | Ignored:
    """Total: any bytes give a Request or an Ignored with a reason from IGNORE_REASONS."""
    if len(topic) > MAX_TOPIC_BYTES:
        return _IGNORED["too_long"]
    if topic == envelope.TOPIC_RECORDS:
        return _RECORDS
    if topic == envelope.TOPIC_HOST:
        return _HOST
    if topic == envelope.WANT_DELETED:
        return _WANT_DELETED
    for prefix, make in _NUMBERED:
        if topic.startswith(prefix):
            n = _number(topic[len(prefix) :])
            return n if isinstance(n, Ignored) else make(n)
    if topic.startswith(envelope.ACK):
        return _ack(topic[len(envelope.ACK) :])
    if topic.startswith(envelope.WANT_HASH):
        algo = _ALGOS.get(topic[len(envelope.WANT_HASH) :])
        return _IGNORED["unknown_algo"] if algo is None else WantHash(algo)
    return _IGNORED["unknown_topic"]


class News(NamedTuple):
    """What arrived since the last take_news()."""

    rec: int  # new `rec` subscriptions: send the /proc snapshot and announce every image again
    marks: tuple[int, ...]  # drain marker tokens asked for, in order
    acks: tuple[tuple[int, int], ...]  # (epoch, next_record) of acks newly subscribed, in order


class SubscriptionTable:
    """Reference counts of the valid subscriptions, per source; bounded whatever arrives."""

    def __init__(self, max_acks: int = MAX_ACKS, max_news: int = MAX_NEWS) -> None:
        self.max_acks = max_acks
        self.max_news = max_news
        self.ignored: Counter[str] = Counter()  # keys: IGNORE_REASONS only
        self._held: dict[tuple[int, Request], int] = {}  # (source, request) -> count
        self._n_acks = 0  # (source, Ack) entries in _held
        self._kinds: Counter[int] = Counter()  # totals over sources, zero entries deleted
        self._algos: Counter[str] = Counter()
        self._acks: Counter[tuple[int, int]] = Counter()
        self._topics: dict[bytes, int] = {}  # held topic -> count over sources (topics are canonical)
        self._rec = 0
        self._host = 0
        self._deleted = 0
        self._new_rec = 0
        self._marks: list[int] = []
        self._new_acks: list[tuple[int, int]] = []
        self._kinds_set: frozenset[int] | None = frozenset()
        self._algos_set: frozenset[str] | None = frozenset()

    def update(self, subscribed: bool, topic: bytes, source: int = 0) -> str | None:
        """Apply one (un)subscribe message; None if applied, else the reason it was ignored."""
        req = parse_topic(topic)
        if isinstance(req, Ignored):
            return self._ignore(req.reason)
        if isinstance(req, Mark):  # a one-shot request: its unsubscribe means nothing
            if subscribed:
                if len(self._marks) >= self.max_news:
                    return self._ignore("news_full")
                self._marks.append(req.token)
            return None
        key = (source, req)
        held = self._held.get(key, 0)
        if subscribed:
            if isinstance(req, Ack) and not held:
                if self._n_acks >= self.max_acks:
                    return self._ignore("table_full")
                if len(self._new_acks) >= self.max_news:
                    return self._ignore("news_full")
                self._n_acks += 1
                self._new_acks.append((req.epoch, req.next_record))
            self._held[key] = held + 1
            self._topics[topic] = self._topics.get(topic, 0) + 1
            self._count(req, 1)
            return None
        if not held:
            return self._ignore("not_subscribed")
        if held == 1:
            del self._held[key]
            if isinstance(req, Ack):
                self._n_acks -= 1
        else:
            self._held[key] = held - 1
        self._bump(self._topics, topic, -1)
        self._count(req, -1)
        return None

    def _ignore(self, reason: str) -> str:
        self.ignored[reason] += 1
        return reason

    def _count(self, req: Request, delta: int) -> None:
        if isinstance(req, WantKind):
            self._bump(self._kinds, req.kind, delta)
            self._kinds_set = None
        elif isinstance(req, WantHash):
            self._bump(self._algos, req.algo, delta)
            self._algos_set = None
        elif isinstance(req, Ack):
            self._bump(self._acks, (req.epoch, req.next_record), delta)
        elif isinstance(req, Records):
            self._rec += delta
            if delta > 0:
                self._new_rec += 1
        elif isinstance(req, WantDeleted):
            self._deleted += delta
        else:
            self._host += delta

    @staticmethod
    def _bump(counter: dict, value: object, delta: int) -> None:
        n = counter[value] + delta
        if n:
            counter[value] = n
        else:
            del counter[value]

    # -- what is wanted now ------------------------------------------------------------------
    @property
    def kinds(self) -> frozenset[int]:
        """Record kinds someone subscribed to (want/k/<kind>), all below records.MAX_BPF_KIND."""
        if self._kinds_set is None:
            self._kinds_set = frozenset(self._kinds)
        return self._kinds_set

    @property
    def hash_algos(self) -> frozenset[str]:
        """Hash algorithms someone subscribed to (want/h/<ALGO>), records.HASH_ORDER names."""
        if self._algos_set is None:
            self._algos_set = frozenset(self._algos)
        return self._algos_set

    @property
    def deleted_hashes(self) -> bool:
        """Someone logs FileDeleteDetected (want/d): hash deleted files still running."""
        return self._deleted > 0

    @property
    def rec_subscribers(self) -> int:
        return self._rec

    @property
    def host_subscribers(self) -> int:
        return self._host

    @property
    def acks(self) -> frozenset[tuple[int, int]]:
        """(epoch, next_record) of the acks held now."""
        return frozenset(self._acks)

    def min_ack(self, epoch: int) -> int | None:
        """The lowest ack held, in record numbers of stream `epoch` (another epoch's ack counts as
        0: its holder has seen nothing of this stream); None if nobody acks."""
        if not self._acks:
            return None
        return min(n if e == epoch else 0 for e, n in self._acks)

    @property
    def topics(self) -> dict[bytes, int]:
        """Held topics (canonical bytes) -> subscriber count over sources. Read only."""
        return self._topics

    def __len__(self) -> int:
        """Entries held: at most sources * (3 + MAX_BPF_KIND + len(HASH_ORDER)) + max_acks."""
        return len(self._held)

    def take_news(self) -> News:
        news = News(self._new_rec, tuple(self._marks), tuple(self._new_acks))
        self._new_rec = 0
        self._marks = []
        self._new_acks = []
        return news
