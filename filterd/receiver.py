"""filterd's only ZeroMQ user: SUB sockets connected to one or more collectors, polled together.

Local collectors (`ipc://`, `inproc://`) share one plain SUB socket. Each remote collector
(`tcp://`) gets its own SUB socket, because CURVE options are per socket and every collector
has its own server key: `--endpoint tcp://10.0.0.2:7755=/etc/sysmon/keys/collectors/a.key`
(or `--curve-server-key` as the default for tcp endpoints that name no key), with filterd's
own key pair from `--curve-secret`. A tcp endpoint without CURVE is refused at start. Keys are
read by resolve_endpoints, before filterd drops root; sockets are made after.

Besides the data topics every socket holds the "want" subscriptions (shared/envelope.py): they
are how the config reaches the collectors without a collector parsing anything. A frame that
cannot be used is counted by error class and dropped; nothing received can stop the daemon.
A remote collector that refuses our key is reported on stderr (once per endpoint and state
change) and counted, since otherwise it would look like a silent collector. libzmq gives up on
a peer after a refused handshake; we reconnect ourselves with a backoff (2 s doubling to 60 s),
so a key copied to the collector later is picked up without restarting filterd.

Acknowledgements (shared/envelope.py `ack/<epoch>/<n>`): each socket holds at most one ack
subscription, "every record of stream <epoch> before number n is written", for one origin:
the origin whose batches the socket delivered first. The rule, because a subscription reaches
every collector connected to the socket and names no origin:
  * a socket acknowledges one origin only; batches of any other origin on it are not
    acknowledged (counted as `ack_other_origin`; their collectors then treat filterd as a
    subscriber that never confirms);
  * a tcp socket reaches one collector, so this is exact there; the local socket is the local
    collector's in practice (one per host);
  * at start, before anything arrived, the ack for the position stored in the state directory
    is subscribed BEFORE `rec`, so the collector resends from there: for the local socket the
    stored stream of this host's origin (`local_origin`, read before the sandbox), else the
    stream the same endpoint delivered last. An ack for a stale stream is harmless: its epoch
    differs and the collector counts it as 0 (resend everything kept).
The ack follows the position the pipeline has handed to the sinks (Pipeline.streams), renewed
(subscribe the new topic, then unsubscribe the old) at most every ACK_EVERY_S, or after
ACK_EVERY_BATCHES batches under load.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

import zmq

from shared import envelope
from shared.curve import CurveError, KeyPair, load_public, load_secret
from shared.errors import FrameError
from shared.transport import QUEUE_BATCHES, is_local, monitor_event

from .pipeline import Pipeline
from .state.streams import Stream

MAX_MESSAGE_BYTES = 1 << 28  # above any batch the collector makes (see docs/remote.md)
BURST = 1000  # messages handled per poll() before the caller gets control back
ACK_EVERY_S, ACK_EVERY_BATCHES = 0.1, 64
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 60.0  # reconnect backoff after a refused handshake
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class Endpoint(NamedTuple):
    address: str
    server_key: bytes | None = None  # the collector's CURVE public key (Z85); None for ipc


def resolve_endpoints(
    specs: Iterable[str], curve_secret: str | None = None, server_key: str | None = None
) -> tuple[list[Endpoint], KeyPair | None]:
    """Parse `--endpoint` values and load the keys they need. Raises CurveError with the reason.

    `tcp://HOST:PORT=KEYFILE` names the collector's public key file; `server_key` is the key file
    for tcp endpoints that name none. Any tcp endpoint needs `curve_secret` (filterd's own key).
    """
    out: list[Endpoint] = []
    for spec in specs:
        if is_local(spec):
            out.append(Endpoint(spec))
            continue
        if not spec.startswith("tcp://"):
            raise CurveError(f"{spec}: unsupported endpoint (ipc:// for local, tcp:// with CURVE for remote)")
        address, sep, key_file = spec.partition("=")
        key_file = key_file if sep else (server_key or "")
        if not key_file:
            raise CurveError(
                f"{address}: a tcp endpoint needs the collector's public key: "
                f"--endpoint {address}=/etc/sysmon/keys/collectors/HOST.key (or --curve-server-key)"
            )
        out.append(Endpoint(address, load_public(key_file)))
    if any(e.server_key for e in out):
        if not curve_secret:
            raise CurveError("tcp endpoints need --curve-secret (`sysmonctl keys filterd DIR` makes one)")
        return out, load_secret(curve_secret)
    return out, None


class _Remote(NamedTuple):
    endpoint: Endpoint
    sock: zmq.Socket
    monitor: zmq.Socket


class _Ack:
    """The one ack subscription of a socket (see the module docstring for the rule)."""

    __slots__ = ("source", "origin", "learned", "topic", "batches", "at")

    def __init__(self, source: str, origin: str | None) -> None:
        self.source = source  # the endpoint(s) of the socket, as stored with the stream
        self.origin = origin
        self.learned = False  # origin seen on this socket (not only guessed from the state directory)
        self.topic: bytes | None = None
        self.batches = 0  # batches since the last renewal
        self.at = -1e18


class Receiver:
    tap: Callable[[bytes, bytes], None] | None = None  # `sysmonctl record`: every frame as it arrives

    def __init__(
        self,
        endpoints: Iterable[str | Endpoint],
        pipeline: Pipeline,
        rcvhwm: int = QUEUE_BATCHES,
        curve: KeyPair | None = None,
        local_origin: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        eps = [e if isinstance(e, Endpoint) else Endpoint(e) for e in endpoints]
        for e in eps:  # checked before any socket exists
            if e.server_key is None and not is_local(e.address):
                raise CurveError(f"refusing to subscribe to {e.address} without CurveZMQ")
            if e.server_key is not None and curve is None:
                raise CurveError(f"{e.address}: filterd's own key pair (--curve-secret) is needed")
        self.pipeline = pipeline
        self.ctx = zmq.Context.instance()
        self.wants: set[bytes] = set()
        self.last_error = ""
        self.stats: Counter[str] = pipeline.stats
        self.rcvhwm = rcvhwm
        self.sock: zmq.Socket | None = None
        self.remotes: list[_Remote] = []
        self.endpoint_state: dict[str, str] = {}  # remote address -> "connecting" | "connected" | why not
        self._retry: dict[str, tuple[float, float]] = {}  # address -> (when, next delay)
        self._backoff: dict[str, float] = {}
        self.poller = zmq.Poller()
        self.clock = clock
        self.acks: dict[zmq.Socket, _Ack] = {}
        self.last_host: dict[str, bytes] = {}  # of each origin the pipeline took: a recording starts with it
        local = [e.address for e in eps if e.server_key is None]
        if local:
            source = ",".join(local)
            guess = pipeline.streams.streams.get(local_origin) if local_origin else None
            self.sock = self._sub(_Ack(source, local_origin), guess)
            for address in local:
                self.sock.connect(address)
        for e in eps:
            if e.server_key is not None and curve is not None:
                self._add_remote(e, curve)
        self.sockets = ([self.sock] if self.sock is not None else []) + [r.sock for r in self.remotes]
        for s in self.sockets:
            self.poller.register(s, zmq.POLLIN)
        self._monitors = {r.monitor: r for r in self.remotes}
        for m in self._monitors:
            self.poller.register(m, zmq.POLLIN)

    def _sub(self, ack: _Ack, stream: Stream | None) -> zmq.Socket:
        sock = self.ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        if stream is None or not stream.known:
            stream = self.pipeline.streams.for_source(ack.source)
        if stream is not None and stream.known:  # where to resume: before `rec` (module docstring)
            ack.origin = stream.origin
            ack.topic = envelope.ack_topic(stream.epoch, stream.written)
            sock.setsockopt(zmq.SUBSCRIBE, ack.topic)
        self.acks[sock] = ack
        for topic in (envelope.TOPIC_HOST, envelope.TOPIC_RECORDS):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        return sock

    def _add_remote(self, e: Endpoint, curve: KeyPair) -> None:
        sock = self._sub(_Ack(e.address, None), None)
        sock.setsockopt(zmq.CURVE_SERVERKEY, e.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)  # notice a collector host that vanished
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        monitor = sock.get_monitor_socket(_MONITOR_EVENTS)
        sock.connect(e.address)
        self.endpoint_state[e.address] = "connecting"
        self.remotes.append(_Remote(e, sock, monitor))

    # -- subscriptions -----------------------------------------------------------------------
    def _subscribe(self, option: int, topic: bytes) -> None:
        for s in self.sockets:
            s.setsockopt(option, topic)

    def set_wants(self, kinds: Iterable[int], hash_algos: Iterable[str], deleted: bool = False) -> None:
        """Subscribe to the want topics for these record kinds and hash algorithms (and deleted
        files' hashes), drop the rest."""
        new = {envelope.WANT_KIND + str(k).encode() for k in kinds}
        new |= {envelope.WANT_HASH + a.encode() for a in hash_algos}
        if deleted:
            new.add(envelope.WANT_DELETED)
        for t in new - self.wants:
            self._subscribe(zmq.SUBSCRIBE, t)
        for t in self.wants - new:
            self._subscribe(zmq.UNSUBSCRIBE, t)
        self.wants = new

    def request_marker(self, token: int) -> None:
        """Ask every collector for a MARKER record after a full drain (filterd/events/marker.py).
        A one-shot request: unsubscribed at once, so no subscription is left behind."""
        topic = envelope.MARK + str(token).encode()
        self._subscribe(zmq.SUBSCRIBE, topic)
        self._subscribe(zmq.UNSUBSCRIBE, topic)

    # -- input -------------------------------------------------------------------------------
    def handle(self, frames: list[bytes], sock: zmq.Socket | None = None) -> None:
        if len(frames) != 2:
            self._frame_error("MalformedFrame")
            return
        topic, body = frames
        if self.tap is not None:
            self.tap(topic, body)
        try:
            if topic == envelope.TOPIC_RECORDS:
                b = envelope.unpack_batch(body)
                self.pipeline.on_batch(b.origin, b.seq, b.records, b.kernel_drops, b.epoch, b.first_record)
                if sock is not None:
                    self._batch_done(sock, b.origin)
            elif topic == envelope.TOPIC_HOST:
                m = envelope.unpack_host(body)
                self.pipeline.on_host(m.origin, m.context)
                if m.origin in self.pipeline.hosts:
                    self.last_host[m.origin] = body
            else:
                self._frame_error("unknown_topic")
        except FrameError as e:
            self._frame_error(type(e).__name__)
        except Exception as e:  # noqa: BLE001  a well-formed frame with nonsense inside: never fatal
            self.last_error = repr(e)
            self._frame_error("bad_content")

    def _frame_error(self, what: str) -> None:
        self.stats[what] += 1
        self.pipeline.on_frame_error(what)

    # -- acknowledgements ----------------------------------------------------------------------
    def _batch_done(self, sock: zmq.Socket, origin: str) -> None:
        a = self.acks.get(sock)
        if a is None:
            return
        if not a.learned:
            a.learned, a.origin = True, origin
            self.pipeline.streams.set_source(origin, a.source)
        elif origin != a.origin:
            self.stats["ack_other_origin"] += 1
            return
        a.batches += 1
        if a.batches >= ACK_EVERY_BATCHES:
            self._renew(sock, a, self.clock())

    def _renew(self, sock: zmq.Socket, a: _Ack, now: float) -> None:
        a.batches = 0
        s = self.pipeline.streams.streams.get(a.origin) if a.origin else None
        if s is None or not s.known:
            return
        topic = envelope.ack_topic(s.epoch, s.written)
        if topic == a.topic:
            return
        sock.setsockopt(zmq.SUBSCRIBE, topic)  # new first: there is always one
        if a.topic is not None:
            sock.setsockopt(zmq.UNSUBSCRIBE, a.topic)
        a.topic, a.at = topic, now
        self.stats["acks"] += 1

    def renew_acks(self) -> None:
        """Renew every ack whose position moved, at most every ACK_EVERY_S."""
        now = self.clock()
        for sock, a in self.acks.items():
            if now - a.at >= ACK_EVERY_S:
                self._renew(sock, a, now)

    def _on_monitor(self, r: _Remote) -> None:
        while True:
            try:
                ev = monitor_event(r.monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            event = ev["event"]
            address = r.endpoint.address
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.stats["remote_handshakes"] += 1
                state = "connected"
                self._backoff.pop(address, None)
                self._retry.pop(address, None)
            else:
                self.stats["remote_handshakes_failed"] += 1
                delay = self._backoff.get(address, RETRY_FIRST_S)
                self._backoff[address] = min(delay * 2, RETRY_MAX_S)
                self._retry[address] = (time.monotonic() + delay, delay)
                if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    state = "refused: the collector does not know our public key (add it to its clients/)"
                else:
                    state = "handshake failed: wrong collector key, or the peer does not speak CURVE"
            if self.endpoint_state.get(address) != state:
                self.endpoint_state[address] = state
                print(f"sysmon-filterd[{os.getpid()}]: {address}: {state}", file=sys.stderr, flush=True)

    def _reconnect_due(self) -> None:
        now = time.monotonic()
        for r in self.remotes:
            due = self._retry.get(r.endpoint.address)
            if due is None or due[0] > now:
                continue
            del self._retry[r.endpoint.address]
            with contextlib.suppress(zmq.ZMQError):  # libzmq may have dropped the endpoint already
                r.sock.disconnect(r.endpoint.address)
            r.sock.connect(r.endpoint.address)
            self.stats["remote_reconnects"] += 1

    def poll(self, timeout_ms: int) -> int:
        """Handle what arrives within timeout_ms on any socket; returns messages handled."""
        n = 0
        if self._retry:
            self._reconnect_due()
        for sock, _ in self.poller.poll(timeout_ms):
            r = self._monitors.get(sock)
            if r is not None:
                self._on_monitor(r)
                continue
            budget = BURST
            while budget:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.handle(frames, sock)
                n += 1
                budget -= 1
                if not sock.get(zmq.EVENTS) & zmq.POLLIN:  # asking is cheaper than zmq.Again
                    break
        self.renew_acks()
        self.pipeline.tick()
        return n

    def close(self) -> None:
        for r in self.remotes:
            r.sock.disable_monitor()
            r.monitor.close(0)
        for s in self.sockets:
            s.close(0)
        self.remotes = []
        self.sockets = []
        self.acks = {}
