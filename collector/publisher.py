"""The collector's ZeroMQ sockets: XPUBs that publish batches and read subscriptions.

Subscriptions are the one input the collector acts on (shared/envelope.py lists the topics):
they say which record kinds and hash algorithms someone wants, when a new filterd needs the
running-process snapshot, and when a test or benchmark wants a drain marker. XPUB_VERBOSER
reports every subscribe and unsubscribe, so wants are reference-counted across filterds.
XPUB_NODROP makes a full send queue visible: the batch is dropped and counted, its sequence
number still consumed, so the receiver sees the gap.

Two sockets, because CURVE options are per socket:
* local: `ipc://` (and `inproc://`) endpoints, NULL mechanism, reachable only by root and the
  filterd group through the file system (secure_ipc_path);
* remote: `tcp://` endpoints, CURVE server with this collector's secret key. A ZAP handler
  (pyzmq's ThreadAuthenticator) admits only the public keys in the clients directory, and
  ZAP_ENFORCE_DOMAIN makes the socket refuse everyone if that handler is not running.
  A tcp endpoint without CURVE is refused at start. Refused handshakes are counted from the
  socket monitor (stats "peers_refused*", which travel in the host context's counters).
Every message goes out on both; subscriptions of both are merged. A slow remote peer fills
only the remote socket's queue, so it cannot cause drops for the local filterd.
"""

from __future__ import annotations

import grp
import os
import socket
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import zmq

from shared import envelope
from shared.curve import ZAP_DOMAIN, CurveError, KeyPair, directory_stamp, load_client_keys, load_secret
from shared.transport import LOCAL_TRANSPORTS, QUEUE_BATCHES, REMOTE_TRANSPORTS, is_local, monitor_event

from .subscriptions import News, SubscriptionTable

CLIENT_KEYS_RECHECK_S = 5.0
MAX_INBOUND_BYTES = 1024  # peers only ever send subscriptions: a topic of a few bytes
MAX_READ = 4096  # subscription messages read per socket per call: a flood cannot hold the loop
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class CurveServer(NamedTuple):
    """What the remote socket needs: this collector's key pair and where the allowed keys live."""

    keys: KeyPair
    clients_dir: Path


def curve_server(endpoints: list[str], secret: str | None, clients: str | None) -> CurveServer | None:
    """Check the endpoint list against the CURVE options and load the keys (before any bind).

    Raises CurveError with the reason: a tcp endpoint without CURVE, an unsupported transport,
    half the options, or a key file or directory that is missing or unsafe.
    """
    for ep in endpoints:
        if not ep.startswith(LOCAL_TRANSPORTS + REMOTE_TRANSPORTS):
            raise CurveError(f"{ep}: unsupported endpoint (ipc:// for local, tcp:// with CURVE for remote)")
    remote = [ep for ep in endpoints if not is_local(ep)]
    if (secret is None) != (clients is None):
        raise CurveError("--curve-secret and --curve-clients go together")
    if secret is None or clients is None:
        if remote:
            raise CurveError(
                f"refusing to publish on {remote[0]} without CurveZMQ: give --curve-secret (this "
                "collector's key, `sysmonctl keys collector DIR`) and --curve-clients (directory of "
                "the filterd public keys allowed to subscribe)"
            )
        return None
    keys = load_secret(secret)
    load_client_keys(clients)  # fail now, not at the first peer
    return CurveServer(keys, Path(clients))


def peer_credentials(fd: int) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end of a unix socket we accepted, or None."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        s = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None
    with s:
        if s.family != socket.AF_UNIX:
            return None
        try:
            raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        except OSError:
            return None
    pid, uid, _ = struct.unpack("3i", raw)
    return pid, uid


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return 0


def secure_ipc_path(endpoint: str, group: str) -> None:
    """Make the socket's directory and file reachable only by root and `group`."""
    path = Path(endpoint[len("ipc://") :])
    gid = _group_id(group)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, 0, gid)
    os.chmod(path.parent, 0o750)
    if path.exists():
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)


class _AllowedKeys:
    """ZAP credentials provider: the Z85 public keys of the clients directory (swapped whole)."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return domain == ZAP_DOMAIN and key in self.keys


def _xpub(ctx: zmq.Context, hwm: int) -> zmq.Socket:
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_VERBOSER, 1)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
    return sock


class Publisher:
    def __init__(
        self,
        endpoints: list[str],
        origin: str,
        group: str = "sysmon",
        hwm: int = QUEUE_BATCHES,  # a full queue makes the collector wait (nothing is dropped)
        curve: CurveServer | None = None,
    ) -> None:
        self.origin = origin
        self.ctx = zmq.Context.instance()
        self.seq = 0
        self.kernel_drops = 0  # ring-buffer drops so far, carried in every batch
        self.epoch = 0  # stream identity (shared/envelope.py)
        self._peers: dict[int, tuple[int, int]] = {}  # local connection fd -> (pid, uid)
        self.local_monitor: zmq.Socket | None = None
        self.subs = SubscriptionTable()  # valid subscriptions of all sockets (collector/subscriptions.py)
        self.news = News(0, (), ())  # what the last read_subscriptions() brought
        self.stats: Counter[str] = Counter()
        local = [ep for ep in endpoints if is_local(ep)]
        remote = [ep for ep in endpoints if not is_local(ep)]
        if remote and curve is None:
            raise CurveError(f"refusing to publish on {remote[0]} without CurveZMQ keys")
        self.sock: zmq.Socket | None = None
        self.remote: zmq.Socket | None = None
        self.auth: Any = None  # zmq.auth.thread.ThreadAuthenticator
        self.monitor: zmq.Socket | None = None
        self.curve = curve
        self._sockets: list[tuple[zmq.Socket, str]] = []  # (socket, stats key prefix)
        if local:
            self.sock = _xpub(self.ctx, hwm)
            self._sockets.append((self.sock, ""))
            for ep in local:
                if ep.startswith("ipc://"):
                    secure_ipc_path(ep, group)
                    old = os.umask(0o117)
                    try:
                        self.sock.bind(ep)
                    finally:
                        os.umask(old)
                    secure_ipc_path(ep, group)
                else:
                    self.sock.bind(ep)
            self.local_monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        if remote and curve is not None:
            self._bind_remote(remote, curve, hwm)

    def _bind_remote(self, endpoints: list[str], curve: CurveServer, hwm: int) -> None:
        self._allowed = _AllowedKeys(load_client_keys(curve.clients_dir))
        self._clients_stamp = directory_stamp(curve.clients_dir)
        self._clients_checked = time.monotonic()
        # A context of its own: its ZAP handler (one per context) then sees only this socket,
        # and the local socket never goes through ZAP at all.
        from zmq.auth.thread import ThreadAuthenticator  # only here: it pulls in asyncio

        self.remote_ctx = zmq.Context()
        self.auth = ThreadAuthenticator(self.remote_ctx)
        self.auth.start()
        self.auth.configure_curve_callback(ZAP_DOMAIN, self._allowed)
        sock = self.remote = _xpub(self.remote_ctx, hwm)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.keys.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.keys.public)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler -> nobody gets in
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)  # a vanished log host's wants are dropped
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        self.monitor = sock.get_monitor_socket(_MONITOR_EVENTS)
        for ep in endpoints:
            sock.bind(ep)
        self._sockets.append((sock, "tcp_"))

    # -- input -----------------------------------------------------------------------------
    def read_subscriptions(self) -> list[tuple[bool, bytes]]:
        """Pending (subscribe?, topic) messages of all sockets; malformed ones are counted and ignored."""
        out: list[tuple[bool, bytes]] = []
        if self.monitor is not None:
            self._read_monitor()
            self._recheck_clients()
        for source, (sock, _) in enumerate(self._sockets):
            self._read(sock, out, source)
        self.news = self.subs.take_news()
        return out

    def _read(self, sock: zmq.Socket, out: list[tuple[bool, bytes]], source: int = 0) -> None:
        """Feed self.subs; only applied (valid) changes go to `out`, the rest is counted by reason."""
        for _ in range(MAX_READ):
            if not sock.get(zmq.EVENTS) & zmq.POLLIN:  # most ticks: nothing, and no zmq.Again to raise
                return
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not msg or msg[0] not in (0, 1):
                why: str | None = "bad_frame"
            else:
                why = self.subs.update(msg[0] == 1, msg[1:], source)
            if why is None:
                out.append((msg[0] == 1, msg[1:]))
            else:
                self.stats["bad_subscriptions"] += 1
                self.stats["bad_subscriptions_" + why] += 1

    def _read_monitor(self) -> None:
        assert self.monitor is not None
        while True:
            try:
                ev = monitor_event(self.monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            event = ev["event"]
            value = ev["value"] if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL else 0
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.stats["peers_accepted"] += 1
                continue
            self.stats["peers_refused"] += 1
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                why = "unknown_key"  # CURVE client whose public key is not in the clients directory
            elif value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                why = "no_curve"  # a plain (NULL) or otherwise non-CURVE peer
            elif value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
                why = "bad_crypto"  # a CURVE client using the wrong server key, or garbage
            else:
                why = "other"  # other protocol errors; a peer that hung up mid-handshake (a plain
                # SUB often does, having seen our CURVE greeting first)
            self.stats["peers_refused_" + why] += 1

    def local_peers(self) -> dict[int, int]:
        """pid -> uid of the processes connected to the local socket, from the kernel's
        SO_PEERCRED (so a peer cannot claim another pid). Their events are the monitor's own."""
        if self.local_monitor is not None:
            while self.local_monitor.get(zmq.EVENTS) & zmq.POLLIN:  # asked at every ack renewal
                try:
                    ev = monitor_event(self.local_monitor.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                fd = ev["value"]
                if ev["event"] == zmq.EVENT_ACCEPTED:
                    cred = peer_credentials(fd)
                    if cred is not None:
                        self._peers[fd] = cred
                else:
                    self._peers.pop(fd, None)
        return {pid: uid for pid, uid in self._peers.values()}

    def _recheck_clients(self) -> None:
        """Pick up filterd keys added to or removed from the clients directory, without a restart."""
        now = time.monotonic()
        if self.curve is None or now - self._clients_checked < CLIENT_KEYS_RECHECK_S:
            return
        self._clients_checked = now
        stamp = directory_stamp(self.curve.clients_dir)
        if stamp == self._clients_stamp:
            return
        self._clients_stamp = stamp
        try:
            self._allowed.keys = load_client_keys(self.curve.clients_dir)
        except CurveError as e:  # keep the keys we had; say why once per change
            self.stats["client_keys_errors"] += 1
            print(f"sysmon-collector: client keys not reloaded, keeping the old set: {e}", file=sys.stderr)
            return
        self.stats["client_keys_reloads"] += 1

    def wanted(self, prefix: bytes) -> set[str]:
        """Valid wanted kinds (as decimal strings) or hash algorithms; self.subs has them typed."""
        if prefix == envelope.WANT_KIND:
            return {str(k) for k in self.subs.kinds}
        if prefix == envelope.WANT_HASH:
            return set(self.subs.hash_algos)
        return set()

    # -- output ----------------------------------------------------------------------------
    def _send(self, topic: bytes, body: bytes, count: int = 0) -> bool:
        """Send on every socket; True if at least one took it. Drops are counted per socket."""
        sent = False
        for sock, prefix in self._sockets:
            try:
                sock.send_multipart((topic, body), zmq.NOBLOCK)
                sent = True
            except zmq.Again:
                self.stats[prefix + "hwm_drops"] += 1
                if count:
                    self.stats[prefix + "records_dropped"] += count
        return sent

    def send_batch(self, seq: int, first_record: int, count: int, blob: bytes) -> bool:
        """False when every socket's queue is full (XPUB_NODROP): the caller tries again later."""
        body = envelope.pack_batch(self.origin, seq, blob, self.kernel_drops, self.epoch, first_record)
        if not self._send(envelope.TOPIC_RECORDS, body, count):
            return False
        self.stats["batches"] += 1
        self.stats["records"] += count
        return True

    def publish_host(self, context: dict) -> bool:
        """False when every queue is full: the caller tries again at the next tick."""
        return self._send(envelope.TOPIC_HOST, envelope.pack_host(self.origin, context))

    def close(self) -> None:
        if self.local_monitor is not None and self.sock is not None:
            self.sock.disable_monitor()
            self.local_monitor.close(0)
            self.local_monitor = None
        if self.monitor is not None and self.remote is not None:
            self.remote.disable_monitor()
            self.monitor.close(0)
            self.monitor = None
        for sock, _ in self._sockets:
            sock.close(0)
        self._sockets = []
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
            self.remote_ctx.term()
