"""Publisher and Receiver over real ZeroMQ sockets on loopback (no BPF): CURVE is required for
tcp, only listed filterd keys get in, refused peers are counted, ipc keeps working beside tcp,
subscriptions of both sockets are merged, and several collectors' events keep their own host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import zmq
from lxml import etree

import collector.publisher as publisher_mod
from collector.publisher import Publisher, curve_server
from filterd.config.loader import default_config
from filterd.pipeline import Pipeline
from filterd.receiver import Endpoint, Receiver, resolve_endpoints
from filterd.state.record_id import RecordIdCounter
from shared import envelope, records
from shared.curve import CurveError, KeyPair, load_secret
from shared.decode import encode, split_path
from sysmonctl.keys import make_pair
from tests.harness.sinks import ListSink

ROOT = Path(__file__).resolve().parents[2]


class Keys(NamedTuple):
    collector: KeyPair
    collector_public: Path
    collector_secret: Path
    clients: Path
    filterd: KeyPair
    filterd_secret: Path
    stranger: KeyPair


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    d = tmp_path / "keys"
    cpub, csec = make_pair(d, "collector")
    clients = d / "clients"
    clients.mkdir(mode=0o755)
    fpub, fsec = make_pair(d, "filterd")
    os.replace(fpub, clients / "loghost.key")
    _, ssec = make_pair(d, "stranger")
    return Keys(load_secret(csec), cpub, csec, clients, load_secret(fsec), fsec, load_secret(ssec))


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    ids = RecordIdCounter(tmp_path / "eventId")
    yield Pipeline(default_config(), [ListSink()], ids)
    ids.close()


def tcp_endpoint(pub: Publisher) -> str:
    assert pub.remote is not None
    return pub.remote.getsockopt(zmq.LAST_ENDPOINT).decode()


def context(hostname: str, machine_id: str, users: dict[int, str]) -> dict:
    return {
        "hostname": hostname,
        "machine_id": machine_id,
        "boot_id": "b" * 32,
        "boot_epoch_ns": 1_700_000_000 * 10**9,
        "users": users,
        "logins": [],
        "collector_pid": 4321,
        "counters": {},
    }


def pump(pubs: list[Publisher], receivers: list[Receiver], until: Callable[[], bool], timeout: float = 10.0,
         ctx: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"condition not met in time: {[dict(p.stats) for p in pubs]}"
        for p in pubs:
            p.read_subscriptions()
            p.publish_host(ctx or context("h", "0" * 32, {}))
        for r in receivers:
            r.poll(10)
        time.sleep(0.01)


def drain(sock: zmq.Socket) -> int:
    n = 0
    while True:
        try:
            sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return n
        n += 1


def raw_sub(endpoint: str, server_key: bytes | None = None,
            pair: tuple[bytes, bytes] | None = None) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    if server_key is not None and pair is not None:
        s.setsockopt(zmq.CURVE_SERVERKEY, server_key)
        s.setsockopt(zmq.CURVE_PUBLICKEY, pair[0])
        s.setsockopt(zmq.CURVE_SECRETKEY, pair[1])
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    return s


# -- refusing tcp without CURVE ------------------------------------------------------------------
def test_tcp_without_curve_is_refused(keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(CurveError, match="refusing to publish on tcp://0.0.0.0:7755 without CurveZMQ"):
        curve_server(["ipc:///run/x.sock", "tcp://0.0.0.0:7755"], None, None)
    with pytest.raises(CurveError, match="go together"):
        curve_server(["tcp://0.0.0.0:7755"], str(keys.collector_secret), None)
    with pytest.raises(CurveError, match="unsupported endpoint"):
        curve_server(["udp://10.0.0.1:7755"], None, None)
    with pytest.raises(CurveError, match="refusing"):
        Publisher(["tcp://127.0.0.1:*"], "o/b")
    assert curve_server(["ipc:///run/x.sock"], None, None) is None
    server = curve_server(["tcp://127.0.0.1:*"], str(keys.collector_secret), str(keys.clients))
    assert server is not None and server.keys == keys.collector

    with pytest.raises(CurveError, match="needs the collector's public key"):
        resolve_endpoints(["tcp://10.0.0.2:7755"], str(keys.filterd_secret))
    with pytest.raises(CurveError, match="need --curve-secret"):
        resolve_endpoints([f"tcp://10.0.0.2:7755={keys.collector_public}"])
    with pytest.raises(CurveError, match="refusing to subscribe"):
        Receiver([Endpoint("tcp://10.0.0.2:7755")], None)  # type: ignore[arg-type]
    eps, pair = resolve_endpoints(
        ["ipc:///run/a.sock", f"tcp://10.0.0.2:7755={keys.collector_public}", "tcp://10.0.0.3:7755"],
        str(keys.filterd_secret),
        str(keys.collector_public),
    )
    assert eps == [
        Endpoint("ipc:///run/a.sock"),
        Endpoint("tcp://10.0.0.2:7755", keys.collector.public),
        Endpoint("tcp://10.0.0.3:7755", keys.collector.public),
    ]
    assert pair == keys.filterd


def test_daemons_exit_with_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    c = subprocess.run([sys.executable, "-m", "collector", "--endpoint", "tcp://127.0.0.1:7755"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert c.returncode == 1
    assert "refusing to publish on tcp://127.0.0.1:7755 without CurveZMQ" in c.stderr
    f = subprocess.run([sys.executable, "-m", "filterd", "--endpoint", "tcp://127.0.0.1:7755", "--no-syslog",
                        "--state-dir", str(tmp_path / "state")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert f.returncode == 1
    assert "needs the collector's public key" in f.stderr


# -- who gets in ---------------------------------------------------------------------------------
def refused_by(pub: Publisher, connect: Callable[[], zmq.Socket]) -> tuple[zmq.Socket, set[str]]:
    """Connect one peer alone and wait until the collector counts it refused; returns the reasons."""
    before = Counter(pub.stats)
    sock = connect()
    pump([pub], [], lambda: pub.stats["peers_refused"] > before["peers_refused"])
    return sock, {k[len("peers_refused_"):] for k in pub.stats if k.startswith("peers_refused_")
                  and pub.stats[k] > before[k]}


def test_only_listed_keys_receive_and_refusals_are_counted(keys: Keys, tmp_path: Path,
                                                           pipeline: Pipeline) -> None:
    ipc = f"ipc://{tmp_path}/ipc/collector.sock"
    server = curve_server([ipc, "tcp://127.0.0.1:*"], str(keys.collector_secret), str(keys.clients))
    pub = Publisher([ipc, "tcp://127.0.0.1:*"], "m/b", curve=server)
    tcp = tcp_endpoint(pub)
    good = Receiver([Endpoint(tcp, keys.collector.public)], pipeline, curve=keys.filterd)
    local = raw_sub(ipc)
    peers: list[zmq.Socket] = []
    refused: Receiver | None = None
    try:
        pump([pub], [good], lambda: "m/b" in pipeline.hosts)
        assert pub.stats["peers_accepted"] == 1 and not pub.stats["peers_refused"]
        plain, why = refused_by(pub, lambda: raw_sub(tcp))
        assert why <= {"no_curve", "other"} and why, why  # other: it hung up first, seeing CURVE
        stranger, why = refused_by(pub, lambda: raw_sub(tcp, keys.collector.public, keys.stranger))
        assert why == {"unknown_key"}
        wrong_server, why = refused_by(pub, lambda: raw_sub(tcp, keys.stranger.public, keys.filterd))
        assert why == {"bad_crypto"}
        peers = [plain, stranger, wrong_server]
        refused = Receiver([Endpoint(tcp, keys.collector.public)], pipeline, curve=keys.stranger)
        pump([pub], [good, refused], lambda: refused.endpoint_state[tcp].startswith("refused"))
        for i in range(5):
            pub.send_batch(i, i, 1, encode(records.MARKER, token=i))
        pump([pub], [good], lambda: pipeline.stats["batches"] >= 5)
        time.sleep(0.2)
        assert drain(local) > 0, "the ipc endpoint beside tcp must keep working"
        assert [drain(s) for s in peers] == [0, 0, 0]
        assert good.endpoint_state[tcp] == "connected"
        assert pub.stats["peers_accepted"] == 1
        assert pipeline.markers["m/b"] == 4
    finally:
        for s in (local, *peers):
            s.close(0)
        good.close()
        if refused is not None:
            refused.close()
        pub.close()


def test_without_the_zap_handler_nobody_gets_in(keys: Keys, pipeline: Pipeline) -> None:
    """ZAP_ENFORCE_DOMAIN: libzmq would otherwise admit any CURVE client when no handler runs."""
    pub = Publisher(["tcp://127.0.0.1:*"], "m/b",
                    curve=curve_server(["tcp://127.0.0.1:*"], str(keys.collector_secret), str(keys.clients)))
    assert pub.auth is not None
    pub.auth.stop()
    tcp = tcp_endpoint(pub)
    listed = raw_sub(tcp, keys.collector.public, keys.filterd)
    try:
        deadline = time.monotonic() + 30  # until the refusal is seen (a busy machine is slow)
        received = 0
        while time.monotonic() < deadline and not pub.stats["peers_refused"]:
            pub.read_subscriptions()
            pub.publish_host(context("h", "0" * 32, {}))
            received += drain(listed)
            time.sleep(0.05)
        assert received == 0
        assert not pub.stats["peers_accepted"] and pub.stats["peers_refused"]
    finally:
        listed.close(0)
        pub.auth = None
        pub.close()
        pub.remote_ctx.term()


def test_subscriptions_of_both_sockets_are_merged(keys: Keys, tmp_path: Path, pipeline: Pipeline) -> None:
    ipc = f"ipc://{tmp_path}/ipc/collector.sock"
    pub = Publisher([ipc, "tcp://127.0.0.1:*"], "m/b",
                    curve=curve_server([ipc], str(keys.collector_secret), str(keys.clients)))
    remote = Receiver([Endpoint(tcp_endpoint(pub), keys.collector.public)], pipeline, curve=keys.filterd)
    local = Receiver([ipc], pipeline)
    try:
        remote.set_wants([1, 2], ["SHA256"])
        local.set_wants([2, 3], [])
        pump([pub], [remote, local], lambda: pub.wanted(envelope.WANT_KIND) == {"1", "2", "3"})
        assert pub.wanted(envelope.WANT_HASH) == {"SHA256"}
        remote.close()  # its wants go away; the local filterd still wants 2 and 3
        pump([pub], [local], lambda: pub.wanted(envelope.WANT_KIND) == {"2", "3"})
        assert pub.wanted(envelope.WANT_HASH) == set()
    finally:
        remote.close()
        local.close()
        pub.close()


def test_client_keys_are_reread_without_restart(keys: Keys, tmp_path: Path, pipeline: Pipeline,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_mod, "CLIENT_KEYS_RECHECK_S", 0.0)
    empty = tmp_path / "empty-clients"
    empty.mkdir(mode=0o755)
    pub = Publisher(["tcp://127.0.0.1:*"], "m/b",
                    curve=curve_server(["tcp://127.0.0.1:*"], str(keys.collector_secret), str(empty)))
    r = Receiver([Endpoint(tcp_endpoint(pub), keys.collector.public)], pipeline, curve=keys.filterd)
    try:
        pump([pub], [r], lambda: pub.stats["peers_refused_unknown_key"] > 0)
        assert "m/b" not in pipeline.hosts
        os.link(keys.clients / "loghost.key", empty / "loghost.key")
        os.utime(empty, ns=(time.time_ns() + 10**9,) * 2)  # a new stamp even on coarse clocks
        pump([pub], [r], lambda: "m/b" in pipeline.hosts, timeout=20)  # filterd retried by itself
        assert pub.stats["client_keys_reloads"] == 1
        assert pipeline.stats["remote_reconnects"] >= 1
        assert r.endpoint_state[tcp_endpoint(pub)] == "connected"
    finally:
        r.close()
        pub.close()


# -- several collectors, each event with its own host ------------------------------------------------
def exec_record(marker: str) -> bytes:
    return encode(
        records.PROCESS_EXEC,
        (split_path("/usr/bin/sleep"), split_path("/tmp"), f"{marker}\0" "1\0".encode()),
        pid=777, tid=777, time_ns=5 * 10**9, ppid=1, uid=4242, gid=4242, sessionid=3,
        start_ns=5 * 10**9, parent_start_ns=10**9, end_code=0x5A5A5A, flags=records.REC_F_NO_TTY,
    )


def test_each_origin_keeps_its_computer_guids_and_users(keys: Keys, tmp_path: Path,
                                                        pipeline: Pipeline) -> None:
    """Three collectors (two over tcp with their own server keys, one over ipc) send the very
    same exec record; filterd must render it three times, each with its host's details."""
    d = tmp_path / "k2"
    make_pair(d, "collector2")
    second = load_secret(d / "collector2.key_secret")
    ipc = f"ipc://{tmp_path}/ipc/c.sock"
    hosts = {  # origin -> (hostname, machine id, user 4242)
        "aaaa1111/b": ("alpha", "aaaa1111" + "0" * 24, "alice"),
        "bbbb2222/b": ("beta", "bbbb2222" + "0" * 24, "bob"),
        "cccc3333/b": ("gamma", "cccc3333" + "0" * 24, "carol"),
    }
    origins = list(hosts)
    p1 = Publisher(["tcp://127.0.0.1:*"], origins[0],
                   curve=curve_server(["tcp://127.0.0.1:*"], str(keys.collector_secret), str(keys.clients)))
    p2 = Publisher(["tcp://127.0.0.1:*"], origins[1],
                   curve=curve_server(["tcp://127.0.0.1:*"], str(d / "collector2.key_secret"),
                                      str(keys.clients)))
    p3 = Publisher([ipc], origins[2])
    pubs = [p1, p2, p3]
    r = Receiver([Endpoint(tcp_endpoint(p1), keys.collector.public),
                  Endpoint(tcp_endpoint(p2), second.public), ipc], pipeline, curve=keys.filterd)
    assert len(r.sockets) == 3  # one plain SUB for ipc, one CURVE SUB per tcp collector
    try:
        deadline = time.monotonic() + 10
        while not all(o in pipeline.hosts for o in origins):
            assert time.monotonic() < deadline, pipeline.hosts
            for p, (name, mid, user) in zip(pubs, hosts.values(), strict=True):
                p.read_subscriptions()
                p.publish_host(context(name, mid, {0: "root", 4242: user}))
            r.poll(10)
        marker = "marker-origins"
        for p in pubs:
            p.send_batch(0, 0, 1, exec_record(marker))
        sink = pipeline.sinks[0]
        deadline = time.monotonic() + 10
        while sum(marker in x for x in sink.lines) < 3:
            assert time.monotonic() < deadline, sink.lines
            r.poll(10)
        seen = {}
        for x in (x for x in sink.lines if marker in x):
            root = etree.fromstring(x.encode())
            data = {e.get("Name"): e.text for e in root.find("EventData")}
            seen[root.find("System").find("Computer").text] = data
        assert set(seen) == {"alpha", "beta", "gamma"}
        for name, mid, user in hosts.values():
            ev = seen[name]
            assert ev["User"] == user
            assert ev["ProcessGuid"].startswith("{" + mid[:8] + "-")
            assert ev["CommandLine"] == f"{marker} 1"
        suffixes = {ev["ProcessGuid"].split("-", 1)[1] for ev in seen.values()}
        assert len(suffixes) == 1  # same process, same start time and key: only the host part differs
    finally:
        r.close()
        for p in pubs:
            p.close()
