"""Remote filterd across "hosts" made of network namespaces on this machine, all real processes.

  host A  netns a, UTS hostname remote-a-*, its own /etc/machine-id and /etc/passwd (uid 4242 is
          "alice"): collector on tcp://10.99.0.1:7755 (CURVE) and on an ipc endpoint beside it
  host C  netns c, hostname remote-c-*, its own machine id and passwd (uid 4242 is "carol"):
          a second collector on tcp://10.99.1.3:7755 with its own key
  host B  netns b (10.99.0.2 towards A, 10.99.1.2 towards C): filterd subscribed to both, with
          a private rsyslog; its own hostname is this machine's

All namespaces share the kernel, so both collectors see every process: a marker run inside A
must come out of B twice, once per origin, each with that origin's Computer, GUID prefix and
user names (filterd keys all state by origin). Peers without CURVE or with an unknown key must
get nothing and show up in the collector's refused counters, which reach B in the host context.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from lxml import etree

from shared import envelope
from sysmonctl.keys import make_pair
from tests.harness.daemons import TEST_PIN_PREFIX
from tests.harness.rsyslog import Rsyslog
from tests.remote.netns import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

ROOT = Path(__file__).resolve().parents[2]
ADDR_A, ADDR_C = "10.99.0.1", "10.99.1.3"
PORT = 7755
UID = 4242


@dataclass
class Site:
    dir: Path
    lab: Lab
    ns: dict[str, str] = field(default_factory=dict)
    hostnames: dict[str, str] = field(default_factory=dict)
    machine_ids: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    rsyslog: Rsyslog | None = None
    ipc_a: str = ""
    boot_id: str = Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    def origin(self, host: str) -> str:
        return f"{self.machine_ids[host]}/{self.boot_id}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the process)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs[name] = p
        return p

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.dir.glob("*.log")))

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "state" / "stats.json").read_text())
        except (OSError, ValueError):
            return {}

    def counters(self, host: str) -> dict[str, int]:
        """Collector `host`'s publisher counters, as they reached filterd in B (host context)."""
        return self.stats().get("hosts", {}).get(self.origin(host), {}).get("published", {})

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}) waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} after {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.rsyslog is not None:
            self.rsyslog.stop()


def _host_files(site: Site, host: str, user: str) -> dict[str, str]:
    mid = site.machine_ids[host] = uuid.uuid4().hex
    (site.dir / f"{host}-machine-id").write_text(mid + "\n")
    passwd = Path("/etc/passwd").read_text().rstrip("\n")
    (site.dir / f"{host}-passwd").write_text(f"{passwd}\n{user}:x:{UID}:{UID}::/:/usr/sbin/nologin\n")
    os.chmod(site.dir / f"{host}-passwd", 0o644)
    return {str(site.dir / f"{host}-machine-id"): "/etc/machine-id",
            str(site.dir / f"{host}-passwd"): "/etc/passwd"}


def _start(site: Site) -> None:
    lab, d = site.lab, site.dir
    for h in "abc":
        site.ns[h] = lab.host(h)
    lab.link(site.ns["a"], f"{ADDR_A}/24", site.ns["b"], "10.99.0.2/24")
    lab.link(site.ns["c"], f"{ADDR_C}/24", site.ns["b"], "10.99.1.2/24")

    # keys: one pair per collector, one for filterd; each collector lists filterd's public key
    filterd_pub, filterd_sec = make_pair(d / "keys-b", "filterd")
    (d / "keys-b" / "collectors").mkdir(mode=0o755)
    for h in "ac":
        pub, _ = make_pair(d / f"keys-{h}", "collector")
        (d / f"keys-{h}" / "clients").mkdir(mode=0o755)
        shutil.copy(filterd_pub, d / f"keys-{h}" / "clients" / "loghost.key")
        shutil.copy(pub, d / "keys-b" / "collectors" / f"{h}.key")

    # B's rsyslog runs in B too (its unix socket is reachable from any netns anyway)
    wrapper = d / "rsyslogd-in-b"
    wrapper.write_text(f'#!/bin/sh\nexec nsenter --net=/run/netns/{site.ns["b"]} /usr/sbin/rsyslogd "$@"\n')
    wrapper.chmod(0o755)
    site.rsyslog = Rsyslog(d / "rsyslog", binary=str(wrapper)).start()
    for p in (d / "rsyslog", Path(site.rsyslog.socket_path).parent):
        os.chmod(p, 0o755)

    site.ipc_a = f"ipc://{d}/ipc-a/collector.sock"
    for h, addr, user in (("a", ADDR_A, "alice"), ("c", ADDR_C, "carol")):
        site.hostnames[h] = f"remote-{h}-{os.getpid()}"
        binds = _host_files(site, h, user)
        endpoints = ["--endpoint", f"tcp://{addr}:{PORT}"] + (["--endpoint", site.ipc_a] if h == "a" else [])
        site.spawn(f"collector-{h}", [
            *Lab.prefix(site.ns[h], site.hostnames[h], binds), sys.executable, "-m", "collector", *endpoints,
            "--pin-dir", f"{TEST_PIN_PREFIX}remote-{h}",
            "--curve-secret", str(d / f"keys-{h}" / "collector.key_secret"),
            "--curve-clients", str(d / f"keys-{h}" / "clients"),
        ])
    site.spawn("filterd-b", [
        *Lab.prefix(site.ns["b"]), sys.executable, "-m", "filterd",
        "--endpoint", f"tcp://{ADDR_A}:{PORT}={d / 'keys-b' / 'collectors' / 'a.key'}",
        "--endpoint", f"tcp://{ADDR_C}:{PORT}={d / 'keys-b' / 'collectors' / 'c.key'}",
        "--curve-secret", str(filterd_sec),
        "--syslog-socket", site.rsyslog.socket_path,
        "--control-socket", str(d / "filterd-b.ctl"),  # not the system's /run/sysmon-filterd
        "--state-dir", str(d / "state"),
        "--stats-file", str(d / "state" / "stats.json"),
    ])
    site.wait(lambda: all(site.origin(h) in site.stats().get("hosts", {}) for h in "ac"), 240,
              "host context of both collectors in filterd (B)")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (iproute2 / util-linux)")
    d = Path(tempfile.mkdtemp(prefix="sysmon-remote-", dir="/run"))
    os.chmod(d, 0o755)
    s = Site(d, Lab())
    try:
        _start(s)
        yield s
    finally:
        s.stop()
        s.lab.close()
        shutil.rmtree(d, ignore_errors=True)


def events(site: Site, event_id: int, needle: str) -> list[tuple[str, dict[str, str]]]:
    """(Computer, EventData) of B's syslog events with this id that contain `needle`."""
    assert site.rsyslog is not None
    out = []
    for line in site.rsyslog.lines("msg"):
        if f"<EventID>{event_id}</EventID>" in line and needle in line:
            root = etree.fromstring(line.encode())
            out.append((root.find("System").find("Computer").text,
                        {e.get("Name"): e.text for e in root.find("EventData")}))
    return out


def test_marker_in_a_reaches_b_with_its_origins_host(site: Site) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    run_in_a = ["nsenter", "-t", str(site.procs["collector-a"].pid), "--net", "--uts", "--mount", "--"]
    code = (f"import os; os.setgroups([]); os.setgid({UID}); os.setuid({UID}); "
            f"os.execv('/usr/bin/sleep', ['{marker}', '0.3'])")
    assert subprocess.run([*run_in_a, "hostname"], capture_output=True, text=True).stdout.strip() \
        == site.hostnames["a"]
    subprocess.run([*run_in_a, sys.executable, "-c", code], check=True, timeout=30)
    assert site.rsyslog is not None
    site.rsyslog.wait_for(lambda _: len(events(site, 1, marker)) >= 2, 30)

    creates = dict(events(site, 1, marker))
    assert set(creates) == {site.hostnames["a"], site.hostnames["c"]}, creates.keys()
    for h, user in (("a", "alice"), ("c", "carol")):
        ev = creates[site.hostnames[h]]
        prefix = "{" + site.machine_ids[h][:8] + "-"
        assert ev["CommandLine"] == f"{marker} 0.3"
        assert ev["Image"] == "/usr/bin/sleep"
        assert ev["User"] == user, ev  # from that host's /etc/passwd, sent in its host context
        assert ev["ProcessGuid"].startswith(prefix) and ev["LogonGuid"].startswith(prefix)
        assert ev["ParentUser"] == "root" and ev["ParentProcessGuid"].startswith(prefix)  # pytest
    ga, gc = (creates[site.hostnames[h]]["ProcessGuid"] for h in "ac")
    assert ga != gc and ga.split("-", 1)[1] == gc.split("-", 1)[1]  # same process, different host
    site.rsyslog.wait_for(lambda _: bool(events(site, 5, ga)) and bool(events(site, 5, gc)), 30)
    assert [c for c, _ in events(site, 5, ga)] == [site.hostnames["a"]]
    assert [ev["User"] for _, ev in events(site, 5, gc)] == ["carol"]
    # filterd's own events carry filterd's host
    own = events(site, 4, "Started")
    assert own and own[0][0] == os.uname().nodename
    assert site.hostnames["a"] != os.uname().nodename


def run_peers(site: Site, seconds: float, *modes: list[str]) -> list[dict[str, Any]]:
    """Subscribers in B (the log host's network) against collector A; their JSON reports."""
    procs = [subprocess.Popen([*Lab.prefix(site.ns["b"]), sys.executable, "-m", "tests.remote.peer",
                               f"tcp://{ADDR_A}:{PORT}", str(seconds), *m],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in modes]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


def test_unauthenticated_peers_get_nothing_and_are_counted(site: Site) -> None:
    keys_b, before = site.dir / "keys-b", site.counters("a")
    plain, stranger, control = run_peers(
        site, 4.0,
        ["plain"],
        ["stranger", str(keys_b / "collectors" / "a.key")],
        ["client", str(keys_b / "collectors" / "a.key"), str(keys_b / "filterd.key_secret")],
    )
    assert control["received"] > 0 and "host" in control["topics"], control  # the peer itself works
    assert plain["received"] == 0 and "succeeded" not in plain["events"], plain
    assert stranger["received"] == 0 and "failed_auth" in stranger["events"], stranger

    def counted() -> bool:
        c = site.counters("a")
        return (c.get("peers_refused_unknown_key", 0) > before.get("peers_refused_unknown_key", 0)
                and c.get("peers_refused_no_curve", 0) + c.get("peers_refused_other", 0)
                > before.get("peers_refused_no_curve", 0) + before.get("peers_refused_other", 0))

    site.wait(counted, 20, f"refused peers in collector A's counters (have {site.counters('a')})")
    after = site.counters("a")
    assert after["peers_refused"] >= before.get("peers_refused", 0) + 2
    assert after["peers_accepted"] >= 2  # filterd B and the control client
    assert not site.counters("c").get("peers_refused")  # C saw none of it


def test_ipc_endpoint_beside_tcp_still_serves_local_filterds(site: Site) -> None:
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, envelope.TOPIC_HOST)
    sub.connect(site.ipc_a)
    try:
        assert sub.poll(10000), "nothing on collector A's ipc endpoint"
        topic, body = sub.recv_multipart()
        assert topic == envelope.TOPIC_HOST
        msg = envelope.unpack_host(body)
        assert msg.origin == site.origin("a") and msg.context["hostname"] == site.hostnames["a"]
    finally:
        sub.close(0)
